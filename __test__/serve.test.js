'use strict'

// `serve()` and `kv-binding serve`: Cloudflare's KV REST API driven by the clients people use
// (wrangler's kv commands, the `cloudflare` SDK, unstorage's cloudflare-kv-http driver,
// installed from __test__/peers), on a sled store, on Redis and over KVs in memory; and
// as a hostile client would drive it.

const fs = require('node:fs')
const path = require('node:path')
const { execFile, spawn, spawnSync } = require('node:child_process')
const { KV, serve } = require('..')
const { tempDir, holdStore } = require('./helpers')

const CLIENTS = path.join(__dirname, 'peers')
const WRANGLER = path.join(CLIENTS, 'node_modules', 'wrangler', 'bin', 'wrangler.js')
const BIN = path.resolve(__dirname, '..', 'bin', 'kv-binding.js')
const TOKEN = 'a-test-token-of-some-length'
const ACCOUNT = 'local'

beforeAll(() => {
  // The clients come from their own lock file (CI installs them before the run).
  if (!fs.existsSync(path.join(CLIENTS, 'node_modules', 'wrangler'))) {
    const installed = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
      cwd: CLIENTS,
      encoding: 'utf8',
    })
    if (installed.status !== 0) throw new Error(`npm ci in ${CLIENTS} failed:\n${installed.stderr}`)
  }
}, 300_000)

/** Runs wrangler against the server at `apiUrl`; resolves { status, stdout, stderr }. */
function wrangler(apiUrl, args, cwd) {
  const env = {
    ...process.env,
    CLOUDFLARE_API_BASE_URL: apiUrl,
    CLOUDFLARE_API_TOKEN: TOKEN,
    CLOUDFLARE_ACCOUNT_ID: ACCOUNT,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_LOG_PATH: path.join(cwd, 'wrangler-logs'),
    CI: 'true',
    NO_COLOR: '1',
  }
  return new Promise((resolve) => {
    execFile(process.execPath, [WRANGLER, ...args], { cwd, env }, (error, stdout, stderr) =>
      resolve({ status: error ? (error.code ?? 1) : 0, stdout, stderr }),
    )
  })
}

/** A request to the server, with the token unless `headers` say otherwise. */
function call(server, method, route, { body, headers = {} } = {}) {
  return fetch(`${server.apiUrl}/accounts/${ACCOUNT}/storage/kv/namespaces${route}`, {
    method,
    body,
    headers: { authorization: `Bearer ${TOKEN}`, ...headers },
  })
}

/** A request sent as it is written, path included: { status, body }. */
function raw(server, method, route, body) {
  const http = require('node:http')
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method,
        path: `/client/v4/accounts/${ACCOUNT}/storage/kv/namespaces${route}`,
        headers: { authorization: `Bearer ${TOKEN}` },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode, body: text }))
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

const stores = [
  ['a sled store', () => ({ path: tempDir() })],
  ['memory KVs', () => ({ namespaces: { KV: new KV(), SESSIONS: new KV() } })],
]
const { KV_TEST_REDIS_URL } = process.env
if (KV_TEST_REDIS_URL) {
  const keyPrefix = `kvserve:${process.pid}:`
  stores.push(['Redis', () => ({ url: KV_TEST_REDIS_URL, keyPrefix })])
}

