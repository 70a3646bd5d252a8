'use strict'

// What the sled backend adds: data on disk, one database shared per directory in a process,
// a clear error when another process owns the directory, and clear errors for damaged stores.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, spawn } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { KV } = require('..')
const { tempDir, rejection, openError, holdStore } = require('./helpers')

const ROOT = path.resolve(__dirname, '..')

/** Runs `source` in a fresh Node process with `kv-binding` as `KV`. */
function runNode(source) {
  return execFileSync(
    process.execPath,
    ['-e', `const { KV } = require(${JSON.stringify(ROOT)});\n${source}`],
    {
      encoding: 'utf8',
    },
  )
}

// A store written by the build before the backends moved into src/backends (format 3, the
// same code that writes it now): an in-line value with metadata, a blob with an expiration, a
// value file and a key beyond ASCII. It opens and reads the same, and takes writes.
test('a store written before the move to src/backends opens and reads the same', async () => {
  const dir = tempDir()
  fs.cpSync(path.join(__dirname, 'fixtures', 'store-format-3'), dir, { recursive: true })
  const kv = new KV({ path: dir, namespace: 'fixture', clock: () => 1_900_000_000_000 })
  await expect(kv.getWithMetadata('inline')).resolves.toMatchObject({
    value: 'small value',
    metadata: { kind: 'inline' },
  })
  await expect(kv.get('blob')).resolves.toBe('b'.repeat(5000))
  const file = new Uint8Array(await kv.get('file', 'arrayBuffer'))
  expect(file.length).toBe(200000)
  expect(file.every((byte) => byte === 7)).toBe(true)
  await expect(kv.get('unicode ✓')).resolves.toBe('ünïcode')
  await expect(kv.list()).resolves.toMatchObject({
    keys: [
      { name: 'blob', expiration: 2000000000 },
      { name: 'file' },
      { name: 'inline', metadata: { kind: 'inline' } },
      { name: 'unicode ✓' },
    ],
    list_complete: true,
  })
  await kv.put('new', 'written now')
  await kv.close()
  const again = new KV({ path: dir, namespace: 'fixture' })
  await expect(again.get('new')).resolves.toBe('written now')
  await expect(again.get('inline')).resolves.toBe('small value')
  await again.close()
})

test('values, bytes and expirations survive close and reopen', async () => {
  const dir = tempDir()
  const clock = () => 1_900_000_000_000
  const first = new KV({ path: dir, namespace: 'A', clock })
  await first.put('text', 'hello')
  await first.put('bytes', new Uint8Array([0, 255]))
  await first.put('empty', '')
  await first.put('large', 'z'.repeat(500_000))
  await first.put('expiring', 'soon', { expirationTtl: 60 })
  await first.close()

  const second = new KV({ path: dir, namespace: 'A', clock })
  await expect(second.get('text')).resolves.toBe('hello')
  expect([...new Uint8Array(await second.get('bytes', 'arrayBuffer'))]).toEqual([0, 255])
  await expect(second.get('empty')).resolves.toBe('')
  await expect(second.get('large')).resolves.toBe('z'.repeat(500_000))
  await expect(second.get('expiring')).resolves.toBe('soon')
  const later = new KV({ path: dir, namespace: 'A', clock: () => 1_900_000_060_000 })
  await expect(later.get('expiring')).resolves.toBeNull()
  await Promise.all([second.close(), later.close()])
})

test('what one process wrote, another reads back the same: values, metadata, expirations, order', async () => {
  const dir = tempDir()
  const clock = 1_900_000_000_000
  runNode(`
    const kv = new KV({ path: ${JSON.stringify(dir)}, namespace: 'P', clock: () => ${clock} })
    ;(async () => {
      await kv.put('z/last', 'text', { metadata: { n: 1 } })
      await kv.put('a😀', new Uint8Array([0, 128, 255]), { expirationTtl: 3600 })
      await kv.put('a\\u0000nul', '', { metadata: 0, expiration: ${clock / 1000 + 600} })
      await kv.put('big', 'b'.repeat(300000), { metadata: 'large' })
      await kv.put('gone', 'x', { expirationTtl: 60 })
      await kv.close()
    })()
  `)
  const kv = new KV({ path: dir, namespace: 'P', clock: () => clock + 61_000 })
  await expect(kv.list()).resolves.toStrictEqual({
    keys: [
      { name: 'a\u0000nul', expiration: clock / 1000 + 600, metadata: 0 },
      { name: 'a😀', expiration: clock / 1000 + 3600 },
      { name: 'big', metadata: 'large' },
      { name: 'z/last', metadata: { n: 1 } },
    ],
    list_complete: true,
    cacheStatus: null,
  })
  expect([...new Uint8Array(await kv.get('a😀', 'arrayBuffer'))]).toEqual([0, 128, 255])
  await expect(kv.getWithMetadata('a\u0000nul')).resolves.toMatchObject({ value: '', metadata: 0 })
  await expect(kv.get('big')).resolves.toBe('b'.repeat(300000))
  await expect(kv.getWithMetadata('z/last', 'text')).resolves.toMatchObject({
    value: 'text',
    metadata: { n: 1 },
  })
  await expect(kv.get('gone')).resolves.toBeNull()
  await kv.close()
})

