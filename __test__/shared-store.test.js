'use strict'

// One sled store, many processes: the process holding a store serves it on kv.sock inside
// the store directory, and the others reach it through that. What only this can show: the
// CLI next to a running demo, a holder killed mid-run, a holder that stops answering,
// hostile clients on the socket, and who may connect. The conformance suites run on a store
// held by another process too (the "sled, shared" backend in helpers.js).

const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { KV } = require('..')
const { tempDir, holdStore, rejection } = require('./helpers')

const ROOT = path.resolve(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'kv-binding.js')
const DEMO = path.join(ROOT, 'examples', 'demo.js')

if (process.platform === 'win32') {
  console.log(
    'kv-binding: stores are not shared on Windows yet, so shared-store.test.js is skipped.',
  )
}
const describeUnix = process.platform === 'win32' ? describe.skip : describe

jest.setTimeout(30_000)

const cli = (dir, ...args) =>
  spawnSync(process.execPath, [BIN, '--path', dir, ...args], { encoding: 'utf8' })

/** Starts the demo on `dir`; resolves `{ url, child }` once it listens. */
function startDemo(dir) {
  const child = spawn(process.execPath, [DEMO, '--port', '0', '--path', dir])
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      const match = /on (http:\/\/\S+?)\/? /.exec(String(chunk))
      if (match) resolve({ url: match[1], child })
    })
    child.once('exit', (code) => reject(new Error(`the demo exited with ${code}`)))
  })
}

/** Runs `script` in a Node process with `KV` in scope; resolves the process once it prints. */
function inChild(script) {
  const child = spawn(process.execPath, [
    '-e',
    `const { KV } = require(${JSON.stringify(ROOT)}); ${script}`,
  ])
  child.lines = []
  child.stdout.on('data', (chunk) => child.lines.push(...String(chunk).trim().split('\n')))
  return child
}

/**
 * Serves `dir`/kv.sock from a process of its own, as a holder gone wrong would: it answers
 * the hello, then each request by its variant (1 Get, 2 GetMany, 6 Scan, 7 Entries, 9 Flush)
 * with the bytes `answers` gives (response variants 0 Hello, 1 Entry, 2 Entries, 3 Done,
 * 4 Scanned, 5 All), or not at all when it gives none. `answers` is the source of a
 * declaration of `answers`, which may use `text(string)`, the wire's encoding of a string.
 * It prints each request's variant. Resolves the process once it serves.
 */
async function serveImpostor(dir, answers) {
  const impostor = spawn(process.execPath, [
    '-e',
    `const frame = (bytes) => {
       const head = Buffer.alloc(4)
       head.writeUInt32LE(bytes.length)
       return Buffer.concat([head, Buffer.from(bytes)])
     }
     const text = (string) => [string.length, ...Buffer.from(string)]
     ${answers}
     require('node:net')
       .createServer((connection) => {
         let pending = Buffer.alloc(0)
         connection.on('error', () => {})
         connection.on('data', (chunk) => {
           pending = Buffer.concat([pending, chunk])
           while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32LE(0)) {
             const variant = pending[4]
             pending = pending.subarray(4 + pending.readUInt32LE(0))
             if (variant !== 0) console.log('request ' + variant)
             const answer = variant === 0 ? [0, 1, 7] : answers[variant]
             if (answer) connection.write(frame(answer))
           }
         })
       })
       .listen(${JSON.stringify(path.join(dir, 'kv.sock'))}, () => console.log('serving'))`,
  ])
  impostor.requests = []
  await new Promise((resolve) => {
    impostor.stdout.on('data', (chunk) => {
      for (const line of String(chunk).trim().split('\n')) {
        if (line === 'serving') resolve()
        else impostor.requests.push(Number(line.split(' ')[1]))
      }
    })
  })
  return impostor
}

/** Resolves once process `pid` is stopped (its state in /proc is T), or after 200 ms elsewhere. */
async function stopped(pid) {
  const stat = `/proc/${pid}/stat`
  if (!fs.existsSync(stat)) return new Promise((resolve) => setTimeout(resolve, 200))
  const state = () => fs.readFileSync(stat, 'utf8').split(') ')[1][0]
  while (state() !== 'T') await new Promise((resolve) => setTimeout(resolve, 5))
}

const exited = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', resolve))

