'use strict'

// A store directory is untrusted input: stores get committed to repositories and copied
// between machines. Whatever it holds, kv-binding reads, writes and deletes nothing outside
// it, and damage gives ERR_KV_CORRUPT naming what is damaged, never wrong data.

const fs = require('node:fs')
const path = require('node:path')
const { KV } = require('..')
const { tempDir, rejection, openError } = require('./helpers')

const valueFiles = (dir) => fs.readdirSync(path.join(dir, 'values'))

describe('value files', () => {
  test('a value file garbled without changing its size gives ERR_KV_CORRUPT naming the key', async () => {
    const dir = tempDir()
    const value = Buffer.alloc(200 * 1024, 'kv-binding ')
    let kv = new KV({ path: dir })
    await kv.put('report.pdf', value)
    await kv.close()
    const [name] = valueFiles(dir)
    const file = path.join(dir, 'values', name)
    const garbled = fs.readFileSync(file)
    garbled[150_000] ^= 0x01
    fs.writeFileSync(file, garbled)
    kv = new KV({ path: dir })
    for (const type of ['text', 'arrayBuffer', 'stream']) {
      const error = await rejection(kv.get('report.pdf', type))
      expect(error.code).toBe('ERR_KV_CORRUPT')
      expect(error.message).toContain('"report.pdf"')
      expect(error.message).toContain('do not match its checksum')
    }
    expect((await rejection(kv.getWithMetadata('report.pdf'))).code).toBe('ERR_KV_CORRUPT')
    // The rest of the store is still readable, and a new value replaces the damaged one.
    await kv.put('report.pdf', 'fresh')
    await expect(kv.get('report.pdf')).resolves.toBe('fresh')
    await kv.close()
  })

  test('a FIFO where a value file should be is read as damage, never waited on', async () => {
    const { spawnSync } = require('node:child_process')
    const dir = tempDir()
    let kv = new KV({ path: dir })
    await kv.put('report.pdf', Buffer.alloc(200 * 1024, 'kv-binding '))
    await kv.close()
    const [name] = valueFiles(dir)
    const file = path.join(dir, 'values', name)
    fs.rmSync(file)
    if (spawnSync('mkfifo', [file]).status !== 0) {
      if (process.env.CI === 'true') throw new Error('mkfifo is needed under CI=true')
      console.log('kv-binding: mkfifo is not available here, so the FIFO case is skipped.')
      return
    }
    kv = new KV({ path: dir })
    // Opening a FIFO for reading waits for a writer: before, this read never settled.
    const error = await rejection(kv.get('report.pdf'))
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain('"report.pdf"')
    await kv.close()
  })
})

test('dump() fails on a damaged entry, and with onDamaged saves the rest and reports it', async () => {
  const dir = tempDir()
  let kv = new KV({ path: dir })
  await kv.put('a', 'first', { metadata: { n: 1 } })
  await kv.put('lost', Buffer.alloc(200 * 1024, 1))
  await kv.put('z', 'last')
  await kv.close()
  for (const name of valueFiles(dir)) fs.rmSync(path.join(dir, 'values', name))
  kv = new KV({ path: dir })
  const failure = await rejection(kv.dump())
  expect(failure.code).toBe('ERR_KV_CORRUPT')
  expect(failure.message).toContain('"lost"')
  const damaged = []
  const entries = await kv.dump({ onDamaged: (key, error) => damaged.push([key, error]) })
  expect(entries).toEqual([
    { key: 'a', value: 'first', metadata: { n: 1 } },
    { key: 'z', value: 'last' },
  ])
  expect(damaged).toHaveLength(1)
  expect(damaged[0][0]).toBe('lost')
  expect(damaged[0][1]).toBeInstanceOf(Error)
  expect(damaged[0][1].code).toBe('ERR_KV_CORRUPT')
  await expect(kv.dump({ onDamaged: 'log' })).rejects.toThrow(TypeError)
  await kv.close()
})

describe('symbolic links inside a store are never followed', () => {
  // A directory outside the store, holding what a link would expose.
  function outside() {
    const dir = tempDir()
    fs.writeFileSync(path.join(dir, '00000000000000ff'), 'precious')
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'precious')
    return dir
  }
  const unchanged = (dir) =>
    expect(
      Object.fromEntries(
        fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]),
      ),
    ).toEqual({ '00000000000000ff': 'precious', 'notes.txt': 'precious' })

  async function storeWith(setUp) {
    const dir = tempDir()
    const kv = new KV({ path: dir })
    await kv.put('big', Buffer.alloc(200 * 1024, 1))
    await kv.close()
    setUp(dir)
    return dir
  }

  const refusal = (dir, entry) => {
    const error = openError({ path: dir })
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_KV_STORAGE')
    expect(error.message).toContain(
      `${JSON.stringify(path.join(fs.realpathSync(dir), entry))} is a symbolic link`,
    )
  }

  test('a values directory that is a link: the store is refused, the target untouched', async () => {
    const target = outside()
    const dir = await storeWith((dir) => {
      fs.renameSync(path.join(dir, 'values'), path.join(tempDir(), 'moved'))
      fs.symlinkSync(target, path.join(dir, 'values'))
    })
    refusal(dir, 'values')
    unchanged(target)
  })

  test('a link inside the values directory: the store is refused, the target untouched', async () => {
    const target = outside()
    const dir = await storeWith((dir) =>
      fs.symlinkSync(
        path.join(target, '00000000000000ff'),
        path.join(dir, 'values', '00000000000000ff'),
      ),
    )
    refusal(dir, path.join('values', '00000000000000ff'))
    unchanged(target)
  })

  test('a lock file that is a link: the store is refused, the target neither truncated nor written', async () => {
    const target = outside()
    const dir = await storeWith((dir) => {
      fs.rmSync(path.join(dir, 'kv.lock'))
      fs.symlinkSync(path.join(target, 'notes.txt'), path.join(dir, 'kv.lock'))
    })
    refusal(dir, 'kv.lock')
    unchanged(target)
  })

  test('a dangling format-file link: the store is refused and nothing is created outside', async () => {
    const target = tempDir()
    const dir = await storeWith((dir) => {
      fs.rmSync(path.join(dir, 'kv-format.json'))
      fs.symlinkSync(path.join(target, 'created.json'), path.join(dir, 'kv-format.json'))
    })
    refusal(dir, 'kv-format.json')
    expect(fs.readdirSync(target)).toEqual([])
  })

  test('a link among entries the store does not use is left alone, and the store opens', async () => {
    const target = outside()
    const dir = await storeWith((dir) => fs.symlinkSync(target, path.join(dir, 'node_modules')))
    const kv = new KV({ path: dir })
    await expect(kv.get('big', 'arrayBuffer')).resolves.toHaveProperty('byteLength', 200 * 1024)
    await kv.close()
    unchanged(target)
  })

  test('opening removes only the value files the store named and no record points to', async () => {
    const dir = await storeWith(() => {})
    const values = path.join(dir, 'values')
    const foreign = ['00000000000000FF', '+00000000000000f', 'ff', '00000000000000ff.bak']
    for (const name of foreign) fs.writeFileSync(path.join(values, name), 'not ours')
    fs.mkdirSync(path.join(values, '00000000000000fe'))
    fs.writeFileSync(path.join(values, '00000000000000fd'), 'an orphan the store named')
    const kv = new KV({ path: dir })
    await kv.close()
    const left = fs.readdirSync(values)
    expect(left).not.toContain('00000000000000fd')
    for (const name of [...foreign, '00000000000000fe']) expect(left).toContain(name)
  })
})
