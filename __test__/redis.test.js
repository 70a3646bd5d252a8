'use strict'

// What only the Redis backend has: sharing between processes, failures of the server and of
// the network, credentials, durability with AOF, and damage found in what Redis hands back.
// The conformance suites run on Redis too (see helpers.js); the servers here are private to
// this file, so that they can be stopped, restarted and killed.

const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { KV } = require('..')
const { rejection } = require('./helpers')
const {
  has,
  freePort,
  startServer,
  restart,
  startCluster,
  clusterOk,
  stop,
} = require('./redis/servers')

const available = has('redis-server') && has('redis-cli')
if (!available) {
  if (process.env.CI === 'true') throw new Error('redis-server is required under CI=true')
  console.log('kv-binding: redis-server is not installed here, so redis.test.js is skipped.')
}
const describeRedis = available ? describe : describe.skip

// Servers are started, stopped and restarted here: more than Jest's default 5 s.
jest.setTimeout(30_000)

const ROOT = JSON.stringify(path.resolve(__dirname, '..'))

function redisCli(port, ...args) {
  const result = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`redis-cli failed: ${result.stderr}`)
  return result.stdout.trim()
}

/** Runs `script` in another Node process with `KV` in scope; resolves its stdout. */
function inChild(script) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      '-e',
      `const { KV } = require(${ROOT});
       (async () => { ${script} })().catch((error) => { console.error(error); process.exit(1) })`,
    ])
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk) => (out += chunk))
    child.stderr.on('data', (chunk) => (err += chunk))
    child.once('exit', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`child failed: ${err}`)),
    )
  })
}