describe.each(stores)('serving %s', (_name, where) => {
  let server
  let options
  let reader
  beforeAll(async () => {
    options = where()
    server = await serve({ ...options, port: 0, token: TOKEN })
    // A store's namespaces are made as production's are, before clients use them (its
    // default namespace, KV, is always there).
    if (!options.namespaces) {
      for (const title of ['SESSIONS']) {
        const made = await call(server, 'POST', '', { body: JSON.stringify({ title }) })
        expect(made.status).toBe(200)
      }
    }
    // What the clients wrote, read through a KV of the same store.
    reader = (namespace) =>
      options.namespaces ? options.namespaces[namespace] : new KV({ ...options, namespace })
  })
  afterAll(() => server.close())

  test('wrangler lists, puts with metadata and a TTL, gets, lists and deletes keys', async () => {
    const cwd = tempDir()
    const kv = reader('KV')
    await kv.put('seeded', 'by the test')
    const run = (...args) => wrangler(server.apiUrl, args, cwd)

    const listed = await run('kv', 'namespace', 'list')
    expect(listed.status).toBe(0)
    expect(JSON.parse(listed.stdout)).toEqual(
      expect.arrayContaining([{ id: 'KV', title: 'KV', supports_url_encoding: true }]),
    )

    const put = await run(
      'kv', 'key', 'put', 'user/1', 'Ada', '--namespace-id', 'KV', '--remote',
      '--metadata', '{"role":"admin"}', '--ttl', '3600',
    ) // prettier-ignore
    expect(put.status).toBe(0)
    const stored = await kv.getWithMetadata('user/1')
    expect(stored).toMatchObject({ value: 'Ada', metadata: { role: 'admin' } })
    const { keys } = await kv.list({ prefix: 'user/' })
    expect(keys[0].expiration).toBeGreaterThan(Date.now() / 1000 + 3500)

    const got = await run('kv', 'key', 'get', 'seeded', '--namespace-id', 'KV', '--remote')
    expect(got).toMatchObject({ status: 0, stdout: 'by the test' })

    const list = await run('kv', 'key', 'list', '--namespace-id', 'KV', '--remote')
    expect(JSON.parse(list.stdout)).toEqual([
      { name: 'seeded' },
      { name: 'user/1', expiration: keys[0].expiration, metadata: { role: 'admin' } },
    ])

    const deleted = await run('kv', 'key', 'delete', 'user/1', '--namespace-id', 'KV', '--remote')
    expect(deleted.status).toBe(0)
    await expect(kv.get('user/1')).resolves.toBeNull()
  }, 60_000)

  test('wrangler writes and deletes in bulk', async () => {
    const cwd = tempDir()
    const kv = reader('SESSIONS')
    fs.writeFileSync(
      path.join(cwd, 'bulk.json'),
      JSON.stringify([
        { key: 's1', value: 'one', metadata: { n: 1 } },
        { key: 's2', value: 'AP8=', base64: true },
        { key: 's3', value: 'three', expiration_ttl: 600 },
      ]),
    )
    fs.writeFileSync(path.join(cwd, 'gone.json'), JSON.stringify(['s1', 's3']))
    const run = (...args) => wrangler(server.apiUrl, args, cwd)
    const put = await run(
      'kv',
      'bulk',
      'put',
      'bulk.json',
      '--namespace-id',
      'SESSIONS',
      '--remote',
    )
    expect(put.status).toBe(0)
    await expect(kv.getWithMetadata('s1')).resolves.toMatchObject({
      value: 'one',
      metadata: { n: 1 },
    })
    expect([...new Uint8Array(await kv.get('s2', 'arrayBuffer'))]).toEqual([0, 255])
    const gone = await run(
      'kv', 'bulk', 'delete', 'gone.json', '--namespace-id', 'SESSIONS', '--remote', '--force',
    ) // prettier-ignore
    expect(gone.status).toBe(0)
    const { keys } = await kv.list()
    expect(keys.map((key) => key.name)).toEqual(['s2'])
  }, 60_000)

  test('the cloudflare SDK reads, writes, lists and deletes through its kv.namespaces methods', async () => {
    const { default: Cloudflare } = require(path.join(CLIENTS, 'node_modules', 'cloudflare'))
    const client = new Cloudflare({ apiToken: TOKEN, baseURL: server.apiUrl, maxRetries: 0 })
    const account_id = ACCOUNT
    const kv = reader('KV')
    const namespace_id = 'KV'
    await client.kv.namespaces.values.update('sdk', {
      account_id,
      namespace_id,
      value: 'from the SDK',
      // The SDK sends an object as form fields of its own: metadata goes as JSON text.
      metadata: JSON.stringify({ by: 'sdk' }),
    })
    await expect(kv.getWithMetadata('sdk')).resolves.toMatchObject({
      value: 'from the SDK',
      metadata: { by: 'sdk' },
    })
    const response = await client.kv.namespaces.values.get('sdk', { account_id, namespace_id })
    await expect(response.text()).resolves.toBe('from the SDK')
    await expect(
      client.kv.namespaces.metadata.get('sdk', { account_id, namespace_id }),
    ).resolves.toEqual({ by: 'sdk' })
    const names = []
    for await (const key of client.kv.namespaces.keys.list('KV', { account_id, prefix: 'sd' })) {
      names.push(key.name)
    }
    expect(names).toEqual(['sdk'])
    await client.kv.namespaces.bulkUpdate('KV', {
      account_id,
      body: [
        { key: 'b1', value: '{"n":1}' },
        { key: 'b2', value: 'two' },
      ],
    })
    const bulk = await client.kv.namespaces.bulkGet('KV', {
      account_id,
      keys: ['b1', 'nope'],
      type: 'json',
    })
    expect(bulk.values).toEqual({ b1: { n: 1 }, nope: null })
    await client.kv.namespaces.bulkDelete('KV', { account_id, body: ['b1', 'b2'] })
    await client.kv.namespaces.values.delete('sdk', { account_id, namespace_id })
    await expect(kv.get(['b1', 'b2', 'sdk'])).resolves.toEqual(
      new Map([
        ['b1', null],
        ['b2', null],
        ['sdk', null],
      ]),
    )
    const namespaces = []
    for await (const namespace of client.kv.namespaces.list({ account_id })) {
      namespaces.push(namespace.title)
    }
    expect(namespaces).toEqual(expect.arrayContaining(['KV', 'SESSIONS']))
  })

  test("unstorage's cloudflare-kv-http driver sets, gets, lists and removes items", async () => {
    const { createStorage } = require(path.join(CLIENTS, 'node_modules', 'unstorage'))
    const driver = require(
      path.join(CLIENTS, 'node_modules', 'unstorage', 'drivers', 'cloudflare-kv-http.cjs'),
    )
    const storage = createStorage({
      driver: driver({
        accountId: ACCOUNT,
        namespaceId: 'SESSIONS',
        apiToken: TOKEN,
        // The driver adds /client/v4 itself.
        apiURL: server.url,
      }),
    })
    await storage.setItem('cart:7', { items: 3 })
    await expect(reader('SESSIONS').get('cart:7', 'json')).resolves.toEqual({ items: 3 })
    await expect(storage.getItem('cart:7')).resolves.toEqual({ items: 3 })
    await expect(storage.getKeys('cart')).resolves.toContain('cart:7')
    await storage.removeItem('cart:7')
    await expect(reader('SESSIONS').get('cart:7')).resolves.toBeNull()
  })

  test('keys in the path reach the key they name, or a clear 400', async () => {
    const kv = reader('KV')
    for (const [route, key] of [
      ['/KV/values/dir%2Fa', 'dir/a'],
      ['/KV/values/dir/b', 'dir/b'],
      ['/KV/values/%E2%9C%93%20x', '✓ x'],
      ['/KV/values/nul%00byte', 'nul\0byte'],
    ]) {
      const response = await call(server, 'PUT', route, { body: key })
      expect([route, response.status]).toEqual([route, 200])
      await expect(kv.get(key)).resolves.toBe(key)
    }
    const bad = await call(server, 'PUT', '/KV/values/%FF', { body: 'x' })
    expect(bad.status).toBe(400)
    expect((await bad.json()).errors[0].message).toBe(
      'The key in the path is not valid percent-encoded UTF-8.',
    )
    // A URL parser (fetch's) resolves `..` and `%2E%2E` before sending: sent as they are,
    // both name the key "..", which KV refuses.
    for (const dots of ['..', '%2E%2E']) {
      const { status, body } = await raw(server, 'PUT', `/KV/values/${dots}`, 'x')
      expect([dots, status, JSON.parse(body).errors[0].message]).toEqual([
        dots,
        400,
        '".." is not allowed as a key name.',
      ])
    }
  })

  test('a missing key, namespace or route answers as production does', async () => {
    const missing = await call(server, 'GET', '/KV/values/never-written')
    expect(missing.status).toBe(404)
    await expect(missing.json()).resolves.toEqual({
      success: false,
      errors: [{ code: 10009, message: "get: 'key not found'" }],
      messages: [],
      result: null,
    })
    const noNamespace = await call(server, 'GET', '/NOT-A-NAMESPACE/keys')
    expect(noNamespace.status).toBe(404)
    expect((await noNamespace.json()).errors).toEqual([
      { code: 10013, message: 'namespace not found' },
    ])
    const noRoute = await call(server, 'GET', '/KV/elsewhere')
    expect((await noRoute.json()).errors).toEqual([
      { code: 7003, message: 'No route for that URI' },
    ])
  })

  test('refused writes leave the data as it was', async () => {
    const kv = reader('KV')
    await kv.put('kept', 'before')
    const ttl = await call(server, 'PUT', '/KV/values/kept?expiration_ttl=10', { body: 'after' })
    expect(ttl.status).toBe(400)
    expect((await ttl.json()).errors[0].message).toBe(
      'Invalid expiration_ttl of 10. Expiration TTL must be at least 60.',
    )
    const tooMany = Array.from({ length: 10_001 }, (_, i) => ({ key: `k${i}`, value: 'v' }))
    const bulk = await call(server, 'PUT', '/KV/bulk', { body: JSON.stringify(tooMany) })
    expect(bulk.status).toBe(400)
    const oneBad = [
      { key: 'kept', value: 'after' },
      { key: '', value: 'v' },
    ]
    const refused = await call(server, 'PUT', '/KV/bulk', { body: JSON.stringify(oneBad) })
    expect(refused.status).toBe(400)
    // The binding's status for the entry refused, and which entry it was.
    oneBad[1].key = 'k'.repeat(513)
    const tooLong = await call(server, 'PUT', '/KV/bulk', { body: JSON.stringify(oneBad) })
    expect(tooLong.status).toBe(414)
    expect((await tooLong.json()).errors[0].message).toMatch(
      /^Entry 1 \(key "k+"\) was refused, so nothing was written: KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512\.$/,
    )
    const malformed = await call(server, 'PUT', '/KV/bulk', { body: '[{"key": ' })
    expect((await malformed.json()).errors[0]).toEqual({
      code: 10001,
      message: 'The bulk write is not valid JSON.',
    })
    const multipart = await call(server, 'PUT', '/KV/values/kept', {
      body: '--x\r\nnot a part',
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
    })
    expect(multipart.status).toBe(400)
    const badKey = await call(server, 'DELETE', '/KV/bulk', {
      body: JSON.stringify(['kept', 'x'.repeat(513)]),
    })
    expect(badKey.status).toBe(414)
    expect((await badKey.json()).errors[0].message).toBe(
      'UTF-8 encoded length of 513 exceeds key length limit of 512.',
    )
    const huge = await call(server, 'PUT', '/KV/values/kept', {
      body: Buffer.alloc(25 * 1024 * 1024 + 1),
    })
    expect(huge.status).toBe(413)
    await expect(kv.get('kept')).resolves.toBe('before')
    await expect(kv.get('k0')).resolves.toBeNull()
  })
})

