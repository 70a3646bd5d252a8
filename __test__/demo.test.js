'use strict'

// The demo worker (examples/worker.js) in a real worker emulator, edge-runtime, over HTTP,
// with env.KV on each backend.

const { startDemo } = require('../examples/demo')
const { tempDir } = require('./helpers')

const stores = [
  ['memory', () => ({})],
  ['sled', () => ({ path: tempDir(), namespace: 'KV' })],
]

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

  test('the API answers 429 after the rate limit, per client IP', async () => {
    const from = (ip) => call('/api', { headers: { 'CF-Connecting-IP': ip } })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await from('203.0.113.7')).status)
    expect(statuses).toEqual([200, 200, 200, 429])
    expect((await from('198.51.100.1')).status).toBe(200)
  })
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
  ])
  const url = await new Promise((resolve, reject) => {
    server.stdout.on('data', (chunk) => {
      const match = /on (http:\/\/\S+?)\/? /.exec(String(chunk))
      if (match) resolve(match[1])
    })
    server.once('exit', reject)
  })
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