describeRedis('Redis', () => {
  let server
  let url
  const opened = []
  const open = (options = {}) => {
    const kv = new KV({ url, timeoutMs: 2000, ...options })
    opened.push(kv)
    return kv
  }

  beforeAll(async () => {
    server = await startServer(['--appendonly', 'no'])
    url = `redis://127.0.0.1:${server.port}`
  })
  afterAll(async () => {
    await Promise.all(opened.map((kv) => kv.close()))
    await stop([server])
  })

  test('processes on one namespace see each other’s writes at once', async () => {
    const kv = open({ namespace: 'shared' })
    await kv.put('from-parent', 'hello')
    const writers = [1, 2, 3].map((n) =>
      inChild(`
        const kv = new KV({ url: ${JSON.stringify(url)}, namespace: 'shared' })
        console.log(await kv.get('from-parent'))
        await Promise.all(Array.from({ length: 50 }, (_, i) => kv.put('w${n}:' + i, String(i))))
        await kv.close()`),
    )
    expect(await Promise.all(writers)).toEqual(['hello', 'hello', 'hello'])
    const page = await kv.list({ prefix: 'w' })
    expect(page.keys).toHaveLength(150)
    await expect(kv.get('w2:49')).resolves.toBe('49')
  })

  test('hundreds of operations started in one turn each get their own result, in call order per key', async () => {
    const kv = open({ namespace: 'burst' })
    // More than one batch of writes to distinct keys, and one key written over and over.
    const writes = Array.from({ length: 300 }, (_, i) => kv.put(`k${i}`, `v${i}`))
    const overwrites = Array.from({ length: 100 }, (_, i) => kv.put('same', `take ${i}`))
    const readBack = kv.get('same')
    await Promise.all([...writes, ...overwrites])
    await expect(readBack).resolves.toBe('take 99')
    const reads = await Promise.all(Array.from({ length: 300 }, (_, i) => kv.get(`k${299 - i}`)))
    expect(reads).toEqual(Array.from({ length: 300 }, (_, i) => `v${299 - i}`))
    // A failure in a batch is that operation's alone.
    const mixed = await Promise.allSettled([kv.get('k1'), kv.get('x'.repeat(513)), kv.get('k2')])
    expect(mixed.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(mixed[2].value).toBe('v2')
  })

  test('operations complete when the host’s queueMicrotask is replaced (fake timers)', async () => {
    const out = await inChild(`
      globalThis.queueMicrotask = () => {}
      const kv = new KV({ url: ${JSON.stringify(url)}, namespace: 'faked' })
      await kv.put('k', 'still here')
      console.log(await kv.get('k'))
      await kv.close()`)
    expect(out).toBe('still here')
  })

  test('a worker thread ended with Redis operations in flight does not crash the process', async () => {
    const { Worker } = require('node:worker_threads')
    const worker = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads')
       const { KV } = require(workerData.root)
       const kv = new KV({ url: workerData.url, namespace: 'ended' })
       const spin = () => {
         for (let i = 0; i < 200; i++) kv.put('k' + i, 'x'.repeat(1000))
         setImmediate(spin)
       }
       spin()
       parentPort.postMessage('busy')`,
      { eval: true, workerData: { root: JSON.parse(ROOT), url } },
    )
    await new Promise((resolve) => worker.once('message', resolve))
    await new Promise((resolve) => setTimeout(resolve, 50))
    await worker.terminate()
    const kv = open({ namespace: 'ended' })
    await kv.put('alive', 'yes')
    await expect(kv.get('alive')).resolves.toBe('yes')
  })

  test('the key prefix keeps namespaces apart; the same prefix and name share', async () => {
    const a = open({ namespace: 'apart', keyPrefix: 'one:' })
    const b = open({ namespace: 'apart', keyPrefix: 'two:' })
    const a2 = open({ namespace: 'apart', keyPrefix: 'one:' })
    await a.put('k', 'from one')
    await expect(b.get('k')).resolves.toBeNull()
    await expect(a2.get('k')).resolves.toBe('from one')
    expect(redisCli(server.port, 'exists', 'one:{apart:0}:v:k')).toBe('1')
  })

  test('the layout is written once, and Redis never expires a key itself', async () => {
    const kv = open({ namespace: 'layout' })
    await kv.put('soon', 'v', { expiration: Math.floor(Date.now() / 1000) + 60 })
    const layout = JSON.parse(redisCli(server.port, 'get', 'kv:{layout}:layout'))
    expect(layout).toEqual({
      format: 2,
      partitions: 1,
      id: expect.stringMatching(/^[0-9a-f]{16}$/),
    })
    // Each partition keeps a copy that every operation checks.
    expect(JSON.parse(redisCli(server.port, 'get', 'kv:{layout:0}:layout'))).toEqual(layout)
    // The KV clock alone decides expiry: Redis holds no TTL that could hide a live key.
    expect(redisCli(server.port, 'ttl', 'kv:{layout:0}:v:soon')).toBe('-1')
    const split = open({ namespace: 'split', partitions: 4 })
    const keys = Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, '0')}`)
    await split.bulkPut(keys.map((key) => ({ key, value: key })))
    expect(JSON.parse(redisCli(server.port, 'get', 'kv:{split}:layout')).partitions).toBe(4)
    expect(redisCli(server.port, 'exists', ...[0, 1, 2, 3].map((p) => `kv:{split:${p}}:i`))).toBe(
      '4',
    )
    // Later opens keep the layout the namespace was made with: with 9 partitions they would
    // look for most keys where they are not.
    const again = open({ namespace: 'split', partitions: 9 })
    expect((await again.list()).keys.map((key) => key.name)).toEqual(keys)
    for (const key of keys) await expect(again.get(key)).resolves.toBe(key)
    expect(JSON.parse(redisCli(server.port, 'get', 'kv:{split}:layout')).partitions).toBe(4)
  })

  test('a layout of another format is refused, not misread', async () => {
    redisCli(server.port, 'set', 'kv:{future}:layout', '{"format":3,"partitions":1}')
    const error = await rejection(open({ namespace: 'future' }).get('k'))
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain('layout format 3')
  })

  test('no namespace, key or prefix reaches another’s Redis keys, whatever bytes it holds', async () => {
    const t = open({ namespace: 'T' })
    const other = open({ namespace: 'T:0}:v:X' })
    await t.put('X:0}:v:K', 'read by T')
    await t.put('X:0}:i', 'also T’s')
    await other.put('K', 'written by the other')
    await expect(t.get('X:0}:v:K')).resolves.toBe('read by T')
    await expect(other.get('K')).resolves.toBe('written by the other')
    // A delete whose key spells the other namespace's index empties nothing of it.
    await t.delete('X:0}:i')
    expect((await other.list()).keys.map((key) => key.name)).toEqual(['K'])
    expect((await t.list()).keys.map((key) => key.name)).toEqual(['X:0}:v:K'])
    // A prefix and a namespace that spell the same text apart are apart.
    const a = open({ keyPrefix: 'a', namespace: ':x' })
    const b = open({ keyPrefix: 'a:', namespace: 'x' })
    const c = open({ keyPrefix: 'ab', namespace: 'c' })
    const d = open({ keyPrefix: 'a', namespace: 'bc', partitions: 3 })
    await a.put('k', 'a')
    await b.put('k', 'b')
    await c.put('k', 'c')
    await d.put('k', 'd')
    expect(await Promise.all([a, b, c, d].map((kv) => kv.get('k')))).toEqual(['a', 'b', 'c', 'd'])
    expect(redisCli(server.port, 'exists', 'a{%3Ax}:layout', 'a:{x}:layout')).toBe('2')
    // The escapes themselves are escaped: a name written as an escape is another name.
    const escaped = open({ namespace: '%3A' })
    const colon = open({ namespace: ':' })
    await escaped.put('k', 'percent')
    await colon.put('k', 'colon')
    await expect(escaped.get('k')).resolves.toBe('percent')
    expect(redisCli(server.port, 'exists', 'kv:{%253A:0}:v:k', 'kv:{%3A:0}:v:k')).toBe('2')
  })

  test('a namespace in layout format 1 is upgraded in place, or refused with how to move it', async () => {
    // What a kv-binding of format 1 left: the layout outside any hash tag, no copies.
    const sealed = (text) => {
      const record = Buffer.concat([Buffer.from([0]), Buffer.from(text)])
      const crc = Buffer.alloc(4)
      crc.writeUInt32BE(require('node:zlib').crc32(record))
      return Buffer.concat([crc, record])
    }
    const plain = sealed('')
    const value = sealed('from format 1')
    const cli = (...args) => {
      const result = spawnSync(
        'redis-cli',
        ['-p', String(server.port), '-x', ...args.slice(0, -1)],
        {
          input: args.at(-1),
        },
      )
      if (result.status !== 0) throw new Error(String(result.stderr))
    }
    redisCli(server.port, 'set', 'kv:old:layout', '{"format":1,"partitions":1}')
    redisCli(server.port, 'zadd', 'kv:{old:0}:i', '0', 'k')
    cli('hset', 'kv:{old:0}:m', 'k', plain)
    cli('set', 'kv:{old:0}:v:k', value)
    const old = open({ namespace: 'old' })
    await expect(old.get('k')).resolves.toBe('from format 1')
    expect((await old.list()).keys.map((key) => key.name)).toEqual(['k'])
    expect(JSON.parse(redisCli(server.port, 'get', 'kv:{old}:layout')).format).toBe(2)
    await old.put('k2', 'new')
    await expect(open({ namespace: 'old' }).get('k2')).resolves.toBe('new')
    // A name format 1 could not keep apart: its keys are not where this format looks.
    redisCli(server.port, 'set', 'kv:a:b:layout', '{"format":1,"partitions":1}')
    const error = await rejection(open({ namespace: 'a:b' }).get('k'))
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain('layout format 1')
    expect(error.message).toContain('restore()')
  })

  test('after FLUSHALL, a running KV and a new process agree on where keys live', async () => {
    const running = open({ namespace: 'flushed', partitions: 8 })
    await running.bulkPut(Array.from({ length: 20 }, (_, i) => ({ key: `old${i}`, value: 'x' })))
    redisCli(server.port, 'flushall')
    // Another process makes the namespace afresh, with its own layout, and writes.
    await inChild(`
      const kv = new KV({ url: ${JSON.stringify(url)}, namespace: 'flushed', partitions: 1 })
      await kv.bulkPut(Array.from({ length: 100 }, (_, i) => ({ key: 'new' + i, value: String(i) })))
      await kv.close()`)
    // The running KV's next write stops, saying why, before it writes anywhere...
    const error = await rejection(running.put('lost?', 'no'))
    expect(error.code).toBe('ERR_KV_STORAGE')
    expect(error.message).toContain('its layout on the server is not the one this KV was using')
    // ...and from then on it uses the server's layout: every key, and list agrees with get.
    const listed = (await running.list()).keys.map((key) => key.name)
    expect(listed).toHaveLength(100)
    for (const name of listed) await expect(running.get(name)).resolves.not.toBeNull()
    await running.put('after', 'yes')
    await expect(open({ namespace: 'flushed' }).get('after')).resolves.toBe('yes')
    expect(await open({ namespace: 'flushed' }).get('lost?')).toBeNull()
  })

  test('a user who may only read can get and list; its write fails without side effects', async () => {
    const writer = open({ namespace: 'readable' })
    await writer.put('k', 'v')
    redisCli(
      server.port,
      'acl',
      'setuser',
      'reader',
      'on',
      '>secret',
      '~*',
      '-@all',
      '+@read',
      '+@connection',
      '+evalsha',
      '+eval',
      '+script|load',
    )
    const reader = open({
      url: `redis://reader:secret@127.0.0.1:${server.port}`,
      namespace: 'readable',
    })
    await expect(reader.get('k')).resolves.toBe('v')
    expect((await reader.list()).keys.map((key) => key.name)).toEqual(['k'])
    // A namespace nobody made reads as empty, and making it is left to a writer.
    const nothing = open({
      url: `redis://reader:secret@127.0.0.1:${server.port}`,
      namespace: 'none',
    })
    await expect(nothing.get('k')).resolves.toBeNull()
    expect((await nothing.list()).keys).toEqual([])
    expect(redisCli(server.port, 'exists', 'kv:{none}:layout')).toBe('0')
    const error = await rejection(reader.put('k', 'changed'))
    expect(error.code).toBe('ERR_KV_STORAGE')
    // Refused by the server: the namespace's note in the prefix's set of namespaces (SADD),
    // or the write script.
    expect(error.message).toMatch(/no permissions to run the 'sadd' command|can't run this command/)
    await expect(writer.get('k')).resolves.toBe('v')
  })

  test('a server that may evict any key is refused, saying how to fix it', async () => {
    redisCli(server.port, 'config', 'set', 'maxmemory-policy', 'allkeys-lru')
    try {
      const error = await rejection(open({ namespace: 'evicting' }).get('k'))
      expect(error.code).toBe('ERR_KV_STORAGE')
      expect(error.message).toContain('maxmemory-policy allkeys-lru')
      expect(error.message).toContain('noeviction')
      // A volatile policy leaves keys without a TTL alone, and kv-binding sets none.
      redisCli(server.port, 'config', 'set', 'maxmemory-policy', 'volatile-lru')
      const kv = open({ namespace: 'evicting' })
      await kv.put('k', 'kept')
      await expect(kv.get('k')).resolves.toBe('kept')
    } finally {
      redisCli(server.port, 'config', 'set', 'maxmemory-policy', 'noeviction')
    }
  })

  test('a damaged or foreign value reads as ERR_KV_CORRUPT naming the key', async () => {
    const kv = open({ namespace: 'damaged' })
    await kv.put('good', 'fine')
    await kv.put('bad', 'will be overwritten')
    redisCli(server.port, 'set', 'kv:{damaged:0}:v:bad', 'not a record')
    const error = await rejection(kv.get('bad'))
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain('"bad"')
    expect(error.message).toContain(`"damaged" on the Redis server at 127.0.0.1:${server.port}`)
    await expect(kv.get('good')).resolves.toBe('fine')
    // One changed byte behind a valid-looking header fails its checksum.
    redisCli(server.port, 'setrange', 'kv:{damaged:0}:v:good', '6', 'X')
    expect((await rejection(kv.get('good'))).message).toContain('checksum')
    const dumped = []
    await kv.dump({ onDamaged: (key) => dumped.push(key) })
    expect(dumped.sort()).toEqual(['bad', 'good'])
  })

  test('list goes on past a lost or damaged list record, and names a key it cannot read', async () => {
    const kv = open({ namespace: 'mended' })
    const expiration = Math.floor(Date.now() / 1000) + 3600
    await kv.put('a', '1', { metadata: { n: 1 } })
    await kv.put('b', '2', { metadata: { n: 2 }, expiration })
    await kv.put('c', '3')
    const whole = [
      { name: 'a', metadata: { n: 1 } },
      { name: 'b', metadata: { n: 2 }, expiration },
      { name: 'c' },
    ]
    // Every list record lost (the hash evicted or deleted): the values stand in.
    redisCli(server.port, 'del', 'kv:{mended:0}:m')
    expect((await kv.list()).keys).toEqual(whole)
    // One list record that is not a record.
    redisCli(server.port, 'hset', 'kv:{mended:0}:m', 'b', 'garbage')
    expect((await kv.list()).keys).toEqual(whole)
    // A key whose list record and value are both gone is gone: get and list agree.
    redisCli(server.port, 'del', 'kv:{mended:0}:v:c')
    await expect(kv.get('c')).resolves.toBeNull()
    expect((await kv.list()).keys).toEqual(whole.slice(0, 2))
    // A damaged value with no list record: list names the key, as get does.
    redisCli(server.port, 'set', 'kv:{mended:0}:v:a', 'not a record')
    const error = await rejection(kv.list())
    expect(error.code).toBe('ERR_KV_CORRUPT')
    expect(error.message).toContain('"a"')
    // Written again, it lists as any other.
    await kv.put('a', 'again')
    expect((await kv.list()).keys.map((key) => key.name)).toEqual(['a', 'b'])
  })

  test('a server error (a key of ours holding something else) is ERR_KV_STORAGE, nothing changed', async () => {
    const kv = open({ namespace: 'clash' })
    await kv.put('kept', 'v')
    redisCli(server.port, 'del', 'kv:{clash:0}:m')
    redisCli(server.port, 'set', 'kv:{clash:0}:m', 'not a hash')
    const error = await rejection(kv.put('new', 'x'))
    expect(error.code).toBe('ERR_KV_STORAGE')
    // Refused by the server: surely not applied.
    expect(error.outcome).toBeUndefined()
    expect(error.message).toContain(`"clash" on the Redis server at 127.0.0.1:${server.port}`)
    expect(error.message).toContain('WRONGTYPE')
    // The script refused before its first write: the index did not gain the key either.
    expect(redisCli(server.port, 'zrange', 'kv:{clash:0}:i', '0', '-1')).toBe('kept')
    expect((await rejection(kv.delete('kept'))).code).toBe('ERR_KV_STORAGE')
    expect((await rejection(kv.clear())).code).toBe('ERR_KV_STORAGE')
    expect(redisCli(server.port, 'zrange', 'kv:{clash:0}:i', '0', '-1')).toBe('kept')
    expect(redisCli(server.port, 'exists', 'kv:{clash:0}:v:kept')).toBe('1')
  })

  test('a large bulkPut, restore or clear goes in bounded script calls, in order', async () => {
    const kv = open({ namespace: 'chunks' })
    await kv.put('warm', 'up') // the script is loaded: from here on, one EVALSHA per call
    const calls = () => {
      const line = redisCli(server.port, 'info', 'commandstats')
        .split('\n')
        .find((entry) => entry.startsWith('cmdstat_evalsha:'))
      return Number(/calls=(\d+)/.exec(line)[1])
    }
    const many = Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }))
    // A key written twice, in the first chunk and the last: the later value wins.
    many.push({ key: 'k0', value: 'last' })
    let before = calls()
    await kv.bulkPut(many)
    expect(calls() - before).toBeGreaterThanOrEqual(7) // 500 entries a call at most
    await expect(kv.get('k0')).resolves.toBe('last')
    await expect(kv.get('k2999')).resolves.toBe('v2999')
    // Big values: about 1 MiB a call.
    before = calls()
    const big = 'x'.repeat(300 * 1024)
    await kv.bulkPut(Array.from({ length: 8 }, (_, i) => ({ key: `big${i}`, value: big })))
    expect(calls() - before).toBeGreaterThanOrEqual(3)
    // Restoring a small snapshot over 3,009 keys: the clear goes 1,000 keys a call.
    const small = new KV()
    await small.bulkPut([{ key: 'only', value: 'one' }])
    const snapshot = await small.snapshot()
    before = calls()
    await kv.restore(snapshot)
    expect(calls() - before).toBeGreaterThanOrEqual(4)
    expect((await kv.list()).keys.map((key) => key.name)).toEqual(['only'])
    expect(redisCli(server.port, 'exists', 'kv:{chunks:0}:v:k5')).toBe('0')
    // Restoring it again, over one key, is a single atomic call.
    before = calls()
    await kv.restore(snapshot)
    expect(calls() - before).toBe(1)
    await kv.bulkPut(many)
    before = calls()
    await kv.clear()
    expect(calls() - before).toBeGreaterThanOrEqual(3)
    expect((await kv.list()).keys).toEqual([])
    expect(redisCli(server.port, 'keys', 'kv:{chunks:0}:[imv]*')).toBe('')
    await small.close()
  })

  test('a bulkPut refused after its first call says that part of it was applied', async () => {
    const { crc32 } = require('node:zlib')
    const kv = open({ namespace: 'partly', partitions: 2 })
    // 500 keys of partition 0 (one call), then one of partition 1, whose index is damaged.
    const keys = []
    for (let i = 0; keys.length < 500; i++) if (crc32(`p0-${i}`) % 2 === 0) keys.push(`p0-${i}`)
    let other = 0
    while (crc32(`p1-${other}`) % 2 !== 1) other++
    await kv.put(keys[0], 'old')
    redisCli(server.port, 'set', 'kv:{partly:1}:i', 'not an index')
    const error = await rejection(
      kv.bulkPut([...keys, `p1-${other}`].map((key) => ({ key, value: 'new' }))),
    )
    expect(error.code).toBe('ERR_KV_STORAGE')
    expect(error.outcome).toBe('unknown')
    expect(error.message).toContain('WRONGTYPE')
    expect(error.message).toContain('Part of this write was applied')
    await expect(kv.get(keys[0])).resolves.toBe('new')
    await expect(kv.get(keys[499])).resolves.toBe('new')
  })

  test('a bad URL is a TypeError that does not repeat the URL', () => {
    let error
    try {
      new KV({ url: 'http://user:hunter2@example.com' })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(TypeError)
    expect(error.code).toBe('ERR_KV_INVALID_ARGUMENT')
    expect(error.message).not.toContain('hunter2')
    expect(() => new KV({ url, path: '/tmp/x' })).toThrow(TypeError)
    expect(() => new KV({ url, timeoutMs: 0 })).toThrow('timeoutMs')
    expect(() => new KV({ url, partitions: 2000 })).toThrow('partitions')
  })
})

