'use strict'

// kv-binding/platform: getPlatformProxy() as wrangler's, with kv-binding's namespaces. What
// env holds (namespaces by binding, vars, .dev.vars and .env secrets, per environment), where
// the data lands, ctx.waitUntil and dispose, sharing between proxies, the warning for the
// bindings it leaves out, and the errors of bad options.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { KV } = require('kv-binding')
const { getPlatformProxy } = require('kv-binding/platform')
const { tempDir, projectDir: project, rejection } = require('./helpers')

const TOML = `name = "shop"

[vars]
GREETING = "hello"
THEME = { dark = true, accent = "teal" }

[[kv_namespaces]]
binding = "SESSIONS"
id = "0b5e1c"

[[kv_namespaces]]
binding = "FLAGS"
id = "7f3a9d"

[env.staging]
vars = { GREETING = "hello from staging" }
kv_namespaces = [ { binding = "STAGING_SESSIONS", id = "11aa" } ]

[env.bare]
name = "shop-bare"
`

/** getPlatformProxy() for the configuration in `dir`; disposed of after the test. */
const proxies = []
async function proxyOf(dir, options = {}) {
  const proxy = await getPlatformProxy({
    configPath: path.join(dir, 'wrangler.toml'),
    ...options,
  })
  proxies.push(proxy)
  return proxy
}
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((proxy) => proxy.dispose()))
})

/** The warnings emitted while `fn` runs: `{ message, code }`. */
async function warningsDuring(fn) {
  const seen = []
  const spy = jest
    .spyOn(process, 'emitWarning')
    .mockImplementation((message, options) => seen.push({ message, code: options?.code }))
  try {
    await fn()
  } finally {
    spy.mockRestore()
  }
  return seen
}