test('a durable write issued just before close() resolves, and is on disk', async () => {
  const dir = tempDir()
  const kv = new KV({ path: dir, durable: true })
  const written = kv.put('key', 'written before close')
  const closed = kv.close()
  await expect(written).resolves.toBeUndefined()
  await expect(closed).resolves.toBeUndefined()
  const reopened = new KV({ path: dir })
  await expect(reopened.get('key')).resolves.toBe('written before close')
  await reopened.close()
})

test('with durable, restore and clear are on disk when they resolve', async () => {
  const dir = tempDir()
  const child = spawn(process.execPath, [
    '-e',
    `const { KV } = require(${JSON.stringify(ROOT)})
     const kv = new KV({ path: ${JSON.stringify(dir)}, durable: true, flushEveryMs: 0 })
     ;(async () => {
       await kv.put('kept', 'v')
       const snapshot = await kv.snapshot()
       await kv.clear()
       await kv.put('dropped', 'v')
       await kv.restore(snapshot)
       console.log('restored')
       setInterval(() => {}, 1000)
     })()`,
  ])
  await new Promise((resolve) => child.stdout.once('data', resolve))
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  const kv = new KV({ path: dir })
  await expect(kv.get('kept')).resolves.toBe('v')
  await expect(kv.get('dropped')).resolves.toBeNull()
  await kv.close()
})

test('namespaces in one directory are isolated from each other', async () => {
  const dir = tempDir()
  const a = new KV({ path: dir, namespace: 'A' })
  const b = new KV({ path: dir, namespace: 'B' })
  await a.put('key', 'in A')
  await expect(b.get('key')).resolves.toBeNull()
  await b.put('key', 'in B')
  await expect(a.get('key')).resolves.toBe('in A')
  await Promise.all([a.close(), b.close()])
})

test('two KVs on one path and namespace share data, and closing one leaves the other open', async () => {
  const dir = tempDir()
  const a = new KV({ path: dir, namespace: 'SHARED' })
  const b = new KV({ path: path.join(dir, '.', '..', path.basename(dir)), namespace: 'SHARED' })
  await a.put('key', 'from a')
  await expect(b.get('key')).resolves.toBe('from a')
  await a.close()
  await b.put('key', 'from b')
  await expect(b.get('key')).resolves.toBe('from b')
  await b.close()
  const reopened = new KV({ path: dir, namespace: 'SHARED' })
  await expect(reopened.get('key')).resolves.toBe('from b')
  await reopened.close()
})

test.each([0, 4096, 64 * 1024])(
  'cacheCapacity %d: reads stay right when the caches cannot hold everything',
  async (cacheCapacity) => {
    const dir = tempDir()
    const kv = new KV({ path: dir, cacheCapacity })
    const names = Array.from({ length: 400 }, (_, i) => `key:${i}`)
    for (const name of names) await kv.put(name, `first ${name}`)
    for (const name of names.slice(0, 200)) await kv.put(name, `second ${name}`)
    for (const name of names.slice(300)) await kv.delete(name)
    const want = (i) => (i < 200 ? `second key:${i}` : i < 300 ? `first key:${i}` : null)
    const check = async (store) => {
      for (let i = 0; i < names.length; i++) {
        await expect(store.get(names[i])).resolves.toBe(want(i))
      }
      expect((await store.list()).keys).toHaveLength(300)
    }
    await check(kv)
    await kv.close()
    const reopened = new KV({ path: dir, cacheCapacity })
    await check(reopened)
    await reopened.close()
  },
)