describeRedis('Redis failures', () => {
  test('an unreachable server rejects within the timeout, naming the host and never the password', async () => {
    const port = await freePort()
    const kv = new KV({ url: `redis://app:s3cret-pw@127.0.0.1:${port}`, timeoutMs: 300 })
    const started = Date.now()
    const error = await rejection(kv.put('k', 'v'))
    expect(Date.now() - started).toBeLessThan(5000)
    expect(error.code).toBe('ERR_KV_UNAVAILABLE')
    expect(error.message).toContain(`127.0.0.1:${port}`)
    expect(error.message).not.toContain('s3cret-pw')
    expect(JSON.stringify(error)).not.toContain('s3cret-pw')
    await kv.close()
  })

  test('credentials: none, wrong and right', async () => {
    const server = await startServer(['--requirepass', 'right-pw'])
    try {
      const base = `127.0.0.1:${server.port}`
      const none = new KV({ url: `redis://${base}`, timeoutMs: 2000 })
      const noneError = await rejection(none.get('k'))
      expect(noneError.code).toBe('ERR_KV_UNAVAILABLE')
      expect(noneError.message).toContain('credentials')
      const wrong = new KV({ url: `redis://:wrong-pw@${base}`, timeoutMs: 2000 })
      const wrongError = await rejection(wrong.get('k'))
      expect(wrongError.code).toBe('ERR_KV_UNAVAILABLE')
      expect(wrongError.message).not.toContain('wrong-pw')
      const right = new KV({ url: `redis://:right-pw@${base}`, timeoutMs: 2000 })
      await right.put('k', 'v')
      await expect(right.get('k')).resolves.toBe('v')
      await Promise.all([none.close(), wrong.close(), right.close()])
    } finally {
      await stop([server])
    }
  })

  test('a server stopped mid-run: operations reject in bounded time, then reconnect by themselves', async () => {
    let server = await startServer(['--appendonly', 'no'])
    const { port } = server
    const kv = new KV({ url: `redis://127.0.0.1:${port}`, timeoutMs: 500 })
    try {
      await kv.put('before', '1')
      await stop([server])
      const started = Date.now()
      const results = await Promise.allSettled([kv.get('before'), kv.put('during', '2')])
      expect(Date.now() - started).toBeLessThan(5000)
      for (const result of results) {
        expect(result.status).toBe('rejected')
        expect(result.reason.code).toBe('ERR_KV_UNAVAILABLE')
      }
      server = await startServer(['--appendonly', 'no'], port)
      // The data went with the server (no persistence); the connection comes back. The
      // namespace's layout went too: the first operation to reach the server says so, once.
      let value
      let layoutErrors = 0
      for (let i = 0; i < 50; i++) {
        try {
          value = await kv.get('before')
          break
        } catch (error) {
          if (error.code === 'ERR_KV_STORAGE') {
            expect(error.message).toContain('its layout on the server is not the one')
            layoutErrors++
          } else {
            expect(error.code).toBe('ERR_KV_UNAVAILABLE')
          }
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      expect(layoutErrors).toBe(1)
      expect(value).toBeNull()
      await kv.put('after', '3')
      await expect(kv.get('after')).resolves.toBe('3')
    } finally {
      await kv.close()
      await stop([server])
    }
  })

  test('with appendfsync always, SIGKILL of the server loses no acknowledged write', async () => {
    const aof = ['--appendonly', 'yes', '--appendfsync', 'always']
    const first = await startServer(aof)
    const kv = new KV({ url: `redis://127.0.0.1:${first.port}`, timeoutMs: 2000 })
    const acknowledged = []
    let stopped = false
    const writing = (async () => {
      for (let i = 0; !stopped; i++) {
        try {
          await kv.put(`key-${i}`, `value-${i}`, { metadata: { i } })
          acknowledged.push(i)
        } catch (error) {
          expect(error.code).toBe('ERR_KV_UNAVAILABLE')
          return
        }
      }
    })()
    while (acknowledged.length < 200) await new Promise((resolve) => setTimeout(resolve, 10))
    first.child.kill('SIGKILL')
    await new Promise((resolve) => first.child.once('exit', resolve))
    stopped = true
    await writing
    // Same directory, same port: the AOF is replayed.
    const second = spawn(
      'redis-server',
      [
        '--port',
        String(first.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        first.dir,
        '--save',
        '',
        ...aof,
      ],
      { stdio: 'ignore' },
    )
    try {
      let entries
      for (let i = 0; i < 100 && entries === undefined; i++) {
        try {
          entries = await kv.dump()
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      const stored = new Set(entries.map((entry) => entry.key))
      for (const i of acknowledged) expect(stored.has(`key-${i}`)).toBe(true)
      const last = acknowledged[acknowledged.length - 1]
      await expect(kv.getWithMetadata(`key-${last}`)).resolves.toMatchObject({
        value: `value-${last}`,
        metadata: { i: last },
      })
    } finally {
      await kv.close()
      await stop([{ child: second, dir: first.dir }])
    }
  })

  test('a write the server got but did not answer is outcome unknown; one never sent is not', async () => {
    const server = await startServer(['--appendonly', 'no'])
    const kv = new KV({ url: `redis://127.0.0.1:${server.port}`, timeoutMs: 300 })
    try {
      await kv.put('a', '1')
      server.child.kill('SIGSTOP')
      const error = await rejection(kv.put('b', '2'))
      expect(error.code).toBe('ERR_KV_UNAVAILABLE')
      expect(error.outcome).toBe('unknown')
      expect(error.message).toContain('may or may not have been applied')
      expect((await rejection(kv.delete('a'))).outcome).toBe('unknown')
      server.child.kill('SIGCONT')
      // It was applied after all, once the server went on: hence "unknown".
      let value
      for (let i = 0; i < 50 && value !== '2'; i++) {
        value = await kv.get('b').catch(() => undefined)
        if (value !== '2') await new Promise((resolve) => setTimeout(resolve, 50))
      }
      expect(value).toBe('2')
    } finally {
      server.child.kill('SIGCONT')
      await stop([server])
    }
    // The server gone: the connection is refused before anything is sent.
    let refused
    for (let i = 0; i < 50; i++) {
      refused = await rejection(kv.put('c', '3'))
      if (/refused/i.test(refused.message)) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(refused.code).toBe('ERR_KV_UNAVAILABLE')
    expect(refused.message).toMatch(/refused/i)
    expect(refused.outcome).toBeUndefined()
    await kv.close()
  })

  test('an operation started beside one that is answered still times out', async () => {
    // Operations started in one turn go out together. The server answers the read and holds
    // the write (CLIENT PAUSE WRITE): the write must fail at its own deadline, not wait for
    // the pause to end.
    const server = await startServer(['--appendonly', 'no'])
    const kv = new KV({ url: `redis://127.0.0.1:${server.port}`, timeoutMs: 300 })
    try {
      await kv.put('x', 'before')
      expect(redisCli(server.port, 'client', 'pause', '4000', 'write')).toBe('OK')
      const started = Date.now()
      const read = kv.get('x')
      const write = rejection(kv.put('y', 'held'))
      await expect(read).resolves.toBe('before')
      const error = await write
      expect(error.code).toBe('ERR_KV_UNAVAILABLE')
      expect(error.outcome).toBe('unknown')
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      redisCli(server.port, 'client', 'unpause')
      await kv.close()
      await stop([server])
    }
  })

  test('close() settles while the server does not answer', async () => {
    const server = await startServer(['--appendonly', 'no'])
    const kv = new KV({ url: `redis://127.0.0.1:${server.port}`, timeoutMs: 400 })
    await kv.put('k', 'v')
    server.child.kill('SIGSTOP')
    try {
      const pending = kv.get('k')
      await kv.close()
      expect((await rejection(pending)).code).toBe('ERR_KV_UNAVAILABLE')
    } finally {
      server.child.kill('SIGCONT')
      await stop([server])
    }
  })
})

/** How many hash slots the cluster node `id` serves, as the node at `port` sees it. */
function slotsOf(port, id) {
  const line = redisCli(port, 'cluster', 'nodes')
    .split('\n')
    .find((entry) => entry.startsWith(id))
  return line
    .split(' ')
    .slice(8)
    .filter((range) => /^\d/.test(range))
    .reduce((sum, range) => {
      const [first, last = first] = range.split('-').map(Number)
      return sum + last - first + 1
    }, 0)
}

describeRedis('Redis Cluster', () => {
  test('braces in the namespace or prefix never split a partition across slots', async () => {
    const url = process.env.KV_TEST_REDIS_CLUSTER_URL
    for (const [namespace, keyPrefix] of [
      ['a}b{c', 'kv:'],
      ['plain', 'app{x}:'],
      ['{', '}{'],
    ]) {
      const kv = new KV({ url, cluster: true, namespace, keyPrefix, partitions: 4 })
      try {
        await kv.bulkPut(Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, value: `${i}` })))
        await kv.delete('k3')
        expect((await kv.list()).keys).toHaveLength(39)
        await expect(kv.get('k7')).resolves.toBe('7')
        await kv.clear()
        expect((await kv.list()).keys).toHaveLength(0)
      } finally {
        await kv.close()
      }
    }
  })

  test('a resharding in flight: reads and writes go on, following MOVED and ASK', async () => {
    const nodes = await startCluster()
    const [from, to] = nodes.map((node) => redisCli(node.port, 'cluster', 'myid'))
    const slotsBefore = slotsOf(nodes[1].port, to)
    const kv = new KV({ url: `redis://127.0.0.1:${nodes[0].port}`, cluster: true, timeoutMs: 5000 })
    try {
      const written = new Map()
      for (let i = 0; i < 200; i++) {
        await kv.put(`key-${i}`, `first-${i}`)
        written.set(`key-${i}`, `first-${i}`)
      }
      // Moves a third of the slots from the first node to the second while we work.
      const reshard = new Promise((resolve, reject) => {
        const child = spawn(
          'redis-cli',
          [
            '--cluster',
            'reshard',
            `127.0.0.1:${nodes[0].port}`,
            '--cluster-from',
            from,
            '--cluster-to',
            to,
            '--cluster-slots',
            '2000',
            '--cluster-yes',
            '--cluster-pipeline',
            '1',
          ],
          { stdio: 'ignore' },
        )
        child.once('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`reshard: ${code}`)),
        )
      })
      let done = false
      reshard.finally(() => (done = true)).catch(() => {})
      let rounds = 0
      let roundsWhileMoving = 0
      while (!done || rounds < 3) {
        for (let i = 0; i < 200; i += 7) {
          const key = `key-${i}`
          await expect(kv.get(key)).resolves.toBe(written.get(key))
          const value = `round-${rounds}-${i}`
          await kv.put(key, value)
          written.set(key, value)
        }
        rounds++
        // A whole round of reads and writes done before the move ended: they met it.
        if (!done) roundsWhileMoving++
      }
      await reshard
      // Some reads and writes did meet slots on the move.
      expect(roundsWhileMoving).toBeGreaterThan(0)
      const page = await kv.list()
      expect(page.keys).toHaveLength(200)
      for (const [key, value] of written) await expect(kv.get(key)).resolves.toBe(value)
      // The slots did move, and our partitions with them.
      expect(slotsOf(nodes[1].port, to) - slotsBefore).toBe(2000)
    } finally {
      await kv.close()
      await stop(nodes)
    }
  })

  test('a master killed and restarted: errors name it, and a running KV recovers by itself', async () => {
    const nodes = await startCluster(['--appendonly', 'yes', '--appendfsync', 'always'])
    const kv = new KV({ url: `redis://127.0.0.1:${nodes[0].port}`, cluster: true, timeoutMs: 1000 })
    try {
      const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
      await kv.bulkPut(keys.map((key) => ({ key, value: `value-${key}` })))
      const victim = nodes[1]
      victim.child.kill('SIGKILL')
      await new Promise((resolve) => victim.child.once('exit', resolve))
      // Reads fail naming the node of their key's slot (the seed's only for its own slots):
      // the dead node for the keys it served.
      const during = await Promise.allSettled(keys.map((key) => kv.get(key)))
      const failed = during.filter((result) => result.status === 'rejected')
      expect(failed.length).toBeGreaterThan(0)
      const named = new Set()
      for (const { reason } of failed) {
        expect(reason.code).toBe('ERR_KV_UNAVAILABLE')
        expect(reason.message).toMatch(/the cluster node serving slot \d+/)
        named.add(Number(/127\.0\.0\.1:(\d+)/.exec(reason.message)[1]))
      }
      expect(named).toContain(victim.port)
      for (const port of named) expect(nodes.map((node) => node.port)).toContain(port)
      for (const result of during.filter((result) => result.status === 'fulfilled')) {
        expect(result.value).toMatch(/^value-key-/)
      }
      await restart(victim)
      await clusterOk(nodes)
      // The same KV, without anything done to it, reads everything again within seconds.
      let read = []
      const healthy = Date.now()
      while (Date.now() - healthy < 10_000) {
        read = await Promise.all(keys.map((key) => kv.get(key).catch(() => null)))
        if (read.every((value) => value !== null)) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(read).toEqual(keys.map((key) => `value-${key}`))
      await kv.put('after', 'restart')
      await expect(kv.get('after')).resolves.toBe('restart')
    } finally {
      await kv.close()
      await stop(nodes)
    }
  })
})

/** A throwaway authority, and a server and a client certificate it signed, made by openssl. */
function certificates(dir) {
  const openssl = (...args) => {
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`)
  }
  const fs = require('node:fs')
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=kv-binding test authority',
  )
  fs.writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  for (const name of ['server', 'client']) {
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    )
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      'san.cnf',
    )
  }
  const read = (file) => fs.readFileSync(path.join(dir, file), 'utf8')
  return { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') }
}

describeRedis('Redis over TLS', () => {
  test('rediss:// with the authority given; refused without it; client certificates', async () => {
    const tlsPort = await freePort()
    const dir = require('node:fs').mkdtempSync(path.join(require('node:os').tmpdir(), 'kv-tls-'))
    const { ca, cert, key } = certificates(dir)
    const server = await startServer([
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      path.join(dir, 'server.crt'),
      '--tls-key-file',
      path.join(dir, 'server.key'),
      '--tls-ca-cert-file',
      path.join(dir, 'ca.crt'),
      '--tls-auth-clients',
      'yes',
    ])
    const url = `rediss://127.0.0.1:${tlsPort}`
    const opened = []
    const open = (options) => {
      const kv = new KV({ url, timeoutMs: 3000, ...options })
      opened.push(kv)
      return kv
    }
    try {
      const kv = open({ tls: { ca, cert, key } })
      await kv.put('secret', 'over TLS')
      await expect(kv.get('secret')).resolves.toBe('over TLS')

      const untrusted = await rejection(open({ tls: { cert, key } }).get('secret'))
      expect(untrusted.code).toBe('ERR_KV_UNAVAILABLE')
      expect(untrusted.message).toContain('certificate')
      // The server asks every client for a certificate.
      const anonymous = await rejection(open({ tls: { ca } }).get('secret'))
      expect(anonymous.code).toBe('ERR_KV_UNAVAILABLE')

      expect(() => new KV({ url: `redis://127.0.0.1:${server.port}`, tls: { ca } })).toThrow(
        'The tls option goes with a rediss:// URL.',
      )
      expect(() => new KV({ url, tls: { cert } })).toThrow('key with cert')
      expect(() => new KV({ url, tls: { ca: 'not PEM' } })).toThrow(TypeError)
    } finally {
      await Promise.all(opened.map((kv) => kv.close()))
      await stop([server])
      require('node:fs').rmSync(dir, { recursive: true, force: true })
    }
  })
})