describe('env', () => {
  test('holds each bound namespace as a KV named by its binding, in .kv beside the configuration', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env, dispose } = await proxyOf(dir)
    expect(env.SESSIONS).toBeInstanceOf(KV)
    expect(env.FLAGS).toBeInstanceOf(KV)
    await env.SESSIONS.put('user:1', 'ada', { metadata: { plan: 'pro' } })
    await env.FLAGS.put('beta', 'on')
    await dispose()
    const sessions = new KV({ path: path.join(dir, '.kv'), namespace: 'SESSIONS' })
    const flags = new KV({ path: path.join(dir, '.kv'), namespace: 'FLAGS' })
    expect(await sessions.getWithMetadata('user:1')).toEqual({
      value: 'ada',
      metadata: { plan: 'pro' },
      cacheStatus: null,
    })
    expect(await flags.get('beta')).toBe('on')
    expect(await flags.get('user:1')).toBeNull()
    await Promise.all([sessions.close(), flags.close()])
  })

  test('holds the configuration vars, text as text and tables as objects', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env } = await proxyOf(dir)
    expect(env.GREETING).toBe('hello')
    expect(env.THEME).toEqual({ dark: true, accent: 'teal' })
    expect(Object.keys(env).sort()).toEqual(['FLAGS', 'GREETING', 'SESSIONS', 'THEME'])
  })

  test('takes an environment’s own namespaces and vars, which are not inherited', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const staging = await proxyOf(dir, { environment: 'staging' })
    expect(Object.keys(staging.env).sort()).toEqual(['GREETING', 'STAGING_SESSIONS'])
    expect(staging.env.GREETING).toBe('hello from staging')
    const bare = await proxyOf(dir, { environment: 'bare' })
    expect(bare.env).toEqual({})
  })

  test('adds .dev.vars over the vars, and prefers .dev.vars.<environment>', async () => {
    const dir = project({
      'wrangler.toml': TOML,
      '.dev.vars': 'API_KEY=local-key\nGREETING="hi from .dev.vars"\n',
      '.dev.vars.staging': 'API_KEY=staging-key\n',
      // Not read: a .dev.vars file wins over every .env file.
      '.env': 'FROM_DOT_ENV=1\n',
    })
    const { env } = await proxyOf(dir)
    expect(env.API_KEY).toBe('local-key')
    expect(env.GREETING).toBe('hi from .dev.vars')
    expect(env.FROM_DOT_ENV).toBeUndefined()
    const staging = await proxyOf(dir, { environment: 'staging' })
    expect(staging.env.API_KEY).toBe('staging-key')
    expect(staging.env.GREETING).toBe('hello from staging')
  })

  test('without .dev.vars, reads the .env files in order, later ones winning, ${NAME} expanded', async () => {
    const dir = project({
      'wrangler.toml': TOML,
      '.env': 'HOST=example.com\nURL=https://${HOST}/api\nLEVEL=env\n',
      '.env.local': 'LEVEL=local\n',
      '.env.staging': 'LEVEL=staging\n',
      '.env.staging.local': 'ONLY_STAGING_LOCAL=yes\n',
    })
    const plain = await proxyOf(dir)
    expect(plain.env.URL).toBe('https://example.com/api')
    expect(plain.env.LEVEL).toBe('local')
    expect(plain.env.ONLY_STAGING_LOCAL).toBeUndefined()
    const staging = await proxyOf(dir, { environment: 'staging' })
    expect(staging.env.LEVEL).toBe('staging')
    expect(staging.env.ONLY_STAGING_LOCAL).toBe('yes')
    const named = await proxyOf(dir, { envFiles: ['.env.staging'] })
    expect(named.env.LEVEL).toBe('staging')
    expect(named.env.HOST).toBeUndefined()
  })

  test('reads no .env file under CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV=false', async () => {
    const dir = project({ 'wrangler.toml': TOML, '.env': 'FROM_DOT_ENV=1\n' })
    process.env.CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV = 'false'
    try {
      const { env } = await proxyOf(dir)
      expect(env.FROM_DOT_ENV).toBeUndefined()
    } finally {
      delete process.env.CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV
    }
  })

  test('with secrets.required, takes only the named secrets and the vars they override, and warns of missing ones', async () => {
    const dir = project({
      'wrangler.toml': `${TOML.split('\n[env.')[0]}\n[secrets]\nrequired = ["API_KEY", "SIGNING_KEY"]\n`,
      '.dev.vars': 'API_KEY=k\nGREETING=overridden\nSTRAY=not declared\n',
    })
    let proxy
    const warnings = await warningsDuring(async () => {
      proxy = await proxyOf(dir)
    })
    expect(proxy.env.API_KEY).toBe('k')
    expect(proxy.env.GREETING).toBe('overridden')
    expect(proxy.env.STRAY).toBeUndefined()
    expect(warnings.map((w) => w.message)).toContain(
      'Missing required secrets: SIGNING_KEY. Add them to .dev.vars or .env.',
    )
  })

  test('finds the configuration from the working directory, and another process reads what it wrote', () => {
    const dir = project({ 'wrangler.toml': TOML, 'src/.keep': '' })
    // The package as a project has it installed.
    fs.mkdirSync(path.join(dir, 'node_modules'))
    fs.symlinkSync(path.resolve(__dirname, '..'), path.join(dir, 'node_modules', 'kv-binding'))
    const script = `
      const { getPlatformProxy } = require('kv-binding/platform')
      getPlatformProxy().then(async ({ env, dispose }) => {
        await env.FLAGS.put('from-child', String(process.pid))
        await dispose()
        console.log(Object.keys(env).sort().join(','))
      })`
    const child = spawnSync(process.execPath, ['-e', script], {
      cwd: path.join(dir, 'src'),
      encoding: 'utf8',
    })
    expect(child.stderr).toBe('')
    expect(child.stdout.trim()).toBe('FLAGS,GREETING,SESSIONS,THEME')
    const flags = new KV({ path: path.join(dir, '.kv'), namespace: 'FLAGS' })
    return flags
      .get('from-child')
      .then((value) => expect(value).toBe(String(child.pid)))
      .finally(() => flags.close())
  })
})

