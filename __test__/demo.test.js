'use strict'

// The demo worker (examples/worker.js) in a real worker emulator, edge-runtime, over HTTP,
// with env.KV on each backend.

const { startDemo } = require('../examples/demo')
const { tempDir } = require('./helpers')

const stores = [
  ['memory', () => ({})],
  ['sled', () => ({ path: tempDir(), namespace: 'KV' })],
]
// Without redis-server, Jest's globalSetup has said so once and left the URL unset.
if (process.env.KV_TEST_REDIS_URL) {
  stores.push([
    'redis',
    () => ({
      url: process.env.KV_TEST_REDIS_URL,
      keyPrefix: `demo-${process.pid}:`,
      namespace: 'KV',
    }),
  ])
}

describe.each(stores)('demo worker on the %s backend', (_name, kvOptions) => {
  let demo
  let base
  let now
  beforeAll(async () => {
    now = Date.now()
    demo = await startDemo({
      port: 0,
      rateLimit: 3,
      kvOptions: { ...kvOptions(), clock: () => now },
    })
    base = demo.url.replace(/\/$/, '')
  })
  afterAll(() => demo.close())

  const call = (path, init) => fetch(`${base}${path}`, init)

  test('a session cookie from /login opens /me until the session expires', async () => {
    const login = await call('/login?user=alice', { method: 'POST' })
    expect(login.status).toBe(200)
    const cookie = login.headers.get('set-cookie').split(';')[0]
    expect(cookie).toMatch(/^session=[0-9a-f]{32}$/)

    const me = await call('/me', { headers: { Cookie: cookie } })
    expect(me.status).toBe(200)
    expect((await me.json()).user).toBe('alice')

    now += 3600 * 1000
    const expired = await call('/me', { headers: { Cookie: cookie } })
    expect(expired.status).toBe(401)
    expect(await expired.text()).toBe('Session expired\n')
    const anonymous = await call('/me')
    expect(await anonymous.text()).toBe('Unauthorized\n')
  })

  test('feature flags seeded at start can be changed through the worker', async () => {
    expect(await (await call('/checkout')).text()).toBe('new checkout flow\n')
    const put = await call('/flags', { method: 'PUT', body: '{"newCheckout":false}' })
    expect(put.status).toBe(200)
    expect(await (await call('/checkout')).text()).toBe('classic checkout flow\n')
    expect(JSON.parse(await demo.kv.get('feature-flags'))).toEqual({ newCheckout: false })
    expect((await call('/flags', { method: 'PUT', body: 'not json' })).status).toBe(400)
  })

  test('?colo= names a location; without --eventual every location sees every write', async () => {
    await call('/flags', { method: 'PUT', body: '{"newCheckout":true}' })
    const there = await call('/checkout?colo=NRT')
    expect(there.headers.get('x-kv-location')).toBe('NRT')
    expect(await there.text()).toBe('new checkout flow\n')
    await call('/flags', { method: 'PUT', body: '{"newCheckout":false}' })
    expect(await (await call('/checkout?colo=NRT')).text()).toBe('classic checkout flow\n')
  })

  test('the API answers 429 after the rate limit, per client IP', async () => {
    const from = (ip) => call('/api', { headers: { 'CF-Connecting-IP': ip } })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await from('203.0.113.7')).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    expect((await from('198.51.100.1')).status).toBe(200)
  })

  test('bad cookies and client addresses get 400, not an error from KV', async () => {
    for (const cookie of [`session=${'a'.repeat(600)}`, 'session=../../x', 'session=']) {
      const response = await call('/me', { headers: { Cookie: cookie } })
      expect(response.status).toBe(400)
      expect(await response.text()).toBe('Bad session cookie\n')
    }
    const ip = await call('/api', { headers: { 'CF-Connecting-IP': '1'.repeat(600) } })
    expect(ip.status).toBe(400)
  })

  test('an upload that stalls half-way holds up no other request', async () => {
    const http = require('node:http')
    const stalled = http.request(`${base}/flags`, { method: 'PUT' })
    stalled.on('error', () => {})
    stalled.write('{"newCheckout":')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const checkout = await call('/checkout')
    expect(checkout.status).toBe(200)
    const login = await call('/login?user=bob', { method: 'POST' })
    expect(login.status).toBe(200)
    stalled.destroy()
  })

  test('a body larger than a KV value gets 413 before it is read', async () => {
    const declared = await call('/flags', { method: 'PUT', body: Buffer.alloc(MAX_BODY + 1, 32) })
    expect(declared.status).toBe(413)
    expect(await declared.text()).toBe('Payload Too Large\n')
    // Without a length: the server counts as it reads, and stops at the limit.
    const { status, sent } = await chunkedPut(`${base}/flags`, 64 * MiB)
    expect(status).toBe(413)
    expect(sent).toBeLessThan(64 * MiB)
    expect((await call('/flags', { method: 'PUT', body: '{"small":true}' })).status).toBe(200)
  })
})

const MiB = 1024 * 1024
const MAX_BODY = 25 * MiB

// PUTs `total` bytes with chunked encoding, as fast as the server takes them, until it
// answers: resolves the status and how much was sent by then.
function chunkedPut(url, total) {
  const http = require('node:http')
  return new Promise((resolve, reject) => {
    let sent = 0
    const request = http.request(url, { method: 'PUT' }, (response) => {
      response.resume()
      resolve({ status: response.statusCode, sent })
      request.destroy()
    })
    // Any error before the answer (a reset connection) fails the test rather than hanging it.
    request.on('error', reject)
    const chunk = Buffer.alloc(MiB, 32)
    const write = () => {
      while (sent < total) {
        sent += chunk.length
        if (!request.write(chunk)) return request.once('drain', write)
      }
      request.end()
    }
    write()
  })
}