describeUnix('a store shared by processes', () => {
  const children = []
  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.kill('SIGKILL')
      await exited(child)
    }
  })

  test('the CLI reads and writes the store a running demo holds, and each sees the other', async () => {
    const dir = tempDir()
    const { url, child } = await startDemo(dir)
    children.push(child)
    // The CLI writes; the demo's worker reads it at once.
    expect(await (await fetch(`${url}/checkout`)).text()).toContain('new checkout flow')
    expect(cli(dir, 'put', 'feature-flags', '{"newCheckout":false}').status).toBe(0)
    const checkout = await (await fetch(`${url}/checkout`)).text()
    expect(checkout).toContain('classic checkout')
    // The demo writes; the CLI reads it.
    const login = await fetch(`${url}/login?user=ada`, { method: 'POST' })
    const id = login.headers.get('set-cookie').split(';')[0].split('=')[1]
    expect(cli(dir, 'list', '--prefix', 'session:')).toMatchObject({
      status: 0,
      stdout: `session:${id}\n`,
    })
    expect(JSON.parse(cli(dir, 'get', `session:${id}`).stdout)).toMatchObject({ user: 'ada' })
    expect(cli(dir, 'delete', `session:${id}`).status).toBe(0)
    expect((await fetch(`${url}/me`, { headers: { cookie: `session=${id}` } })).status).toBe(401)
    // The demo still holds the store: the socket is its, for its user alone.
    const socket = fs.statSync(path.join(dir, 'kv.sock'))
    expect(socket.isSocket()).toBe(true)
    expect(socket.mode & 0o777).toBe(0o600)
  })

  test('a holder killed mid-run: a client takes over with no flushed write lost', async () => {
    const dir = tempDir()
    // The holder writes durably and says which writes were acknowledged.
    const holder = inChild(`
      const kv = new KV({ path: ${JSON.stringify(dir)}, durable: true })
      let i = 0
      const next = () => kv.put('holder:' + i, String(i)).then(() => { console.log(i++); next() })
      next()`)
    children.push(holder)
    while (holder.lines.length < 5) await new Promise((resolve) => setTimeout(resolve, 10))
    const kv = new KV({ path: dir, durable: true })
    // The client writes durably too. A write whose holder dies before it is on disk rejects
    // (it may be lost), so only resolved writes are acknowledged.
    const acked = []
    const refused = []
    let stop = false
    const writing = (async () => {
      for (let i = 0; !stop; i++) {
        await kv.put(`client:${i}`, String(i)).then(
          () => acked.push(i),
          (error) => refused.push(error),
        )
      }
    })()
    while (acked.length < 20) await new Promise((resolve) => setTimeout(resolve, 5))
    holder.kill('SIGKILL')
    await exited(holder)
    const killedAt = acked.length
    // Writes go on: the client has taken the store over.
    while (acked.length < killedAt + 20) await new Promise((resolve) => setTimeout(resolve, 5))
    stop = true
    await writing
    expect(refused.length).toBeLessThanOrEqual(1)
    for (const error of refused) {
      expect(error.code).toBe('ERR_KV_STORAGE')
      expect(error.message).toContain(
        'went away before the writes it had acknowledged were on disk',
      )
    }
    const acknowledged = holder.lines.map(Number)
    const { keys } = await kv.list({ prefix: 'holder:' })
    const stored = new Set(keys.map((key) => key.name))
    for (const i of acknowledged) expect(stored).toContain(`holder:${i}`)
    for (const i of acked) await expect(kv.get(`client:${i}`)).resolves.toBe(String(i))
    await kv.close()
    // This process held the store last; it is free again.
    expect(fs.existsSync(path.join(dir, 'kv.sock'))).toBe(false)
  })

  test('a holder that closes hands the store to its client, which serves the next one', async () => {
    const dir = tempDir()
    const holder = new KV({ path: dir, namespace: 'A' })
    await holder.put('k', 'from the holder')
    // Clients here are in other processes: within one process a store is opened once.
    const client = inChild(`
      const kv = new KV({ path: ${JSON.stringify(dir)}, namespace: 'A' })
      process.stdin.on('data', async (line) => {
        const [op, key, value] = String(line).trim().split(' ')
        try {
          console.log(op === 'put' ? (await kv.put(key, value), 'ok') : await kv.get(key))
        } catch (error) { console.log(error.code) }
      })
      console.log('ready')`)
    children.push(client)
    const ask = async (line) => {
      const seen = client.lines.length
      client.stdin.write(`${line}\n`)
      while (client.lines.length === seen) await new Promise((resolve) => setTimeout(resolve, 5))
      return client.lines.at(-1)
    }
    while (client.lines.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    await expect(ask('get k')).resolves.toBe('from the holder')
    await holder.close()
    await expect(ask('put k from-the-client')).resolves.toBe('ok')
    // The client holds the store now; a third process reaches it through the client.
    expect(cli(dir, '--namespace', 'A', 'get', 'k')).toMatchObject({
      status: 0,
      stdout: 'from-the-client',
    })
  })

  // Through /proc/self/fd, which only Linux has; elsewhere such a store is not shared.
  const onLinux = process.platform === 'linux' ? test : test.skip
  onLinux('a store deeper than a socket address can name is shared all the same', async () => {
    const dir = path.join(tempDir(), 'a'.repeat(60), 'b'.repeat(60))
    expect(path.join(dir, 'kv.sock').length).toBeGreaterThan(108)
    const holder = await holdStore(dir)
    children.push(holder)
    expect(cli(dir, 'put', 'deep', 'down').status).toBe(0)
    expect(cli(dir, 'get', 'deep')).toMatchObject({ status: 0, stdout: 'down' })
  })

  test('a holder that stops answering: operations reject after timeoutMs, then go on', async () => {
    const dir = tempDir()
    const holder = await holdStore(dir)
    children.push(holder)
    const kv = new KV({ path: dir, timeoutMs: 300 })
    await kv.put('before', 'stop')
    holder.kill('SIGSTOP')
    await stopped(holder.pid)
    try {
      const error = await rejection(kv.get('before'))
      expect(error.code).toBe('ERR_KV_STORAGE')
      expect(error.message).toContain(
        `the process holding it could not be reached: it (pid ${holder.pid}) did not answer within 300 ms`,
      )
    } finally {
      holder.kill('SIGCONT')
    }
    await expect(kv.get('before')).resolves.toBe('stop')
    await kv.close()
  })

  test('opening a store whose holder is stopped fails in bounded time, saying why', async () => {
    const dir = tempDir()
    const holder = await holdStore(dir)
    children.push(holder)
    holder.kill('SIGSTOP')
    await stopped(holder.pid)
    try {
      const opened = await new Promise((resolve) => {
        const child = spawn(process.execPath, [BIN, '--path', dir, 'get', 'k'])
        let stderr = ''
        child.stderr.on('data', (chunk) => (stderr += chunk))
        child.once('exit', (status) => resolve({ status, stderr }))
      })
      expect(opened.status).toBe(1)
      // Connected but unanswered, or (with its backlog full) not even connected.
      expect(opened.stderr).toMatch(
        new RegExp(
          `\\(pid ${holder.pid}\\), which cannot share it: it (did not answer|accepted no connection)`,
        ),
      )
    } finally {
      holder.kill('SIGCONT')
    }
  })

  test('hostile clients: garbage is dropped unanswered, entries no KV writes are refused, nothing is written', async () => {
    const dir = tempDir()
    const holder = await holdStore(dir)
    children.push(holder)
    const kv = new KV({ path: dir })
    await kv.put('kept', 'as it was')
    const socket = path.join(dir, 'kv.sock')
    const hostile = (bytes) =>
      new Promise((resolve) => {
        const connection = net.connect(socket, () => connection.end(bytes))
        let answered = 0
        connection.on('data', (chunk) => (answered += chunk.length))
        connection.on('error', () => {})
        connection.on('close', () => resolve(answered))
      })
    const header = (length) => {
      const bytes = Buffer.alloc(4)
      bytes.writeUInt32LE(length)
      return bytes
    }
    const frame = (bytes) => Buffer.concat([header(bytes.length), Buffer.from(bytes)])
    // A request that would write key "evil" in namespace "default": PutAll (variant 3) of
    // one entry, in the wire's encoding. Sent where no request may be, it must do nothing.
    const text = (string) => [string.length, ...Buffer.from(string)]
    const evil = frame([3, ...text('default'), 1, ...text('evil'), ...text('x'), 0, 0])
    const hello = (version) => frame([0, version])
    const answers = await Promise.all([
      // Garbage; a length past the limit; a frame that promises more than it sends.
      hostile(Buffer.from('GET / HTTP/1.1\r\n\r\n')),
      hostile(header(0xffffffff)),
      hostile(Buffer.concat([header(1000), Buffer.from('short')])),
      // A request before any hello; a hello of another version, then a request.
      hostile(evil),
      hostile(Buffer.concat([hello(99), evil])),
      // A hello, then a request with a byte too many.
      hostile(Buffer.concat([hello(1), frame([...evil.subarray(4), 0])])),
    ])
    // None is answered but for the hellos, with this protocol's own (variant 0, version 1).
    expect(answers.slice(0, 4)).toEqual([0, 0, 0, 0])
    expect(answers.slice(4).every((bytes) => bytes > 0 && bytes < 16)).toBe(true)
    await expect(kv.get('kept')).resolves.toBe('as it was')
    await expect(kv.get('evil')).resolves.toBeNull()
    await expect(kv.list()).resolves.toMatchObject({ keys: [{ name: 'kept' }] })

    // Well-formed requests carrying what no KV writes are refused with an answer: a key that
    // is not UTF-8, metadata that is not JSON, a key over 512 bytes.
    const put = (key, metadata) =>
      frame([3, ...text('default'), 1, ...key, ...text('x'), 0, ...metadata])
    const longKey = [0x81, 0x05, ...Buffer.alloc(641, 'k')] // a varint length of 641
    const refused = await Promise.all(
      [
        put([2, 0xff, 0xfe], [0]),
        put(text('evil2'), [1, ...text('not json')]),
        put(longKey, [0]),
      ].map((request) => hostile(Buffer.concat([hello(1), request]))),
    )
    // The hello's answer and then an error's, which is longer than any hello.
    for (const bytes of refused) expect(bytes).toBeGreaterThan(32)
    await expect(kv.get('evil2')).resolves.toBeNull()
    await expect(kv.list()).resolves.toMatchObject({ keys: [{ name: 'kept' }] })
    await kv.close()
  })

  test('a holder whose answers no KV store gives is not believed: the operation fails', async () => {
    // A process holds the lock without serving it, and another serves kv.sock instead, as a
    // holder gone wrong would: the entry of another key, a scan that goes backwards (which
    // paged for ever before), entries out of order, metadata that is not JSON.
    const dir = tempDir()
    children.push(await holdStore(dir, { shared: false }))
    const impostor = await serveImpostor(
      dir,
      `const entry = (key, metadata) =>
         [...text(key), ...text('forged'), 0, ...(metadata ? [1, ...text(metadata)] : [0])]
       const answers = {
         1: [1, 1, ...entry('other')],
         2: [2, 2, 1, ...entry('a'), 1, ...entry('b', 'not json')],
         6: [4, 2, ...text('b'), 0, 0, ...text('a'), 0, 0, 1],
         7: [5, 2, ...entry('b'), ...entry('a'), 0],
         9: [3],
       }`,
    )
    children.push(impostor)
    const kv = new KV({ path: dir })
    for (const [operation, fault] of [
      [() => kv.get('k'), 'the entry of another key'],
      [() => kv.get(['a', 'b']), 'metadata that is not JSON'],
      [() => kv.list(), 'keys out of order'],
      [() => kv.dump(), 'entries out of key order'],
    ]) {
      const error = await rejection(operation())
      expect(error.code).toBe('ERR_KV_STORAGE')
      expect(error.message).toContain(`its holder sent ${fault}`)
    }
    await kv.close()
  })

  test('reads of one key in progress together go to the holder together', async () => {
    // Reads wait for earlier writes, not for each other: on a holder (or Redis), many reads
    // of a hot key take one round trip, not one each. This holder never answers a read.
    const dir = tempDir()
    children.push(await holdStore(dir, { shared: false }))
    const impostor = await serveImpostor(dir, 'const answers = { 9: [3] }')
    children.push(impostor)
    const kv = new KV({ path: dir, timeoutMs: 3000 })
    const reads = [kv.get('flags'), kv.getWithMetadata('flags'), kv.get(['flags'])]
    const errors = reads.map(rejection)
    // Get (1), Get (1), GetMany (2) all reach it while the first is unanswered (one after
    // another, a read sent only when the one before timed out, only one would by now).
    const deadline = Date.now() + 2000
    while (impostor.requests.length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(impostor.requests.sort()).toEqual([1, 1, 2])
    for (const error of await Promise.all(errors)) {
      expect(error.message).toContain('did not answer within 3000 ms')
    }
    // Its answers would come in the order of requests it never answered: close() fails too.
    await expect(kv.close()).rejects.toThrow('did not answer')
  })

  test('another user cannot connect to the socket', async () => {
    if (process.getuid?.() !== 0) {
      if (process.env.CI === 'true') throw new Error('this test needs root under CI=true')
      console.log('kv-binding: not root, so the test of another user on the socket is skipped.')
      return
    }
    const dir = tempDir()
    fs.chmodSync(dir, 0o755)
    const holder = await holdStore(dir)
    children.push(holder)
    const other = spawnSync(
      process.execPath,
      [
        '-e',
        `const c = require('node:net').connect(${JSON.stringify(path.join(dir, 'kv.sock'))})
         c.on('connect', () => { console.log('connected'); c.destroy() })
         c.on('error', (error) => console.log(error.code))`,
      ],
      { uid: 65534, gid: 65534, encoding: 'utf8' },
    )
    expect(other.stdout.trim()).toBe('EACCES')
  })
})