describe('where the data lives', () => {
  test('path puts the store elsewhere, resolved from the configuration’s directory', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env, dispose } = await proxyOf(dir, { path: 'data/kv' })
    await env.SESSIONS.put('k', 'v')
    await dispose()
    expect(fs.existsSync(path.join(dir, '.kv'))).toBe(false)
    const kv = new KV({ path: path.join(dir, 'data', 'kv'), namespace: 'SESSIONS' })
    expect(await kv.get('k')).toBe('v')
    await kv.close()
  })

  test('persist: false keeps the namespaces in memory and writes nothing', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const first = await proxyOf(dir, { persist: false })
    await first.env.SESSIONS.put('k', 'v')
    // A second proxy of this process shares the namespace while the first holds it.
    const second = await proxyOf(dir, { persist: false })
    expect(await second.env.SESSIONS.get('k')).toBe('v')
    await first.dispose()
    await second.dispose()
    expect(fs.existsSync(path.join(dir, '.kv'))).toBe(false)
    const third = await proxyOf(dir, { persist: false })
    expect(await third.env.SESSIONS.get('k')).toBeNull()
  })

  test('url keeps the namespaces on Redis', async () => {
    const url = process.env.KV_TEST_REDIS_URL
    if (!url) throw new Error('the Redis server of this run did not start (see redis/setup.js)')
    const dir = project({ 'wrangler.toml': TOML })
    const keyPrefix = `kvtest:platform:${process.pid}:`
    const { env, dispose } = await proxyOf(dir, { url, keyPrefix })
    await env.FLAGS.put('beta', 'on')
    await dispose()
    const flags = new KV({ url, keyPrefix, namespace: 'FLAGS' })
    expect(await flags.get('beta')).toBe('on')
    await flags.clear()
    await flags.close()
    expect(fs.existsSync(path.join(dir, '.kv'))).toBe(false)
  })

  test('passes consistency and limits on to each namespace', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env } = await proxyOf(dir, { persist: false, consistency: 'eventual', limits: true })
    // Eventual: another location keeps the absence it read, after a write elsewhere.
    const far = env.FLAGS.location('NRT')
    expect(await far.get('beta')).toBeNull()
    await env.FLAGS.put('beta', 'on')
    expect(await far.get('beta')).toBeNull()
    expect(await env.FLAGS.get('beta')).toBe('on')
    // Limits: one write a second to a key.
    const error = await rejection(env.FLAGS.put('beta', 'off'))
    expect(error.message).toBe('KV PUT failed: 429 Too Many Requests')
  })
})

describe('ctx, cf, caches and dispose', () => {
  test('dispose() waits for ctx.waitUntil work, that work’s own too, then closes the namespaces', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env, ctx, dispose } = await getPlatformProxy({
      configPath: path.join(dir, 'wrangler.toml'),
    })
    const later = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
    ctx.waitUntil(
      later(50).then(() => {
        ctx.waitUntil(later(50).then(() => env.FLAGS.put('second', 'done')))
        return env.FLAGS.put('first', 'done')
      }),
    )
    const disposing = dispose()
    expect(dispose()).toBe(disposing)
    await disposing
    const error = await rejection(env.FLAGS.get('first'))
    expect(error.code).toBe('ERR_KV_CLOSED')
    const flags = new KV({ path: path.join(dir, '.kv'), namespace: 'FLAGS' })
    expect(await flags.get('first')).toBe('done')
    expect(await flags.get('second')).toBe('done')
    await flags.close()
  })

  test('dispose() stops waiting for waitUntil work after 30 s, as production does, and says so', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { env, ctx, dispose } = await proxyOf(dir, { persist: false })
    const reported = []
    const spy = jest.spyOn(console, 'error').mockImplementation((...args) => reported.push(args))
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] })
    try {
      ctx.waitUntil(new Promise(() => {}))
      let disposed = false
      const disposing = dispose().then(() => (disposed = true))
      await jest.advanceTimersByTimeAsync(29_000)
      expect(disposed).toBe(false)
      await jest.advanceTimersByTimeAsync(1_000)
      await disposing
    } finally {
      jest.useRealTimers()
      spy.mockRestore()
    }
    expect(reported.map((args) => args[0])).toEqual([
      "kv-binding: dispose() stopped waiting for 1 ctx.waitUntil() promise(s) after 30 s, as production stops a worker's work then.",
    ])
    expect((await rejection(env.FLAGS.get('k'))).code).toBe('ERR_KV_CLOSED')
  })

  test('a rejected waitUntil promise is reported, not left unhandled', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { ctx, dispose } = await proxyOf(dir, { persist: false })
    const reported = []
    const spy = jest.spyOn(console, 'error').mockImplementation((...args) => reported.push(args))
    try {
      ctx.waitUntil(Promise.reject(new Error('background work failed')))
      await dispose()
    } finally {
      spy.mockRestore()
    }
    expect(reported).toHaveLength(1)
    expect(reported[0][1].message).toBe('background work failed')
  })

  test('ctx’s methods detached from it throw, as in workerd', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { ctx } = await proxyOf(dir, { persist: false })
    const { waitUntil, passThroughOnException } = ctx
    expect(() => waitUntil(Promise.resolve())).toThrow(new TypeError('Illegal invocation'))
    expect(() => passThroughOnException()).toThrow(new TypeError('Illegal invocation'))
    expect(() => ctx.passThroughOnException()).not.toThrow()
    expect(ctx.props).toEqual({})
  })

  test('cf is a frozen request cf object; caches cache nothing', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const { cf, caches } = await proxyOf(dir, { persist: false })
    expect(cf).toMatchObject({ country: 'US', colo: 'SFO', httpProtocol: 'HTTP/1.1' })
    expect(Object.isFrozen(cf) && Object.isFrozen(cf.botManagement)).toBe(true)
    const cache = await caches.open('pages')
    await cache.put('https://example.com/', new Response('body'))
    expect(await cache.match('https://example.com/')).toBeUndefined()
    expect(await caches.default.delete('https://example.com/')).toBe(false)
  })

  test('a second proxy shares the namespaces; disposing of the first leaves them open', async () => {
    const dir = project({ 'wrangler.toml': TOML })
    const first = await proxyOf(dir)
    const second = await proxyOf(dir)
    expect(second.env.SESSIONS).toBe(first.env.SESSIONS)
    await first.dispose()
    await second.env.SESSIONS.put('k', 'still open')
    expect(await second.env.SESSIONS.get('k')).toBe('still open')
  })
})