describe.each(stores)('demo worker with --eventual on the %s backend', (_name, kvOptions) => {
  test('a location keeps the flags it read for 60 s after they change elsewhere', async () => {
    let now = Date.now()
    const demo = await startDemo({
      port: 0,
      kvOptions: { ...kvOptions(), consistency: 'eventual', clock: () => now },
    })
    try {
      const call = async (path, init) =>
        (await fetch(`${demo.url.replace(/\/$/, '')}${path}`, init)).text()
      await call('/flags', { method: 'PUT', body: '{"newCheckout":true}' })
      expect(await call('/checkout?colo=NRT')).toBe('new checkout flow\n')
      await call('/flags', { method: 'PUT', body: '{"newCheckout":false}' })
      expect(await call('/checkout')).toBe('classic checkout flow\n')
      expect(await call('/checkout?colo=NRT')).toBe('new checkout flow\n')
      now += 60_000
      expect(await call('/checkout?colo=NRT')).toBe('classic checkout flow\n')
    } finally {
      await demo.close()
    }
  })
})

describe.each(stores)('demo with its data browser on the %s backend', (_name, kvOptions) => {
  test("the operations view's feed shows the worker's KV calls, cache status and location", async () => {
    const demo = await startDemo({
      port: 0,
      kvOptions: { ...kvOptions(), consistency: 'eventual' },
      browser: { port: 0 },
    })
    const stop = new AbortController()
    try {
      const { browser } = demo
      const feed = await fetch(`${browser.url}/_kv/events`, {
        headers: { authorization: `Bearer ${browser.token}` },
        signal: stop.signal,
      })
      expect(feed.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
      const reader = feed.body.pipeThrough(new TextDecoderStream()).getReader()
      await fetch(`${demo.url.replace(/\/$/, '')}/checkout?colo=NRT`)
      let text = ''
      while (!text.includes('"location":"NRT"')) text += (await reader.read()).value
      const [operation] = text
        .split('\n')
        .filter((line) => line.startsWith('data: ') && line.includes('"location":"NRT"'))
        .map((line) => JSON.parse(line.slice(6)))
      expect(operation).toMatchObject({
        op: 'get',
        key: 'feature-flags',
        location: 'NRT',
        error: null,
        size: expect.any(Number),
      })
      // The worker's namespace is the one the browser shows first.
      const listed = await fetch(`${browser.apiUrl}/accounts/local/storage/kv/namespaces`, {
        headers: { authorization: `Bearer ${browser.token}` },
      })
      expect((await listed.json()).result.map(({ title }) => title)).toContain('KV')
    } finally {
      stop.abort()
      await demo.close()
    }
  })
})

test("with --limits, a burst from one client stays within the API's answers", async () => {
  // Production refuses a second write to the rate-limit counter within a second: the worker
  // must not turn that into a 500.
  const now = Date.now()
  const demo = await startDemo({
    port: 0,
    rateLimit: 10,
    kvOptions: { limits: true, clock: () => now },
  })
  try {
    const statuses = []
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${demo.url}api`, {
        headers: { 'CF-Connecting-IP': '203.0.113.9' },
      })
      statuses.push(response.status)
    }
    expect(statuses).toEqual([200, 200, 200])
    // Only the first write of the second went through.
    const window = Math.floor(now / 1000 / 60)
    await expect(demo.kv.get(`ratelimit:203.0.113.9:${window}`)).resolves.toBe('1')
  } finally {
    await demo.close()
  }
})

test('Ctrl-C of the demo server loses no acknowledged write', async () => {
  const { spawn } = require('node:child_process')
  const path = require('node:path')
  const { KV } = require('..')
  const dir = tempDir()
  const server = spawn(process.execPath, [
    path.join(__dirname, '..', 'examples', 'demo.js'),
    '--port',
    '0',
    '--path',
    dir,
    '--browser-port',
    '0',
  ])
  let printed = ''
  const url = await new Promise((resolve, reject) => {
    server.stdout.on('data', (chunk) => {
      printed += chunk
      const match = /on (http:\/\/\S+?)\/? /.exec(printed)
      if (match && printed.includes('Ctrl-C')) resolve(match[1])
    })
    server.once('exit', reject)
  })
  // The data browser's address, with its token, printed beside the worker's.
  const browserUrl = /^Data browser and operations view: (\S+)$/m.exec(printed)[1]
  const page = await fetch(new URL('/', browserUrl))
  expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html; charset=utf-8'])
  const logins = []
  for (let i = 0; i < 20; i++) {
    const response = await fetch(`${url}/login?user=u${i}`, { method: 'POST' })
    logins.push(response.headers.get('set-cookie').split(';')[0].split('=')[1])
  }
  const exited = new Promise((resolve) => server.once('exit', resolve))
  server.kill('SIGINT')
  expect(await exited).toBe(0)
  const kv = new KV({ path: dir, namespace: 'KV' })
  for (const [i, id] of logins.entries()) {
    await expect(kv.get(`session:${id}`, 'json')).resolves.toMatchObject({ user: `u${i}` })
  }
  await kv.close()
})