describe('who may use the server', () => {
  let server
  beforeAll(async () => {
    server = await serve({ namespaces: { KV: new KV() }, port: 0, token: TOKEN })
  })
  afterAll(() => server.close())

  test('a request without the token, or with another, is refused', async () => {
    for (const headers of [{ authorization: '' }, { authorization: `Bearer ${TOKEN}x` }]) {
      const response = await call(server, 'GET', '', { headers })
      expect(response.status).toBe(403)
      expect((await response.json()).errors).toEqual([
        { code: 10000, message: 'Authentication error' },
      ])
    }
  })

  test('a request for another host name (DNS rebinding) is refused', async () => {
    const http = require('node:http')
    const status = await new Promise((resolve, reject) => {
      const req = http.request(
        `${server.apiUrl}/accounts/${ACCOUNT}/storage/kv/namespaces`,
        { headers: { host: `attacker.example:${server.port}`, authorization: `Bearer ${TOKEN}` } },
        (res) => resolve(res.statusCode),
      )
      req.on('error', reject)
      req.end()
    })
    expect(status).toBe(421)
  })

  test("another site's page may not write", async () => {
    const response = await call(server, 'PUT', '/KV/values/k', {
      body: 'x',
      headers: { origin: 'https://attacker.example' },
    })
    expect(response.status).toBe(403)
    const fetched = await call(server, 'PUT', '/KV/values/k', {
      body: 'x',
      headers: { 'sec-fetch-site': 'cross-site' },
    })
    expect(fetched.status).toBe(403)
  })

  test("the browser's page needs no token, holds no data and may not be framed", async () => {
    const page = await fetch(`${server.url}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(page.headers.get('x-content-type-options')).toBe('nosniff')
    expect(await page.text()).not.toContain(TOKEN)
    // Any page may link to it (it holds nothing); the API stays closed to other sites.
    const linked = await fetch(`${server.url}/`, { headers: { 'sec-fetch-site': 'cross-site' } })
    expect(linked.status).toBe(200)
    const script = await fetch(`${server.url}/ui/main.js`)
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    // Only the page's own files: nothing else of the package is reachable.
    for (const route of [
      '/ui/../index.js',
      '/ui/%2e%2e/index.js',
      '/ui/',
      '/lib/serve/ui/main.js',
    ]) {
      const other = await fetch(`${server.url}${route}`)
      expect([route, other.status]).toEqual([route, 403])
      // With the token, what is not a page nor a route of the API is not there.
      const withToken = await fetch(`${server.url}${route}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      expect([route, withToken.status]).toEqual([route, 404])
    }
    const posted = await fetch(`${server.url}/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(posted.status).toBe(405)
  })

  test("the browser's feed, export and import need the token", async () => {
    for (const [method, route] of [
      ['GET', '/_kv/events'],
      ['GET', '/_kv/export/KV'],
      ['POST', '/_kv/import/KV'],
    ]) {
      const response = await fetch(`${server.url}${route}`, {
        method,
        body: method === 'POST' ? '[]' : undefined,
      })
      expect([route, response.status]).toEqual([route, 403])
    }
  })

  test('an import refused in part writes nothing; one too large is refused before it is read', async () => {
    const kv = new KV()
    const local = await serve({ namespaces: { KV: kv }, port: 0, token: TOKEN })
    try {
      const importing = (body, headers = {}) =>
        fetch(`${local.url}/_kv/import/KV`, {
          method: 'POST',
          body,
          headers: { authorization: `Bearer ${TOKEN}`, ...headers },
        })
      const refused = await importing(
        JSON.stringify([
          { key: 'a', value: 'one' },
          { key: 'b', value: 'two', metadata: 'x'.repeat(1100) },
        ]),
      )
      expect(refused.status).toBe(413)
      expect((await refused.json()).errors[0].message).toMatch(
        /^Entry 1 \(key "b"\) was refused, so nothing was written/,
      )
      expect(await kv.get('a')).toBeNull()
      const malformed = await importing('[{"key": "a", ')
      expect([malformed.status, (await malformed.json()).errors]).toEqual([
        400,
        [{ code: 10001, message: 'The import is not valid JSON.' }],
      ])
      // Refused from its declared length, before a byte of it is read.
      const large = await new Promise((resolve, reject) => {
        const req = require('node:http').request(`${local.url}/_kv/import/KV`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${TOKEN}`,
            'content-length': String(100 * 1000 * 1000 + 1),
          },
        })
        req.on('response', (res) => {
          resolve(res.statusCode)
          req.destroy()
        })
        req.on('error', reject)
        req.flushHeaders()
      })
      expect(large).toBe(413)
      const done = await importing(JSON.stringify([{ key: 'a', value: 'one' }]))
      expect((await done.json()).result).toEqual({ successful_key_count: 1, unsuccessful_keys: [] })
      const exported = await fetch(`${local.url}/_kv/export/KV`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      expect(await exported.json()).toEqual([{ key: 'a', value: 'one' }])
      // Under a prefix, the same entries as a whole export, read a page at a time.
      await kv.put('p:bin', new Uint8Array([0xff, 0, 1]), { metadata: { m: 1 } })
      await kv.put('p:text', 't', { expiration: Math.floor(Date.now() / 1000) + 3600 })
      const under = await fetch(`${local.url}/_kv/export/KV?prefix=p%3A`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
      const entries = await under.json()
      expect(entries).toEqual((await kv.dump()).filter(({ key }) => key.startsWith('p:')))
      expect(entries[0]).toEqual({ key: 'p:bin', value: '/wAB', base64: true, metadata: { m: 1 } })
    } finally {
      await local.close()
      await kv.close()
    }
  })

  test('a feed its reader stops reading is cut, not queued without end', async () => {
    const diagnostics = require('node:diagnostics_channel')
    const kv = new KV()
    const local = await serve({ namespaces: { KV: kv }, port: 0, token: TOKEN })
    try {
      const response = await new Promise((resolve, reject) => {
        const req = require('node:http').get(`${local.url}/_kv/events`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        })
        req.on('response', resolve)
        req.on('error', reject)
      })
      expect(response.statusCode).toBe(200)
      // Never read: events fill the socket, then the server's queue, until it cuts the feed
      // and, its last page gone, stops watching operations.
      response.pause()
      const key = 'k'.repeat(500)
      let puts = 0
      while (diagnostics.hasSubscribers('kv-binding:operation') && puts < 200_000) {
        await kv.put(key, 'v')
        if (++puts % 1000 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
      expect(diagnostics.hasSubscribers('kv-binding:operation')).toBe(false)
      // What reached the client is what was queued before the cut: it ends there.
      let received = 0
      response.on('data', (chunk) => (received += chunk.length))
      const ended = new Promise((resolve) => response.once('close', resolve))
      response.resume()
      await ended
      expect(received).toBeLessThan(puts * 600)
    } finally {
      await local.close()
      await kv.close()
    }
  }, 60_000)

  test('another address than loopback needs a token of its own', async () => {
    await expect(serve({ namespaces: {}, host: '0.0.0.0', port: 0 })).rejects.toThrow(
      'Serving on 0.0.0.0 lets other machines reach the data: give a token of your own to do so.',
    )
  })
})

