'use strict'

// A full disk, for real: a small tmpfs filled to the last byte. A write that does not fit
// fails saying the disk is full, and the store opens again, whole, once there is room.
// Mounting needs root (as CI has); elsewhere these tests say why they skip.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { KV } = require('..')
const { rejection } = require('./helpers')

const MiB = 1024 * 1024

// A fresh tmpfs of `size`, or the reason there cannot be one here.
function mountTmpfs(size) {
  // Not a helpers tempDir(): those are removed before this file's afterAll unmounts.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-binding-disk-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
  } catch (error) {
    fs.rmdirSync(dir)
    return { reason: `cannot mount a tmpfs (${String(error.stderr || error.message).trim()})` }
  }
  return { dir }
}

let disk
beforeAll(() => {
  disk = mountTmpfs('4m')
  if (disk.reason) {
    if (process.env.CI === 'true')
      throw new Error(`CI must run the full-disk tests: ${disk.reason}`)
    console.log(`full-disk tests skipped: ${disk.reason}; they run as root, as in CI`)
  }
})
// Each test starts with the whole disk to itself.
afterEach(() => {
  if (!disk.dir) return
  for (const entry of fs.readdirSync(disk.dir)) {
    fs.rmSync(path.join(disk.dir, entry), { recursive: true, force: true })
  }
})
afterAll(() => {
  if (!disk.dir) return
  execFileSync('umount', [disk.dir])
  fs.rmdirSync(disk.dir)
})

// Fills the disk to the last byte with a file that can be removed to make room again.
function fill(dir) {
  const ballast = path.join(dir, 'ballast')
  const fd = fs.openSync(ballast, 'w')
  const block = Buffer.alloc(4096)
  try {
    for (;;) fs.writeSync(fd, block)
  } catch (error) {
    if (error.code !== 'ENOSPC') throw error
  } finally {
    fs.closeSync(fd)
  }
  return () => fs.rmSync(ballast)
}

// Frees `bytes` of the disk that fill() filled.
function leaveRoom(bytes) {
  const ballast = path.join(disk.dir, 'ballast')
  fs.truncateSync(ballast, fs.statSync(ballast).size - bytes)
}

const expectDiskFull = (error) => {
  expect(error.code).toBe('ERR_KV_STORAGE')
  expect(error.message).toContain('the disk is full')
}

// Opens the store, or resolves the error opening gave.
const tryOpen = (options) => {
  try {
    return new KV(options)
  } catch (error) {
    return error
  }
}

const value = (key) => `${key} `.repeat(30)

test('a full disk fails writes as full, never as damage, and the store opens whole once there is room', async () => {
  if (!disk.dir) return
  const store = path.join(disk.dir, 'store')
  let kv = new KV({ path: store })
  for (let i = 0; i < 2000; i++) await kv.put(`k${i}`, value(`k${i}`))
  await kv.close()
  // A second open and close leaves a snapshot, as a store in use has.
  await new KV({ path: store }).close()

  const makeRoom = fill(disk.dir)
  kv = new KV({ path: store })
  const written = []
  let failure
  for (let i = 0; i < 20_000 && !failure; i++) {
    failure = await kv.put(`m${i}`, value(`m${i}`)).then(
      () => void written.push(`m${i}`),
      (error) => error,
    )
  }
  expect(failure).toBeDefined()
  expectDiskFull(failure)
  const closed = await kv.close().then(
    () => null,
    (error) => error,
  )
  if (closed) expectDiskFull(closed)

  // While the disk stays full, opening fails as full (and leaves nothing that breaks the
  // store later), or opens.
  for (let attempt = 0; attempt < 3; attempt++) {
    const opened = tryOpen({ path: store })
    if (opened instanceof Error) expectDiskFull(opened)
    else await opened.close().catch(expectDiskFull)
  }

  makeRoom()
  kv = new KV({ path: store })
  for (let i = 0; i < 2000; i++) {
    const key = `k${i}`
    expect(await kv.get(key)).toBe(value(key))
  }
  for (const key of written) {
    const found = await kv.get(key)
    if (found !== null) expect(found).toBe(value(key))
  }
  await kv.put('after', 'room again')
  await kv.close()
})

test('a large value that does not fit leaves no part of itself on the disk', async () => {
  if (!disk.dir) return
  const store = path.join(disk.dir, 'large')
  const kv = new KV({ path: store })
  await kv.put('kept', Buffer.alloc(200 * 1024, 7))
  await kv.flush()
  const before = fs.readdirSync(path.join(store, 'values'))
  // Room for part of the value, so that the write fails half-way through it.
  const makeRoom = fill(disk.dir)
  leaveRoom(MiB)
  expectDiskFull(await rejection(kv.put('too big', Buffer.alloc(3 * MiB, 1))))
  expect(fs.readdirSync(path.join(store, 'values'))).toEqual(before)
  makeRoom()
  await expect(kv.get('too big')).resolves.toBeNull()
  expect(Buffer.from(await kv.get('kept', 'arrayBuffer')).equals(Buffer.alloc(200 * 1024, 7))).toBe(
    true,
  )
  await kv.close()
})

test.each([300, 2000])(
  'a bulk write that does not fit writes nothing (values of %i bytes)',
  async (size) => {
    if (!disk.dir) return
    const store = path.join(disk.dir, `bulk-${size}`)
    let kv = new KV({ path: store })
    await kv.put('before', 'kept')
    await kv.flush()
    // Room for part of the write only.
    const makeRoom = fill(disk.dir)
    leaveRoom(MiB)
    const entries = Array.from({ length: 10_000 }, (_, i) => ({
      key: `bulk:${i}`,
      value: 'v'.repeat(size),
    }))
    expectDiskFull(await rejection(kv.bulkPut(entries)))
    await kv.close().catch(expectDiskFull)
    makeRoom()
    kv = new KV({ path: store })
    const { keys } = await kv.list({ prefix: 'bulk:' })
    expect(keys).toEqual([])
    await expect(kv.get('before')).resolves.toBe('kept')
    await kv.close()
  },
)