test('writes made before a normal exit without close() are on disk', async () => {
  const dir = tempDir()
  runNode(`
    const kv = new KV({ path: ${JSON.stringify(dir)}, namespace: 'EXIT', flushEveryMs: 0 })
    kv.put('key', 'written before exit').then(() => process.exit(0))
  `)
  const kv = new KV({ path: dir, namespace: 'EXIT' })
  await expect(kv.get('key')).resolves.toBe('written before exit')
  await kv.close()
})

describe('a directory in use by another process', () => {
  let child
  afterEach(() => child?.kill('SIGKILL'))

  test('without sharing, opening fails at once naming the directory, the owner pid and why', async () => {
    const dir = tempDir()
    child = await holdStore(dir, { shared: false })
    const error = openError({ path: dir, namespace: 'OTHER' })
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_KV_LOCKED')
    expect(error.message).toContain(`"${fs.realpathSync(dir)}"`)
    expect(error.message).toContain(
      `(pid ${child.pid}), which cannot share it: it does not share it (an older kv-binding, or one opened with shared: false)`,
    )
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    const kv = new KV({ path: dir })
    await kv.put('key', 'after the owner died')
    await expect(kv.get('key')).resolves.toBe('after the owner died')
    await kv.close()
  })

  test('shared: false on the opening side refuses a holder that shares', async () => {
    const dir = tempDir()
    child = await holdStore(dir)
    const error = openError({ path: dir, shared: false })
    expect(error.code).toBe('ERR_KV_LOCKED')
    expect(error.message).toContain(`(pid ${child.pid}). With shared: false a store directory`)
  })

  test('processes racing to open one store: one holds it, the others reach it through it', async () => {
    const dir = tempDir()
    const root = JSON.stringify(path.resolve(__dirname, '..'))
    const racer = (n) =>
      new Promise((resolve) => {
        const racing = spawn(process.execPath, [
          '-e',
          `const kv = new (require(${root}).KV)({ path: ${JSON.stringify(dir)} })
           kv.put('racer-${n}', String(process.pid))
             .then(() => kv.flush())
             .then(() => console.log('wrote'), (error) => console.log(error.message))
             .finally(() => setTimeout(() => kv.close(), 300))`,
        ])
        let out = ''
        racing.stdout.on('data', (chunk) => (out += chunk))
        racing.once('exit', () => resolve(out.trim()))
      })
    const results = await Promise.all(Array.from({ length: 6 }, (_, n) => racer(n)))
    expect(results).toEqual(Array(6).fill('wrote'))
    const kv = new KV({ path: dir })
    const { keys } = await kv.list()
    expect(keys.map((key) => key.name)).toEqual(Array.from({ length: 6 }, (_, n) => `racer-${n}`))
    await kv.close()
  })
})