test('kv-binding serve reaches namespaces by the ids the wrangler configuration binds', async () => {
  const project = tempDir()
  fs.writeFileSync(
    path.join(project, 'wrangler.json'),
    JSON.stringify({
      name: 'app',
      kv_namespaces: [{ binding: 'SESSIONS', id: '0f2ac74b498b48028cb68387c421e279' }],
    }),
  )
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--token', TOKEN], {
    cwd: project,
  })
  try {
    const apiUrl = await new Promise((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (chunk) => {
        out += chunk
        const found = /^API +(\S+)$/m.exec(out)
        if (found) resolve(found[1])
      })
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)))
    })
    const put = await wrangler(
      apiUrl,
      ['kv', 'key', 'put', 'token', 'abc', '--binding', 'SESSIONS', '--remote'],
      project,
    )
    expect(put.status).toBe(0)
    const listed = await wrangler(apiUrl, ['kv', 'namespace', 'list'], project)
    expect(JSON.parse(listed.stdout)).toEqual(
      expect.arrayContaining([
        { id: '0f2ac74b498b48028cb68387c421e279', title: 'SESSIONS', supports_url_encoding: true },
      ]),
    )
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
  // Stopped, it has let go of the store, which holds the write.
  const kv = new KV({ path: path.join(project, '.kv'), namespace: 'SESSIONS' })
  await expect(kv.get('token')).resolves.toBe('abc')
  await kv.close()
}, 60_000)