describe('bindings kv-binding does not serve', () => {
  const OTHERS = `${TOML.split('\n[env.')[0]}
[[d1_databases]]
binding = "DB"
database_name = "shop"
database_id = "d1-id"

[[r2_buckets]]
binding = "BUCKET"
bucket_name = "shop-files"

[durable_objects]
bindings = [ { name = "COUNTER", class_name = "Counter" } ]
`

  test('without wrangler, are left out with one warning naming them', async () => {
    const dir = project({ 'wrangler.toml': OTHERS })
    const warnings = await warningsDuring(async () => {
      const { env } = await proxyOf(dir)
      expect(Object.keys(env).sort()).toEqual(['FLAGS', 'GREETING', 'SESSIONS', 'THEME'])
      await proxyOf(dir)
    })
    expect(warnings.map((w) => [w.code, w.message])).toEqual([
      [
        'KV_BINDING_LEFT_OUT',
        'getPlatformProxy() from kv-binding serves KV namespaces and variables, and wrangler ' +
          'is not installed here (npm install --save-dev wrangler would bring them): env leaves ' +
          'out D1 database DB, R2 bucket BUCKET, Durable Object namespace COUNTER.',
      ],
    ])
  })
})

describe('bad options', () => {
  test.each([
    [null, 'getPlatformProxy() takes an options object.'],
    [{ configPath: 7 }, 'The configPath option must be the path of a wrangler configuration file.'],
    [
      { environment: '' },
      'The environment option must be the name of an environment of the configuration.',
    ],
    [{ envFiles: '.env' }, 'The envFiles option must be an array of paths of .env files.'],
    [{ persist: 'yes' }, 'The persist option must be true, false or { path: string }.'],
    [{ persist: { path: '' } }, 'The persist option must be true, false or { path: string }.'],
    [{ remoteBindings: 1 }, 'The remoteBindings option must be true or false.'],
    [{ wrangler: 'no' }, 'The wrangler option must be true or false.'],
    [
      { namespace: 'KV' },
      'getPlatformProxy() names each KV namespace by its binding: leave out namespace.',
    ],
    [
      { persist: false, path: '.kv' },
      'persist: false keeps nothing: leave out path and url, or leave out persist.',
    ],
  ])('%j is refused: %s', async (options, message) => {
    await expect(getPlatformProxy(options)).rejects.toThrow(new TypeError(message))
  })

  test('a configPath that does not exist is a configuration error naming it', async () => {
    const missing = path.join(tempDir(), 'wrangler.toml')
    const error = await rejection(getPlatformProxy({ configPath: missing }))
    expect(error.code).toBe('ERR_KV_CONFIG')
    expect(error.message).toMatch(`Cannot read the wrangler configuration ${missing}`)
  })

  test('vars that are not a table name the file and line', async () => {
    const dir = project({ 'wrangler.toml': 'name = "x"\nvars = "oops"\n' })
    const error = await rejection(proxyOf(dir))
    expect(error.code).toBe('ERR_KV_CONFIG')
    expect(error.message).toBe(
      `${path.join(dir, 'wrangler.toml')}:2: vars must be a table of variables.`,
    )
  })
})