describe('stores that cannot be used', () => {
  test('a path that is a file gives ERR_KV_STORAGE naming the path', () => {
    const file = path.join(tempDir(), 'file')
    fs.writeFileSync(file, 'not a directory')
    expect(() => new KV({ path: file })).toThrow(
      expect.objectContaining({ code: 'ERR_KV_STORAGE' }),
    )
    expect(() => new KV({ path: file })).toThrow(`The store "${file}" cannot be used`)
  })

  test('a damaged database file gives ERR_KV_CORRUPT with the path and how to recover', async () => {
    const dir = tempDir()
    const kv = new KV({ path: dir })
    await kv.put('key', 'value')
    await kv.close()
    const db = path.join(dir, 'db')
    const bytes = fs.readFileSync(db)
    for (let i = 0; i < bytes.length; i += 7) bytes[i] ^= 0x5a
    fs.writeFileSync(db, bytes)
    const error = openError({ path: dir })
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain(`The store "${fs.realpathSync(dir)}" cannot be read`)
    expect(error.message).toContain('delete the directory')
  })

  test('a truncated database file opens to its last intact write or fails clearly, never torn', async () => {
    for (const fraction of [0.75, 0.3, 0.05, 0]) {
      const dir = tempDir()
      const kv = new KV({ path: dir })
      for (let i = 0; i < 500; i++) await kv.put(`k${i}`, `value ${i}`, { metadata: { i } })
      await kv.close()
      const db = path.join(dir, 'db')
      fs.truncateSync(db, Math.floor(fs.statSync(db).size * fraction))
      let reopened
      try {
        reopened = new KV({ path: dir })
      } catch (error) {
        expect(error.code).toBe('ERR_KV_CORRUPT')
        expect(error.message).toContain('delete the directory')
        continue
      }
      const { keys } = await reopened.list()
      for (const { name, metadata } of keys) {
        await expect(reopened.get(name)).resolves.toBe(`value ${metadata.i}`)
        expect(name).toBe(`k${metadata.i}`)
      }
      await reopened.close()
    }
  })

  test('namespace names and keys never reach outside the store directory', async () => {
    const parent = tempDir()
    const dir = path.join(parent, 'store')
    const names = ['../escape', '/etc/passwd', '..', '.', 'a/../../b', 'C:\\temp', '\u0000']
    for (const namespace of names) {
      const kv = new KV({ path: dir, namespace })
      await kv.put('../../outside', 'v')
      await kv.put('/absolute', 'x'.repeat(5000))
      await kv.close()
    }
    expect(fs.readdirSync(parent)).toEqual(['store'])
    const kv = new KV({ path: dir, namespace: '../escape' })
    await expect(kv.get('../../outside')).resolves.toBe('v')
    await kv.close()
  })

  test('bad options are TypeErrors', () => {
    expect(() => new KV('path')).toThrow(new TypeError('The KV options must be an object.'))
    expect(() => new KV({ path: '' })).toThrow(TypeError)
    expect(() => new KV({ path: tempDir(), namespace: 7 })).toThrow(TypeError)
    expect(() => new KV({ clock: 5 })).toThrow(TypeError)
    expect(() => new KV({ path: tempDir(), cacheCapacity: -1 })).toThrow(TypeError)
    expect(() => new KV({ path: tempDir(), cacheCapacity: 1.5 })).toThrow(TypeError)
    // A fraction of a millisecond would be a flush loop that never rests.
    for (const flushEveryMs of [0.5, -1, Infinity, '200']) {
      expect(() => new KV({ path: tempDir(), flushEveryMs })).toThrow(
        new TypeError(
          'The flushEveryMs option must be a whole number of milliseconds, 0 (no background flush) or more.',
        ),
      )
    }
    expect(() => new KV({ durable: 'yes' })).toThrow(
      new TypeError('The durable option must be true or false.'),
    )
    const empty = () => new KV({ path: tempDir(), namespace: '' })
    expect(empty).toThrow(expect.objectContaining({ code: 'ERR_KV_INVALID_ARGUMENT' }))
    expect(empty).toThrow(TypeError)
  })
})

test('8 worker threads on one path share the store', async () => {
  const dir = tempDir()
  const main = new KV({ path: dir, namespace: 'THREADS' })
  const run = (id) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(
        `const { workerData, parentPort } = require('node:worker_threads')
         const { KV } = require(workerData.root)
         const kv = new KV({ path: workerData.dir, namespace: 'THREADS' })
         Promise.all(Array.from({ length: 50 }, (_, i) => kv.put(workerData.id + ':' + i, String(i))))
           .then(() => kv.close()).then(() => parentPort.postMessage('done'))`,
        { eval: true, workerData: { root: ROOT, dir, id } },
      )
      worker.once('message', resolve)
      worker.once('error', reject)
    })
  const threads = [0, 1, 2, 3, 4, 5, 6, 7]
  await Promise.all(threads.map(run))
  for (const id of threads) {
    await expect(main.get(`${id}:49`)).resolves.toBe('49')
  }
  await main.close()
})

test('terminating a worker with operations pending does not crash the process', async () => {
  const dir = tempDir()
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads')
     const { KV } = require(workerData.root)
     const kv = new KV({ path: workerData.dir })
     for (let i = 0; i < 20; i++) kv.put('big' + i, 'x'.repeat(1 << 20))
     parentPort.postMessage('busy')`,
    { eval: true, workerData: { root: ROOT, dir } },
  )
  await new Promise((resolve) => worker.once('message', resolve))
  await worker.terminate()
  const kv = new KV({ path: dir })
  await kv.put('alive', 'yes')
  await expect(kv.get('alive')).resolves.toBe('yes')
  await kv.close()
})

test('an error from a closed sled store is an Error of this realm', async () => {
  const kv = new KV({ path: tempDir() })
  await kv.close()
  expect(await rejection(kv.get('k'))).toBeInstanceOf(Error)
})