test('serving a store another process holds goes through its holder, listing included', async () => {
  const dir = tempDir()
  const seed = new KV({ path: dir, namespace: 'SESSIONS' })
  await seed.put('held', 'by the holder')
  await seed.close()
  const holder = await holdStore(dir)
  const server = await serve({ path: dir, port: 0, token: TOKEN })
  try {
    const listed = await (await call(server, 'GET', '')).json()
    // `default` is the namespace the holder opened; KV, the one serve lists through.
    expect(listed.result.map((namespace) => namespace.title)).toEqual(['KV', 'SESSIONS', 'default'])
    const value = await call(server, 'GET', '/SESSIONS/values/held')
    await expect(value.text()).resolves.toBe('by the holder')

    // The operations feed: what the holder answered for another of its clients, read from the
    // holder's log through the socket; this server's own reads come from its own process.
    const stop = new AbortController()
    const feed = await fetch(`${server.url}/_kv/events`, {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: stop.signal,
    })
    const reader = feed.body.pipeThrough(new TextDecoderStream()).getReader()
    // The holder logs from the first time it is asked: a moment after the feed opens.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const writer = spawn(process.execPath, [
      '-e',
      `const kv = new (require(${JSON.stringify(path.resolve(__dirname, '..'))}).KV)({ path: ${JSON.stringify(dir)}, namespace: 'SESSIONS' })
       kv.put('written', 'by a client').then(() => kv.close())`,
    ])
    expect(await new Promise((resolve) => writer.once('exit', resolve))).toBe(0)
    await call(server, 'GET', '/SESSIONS/values/written')
    const seen = []
    const both = () =>
      seen.some((op) => op.here && op.key === 'written') &&
      seen.some((op) => !op.here && op.key === 'written')
    while (!both()) {
      const { value: text } = await reader.read()
      for (const line of text.split('\n')) {
        if (line.startsWith('data: ')) seen.push(JSON.parse(line.slice(6)))
      }
    }
    stop.abort()
    expect(seen).toContainEqual(
      expect.objectContaining({
        op: 'put',
        namespace: 'SESSIONS',
        key: 'written',
        size: 11,
        process: writer.pid,
        here: false,
      }),
    )
    expect(seen).toContainEqual(
      expect.objectContaining({ op: 'get', key: 'written', process: process.pid, here: true }),
    )
    // This server's own reads went through the holder too, but are shown once, as its own.
    expect(seen.filter((op) => op.key === 'written' && op.op === 'get')).toHaveLength(1)
  } finally {
    await server.close()
    holder.kill('SIGKILL')
  }
}, 30_000)
