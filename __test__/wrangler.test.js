'use strict'

// Wrangler configurations: finding one, reading its kv_namespaces (top level and [env.NAME]),
// errors that name file, line and field, and the entries that use them: wranglerEnv(), the
// CLI's --binding, the demo's --binding and the Jest environment's defaults.

const fs = require('node:fs')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { KV, wranglerEnv } = require('..')
const KVEnvironment = require('../jest-environment')
const { tempDir, projectDir: project } = require('./helpers')

const BIN = path.resolve(__dirname, '..', 'bin', 'kv-binding.js')
const DEMO = path.resolve(__dirname, '..', 'examples', 'demo.js')

const TOML = `name = "shop"
main = "src/index.js"

[[kv_namespaces]]
binding = "SESSIONS"
id = "0b5e1c"

[[kv_namespaces]]
binding = "FLAGS"
id = "7f3a9d"
preview_id = "7f3a9d-preview"

[env.staging]
name = "shop-staging"
kv_namespaces = [ { binding = "STAGING_SESSIONS", id = "11aa" } ]

[env.bare]
name = "shop-bare"
`

const JSONC = `{
  // The same project, in JSON with comments.
  "name": "shop",
  "kv_namespaces": [
    { "binding": "SESSIONS", "id": "0b5e1c" },
    { "binding": "FLAGS", "id": "7f3a9d", "preview_id": "7f3a9d-preview" },
  ],
  "env": {
    "staging": { "kv_namespaces": [{ "binding": "STAGING_SESSIONS", "id": "11aa" }] },
    "bare": { "name": "shop-bare" },
  },
}
`

/** The error `run` throws. */
function thrown(run) {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('it did not throw')
}

const closeAll = (env) => Promise.all(Object.values(env).map((kv) => kv.close()))

describe.each([
  ['wrangler.toml', TOML],
  ['wrangler.jsonc', JSONC],
  ['wrangler.json', JSON.stringify(require('jsonc-parser').parse(JSONC), null, 2)],
])('%s', (name, text) => {
  test('wranglerEnv() gives each binding its namespace, per environment', async () => {
    const dir = project({ [name]: text })
    const config = path.join(dir, name)
    const store = path.join(dir, '.kv')
    const env = wranglerEnv({ config, path: store })
    expect(Object.keys(env)).toEqual(['SESSIONS', 'FLAGS'])
    expect(env.SESSIONS).toBeInstanceOf(KV)
    await env.SESSIONS.put('s:1', 'alice')
    await env.FLAGS.put('beta', 'on')
    await closeAll(env)
    // Each namespace is the one named by its binding, in the store given.
    const sessions = new KV({ path: store, namespace: 'SESSIONS' })
    await expect(sessions.get('s:1')).resolves.toBe('alice')
    await expect(sessions.get('beta')).resolves.toBeNull()
    await sessions.close()

    const staging = wranglerEnv({ config, env: 'staging' })
    expect(Object.keys(staging)).toEqual(['STAGING_SESSIONS'])
    await closeAll(staging)
    // kv_namespaces is not inherited: an environment without its own binds none.
    expect(wranglerEnv({ config, env: 'bare' })).toEqual({})
    expect(thrown(() => wranglerEnv({ config, env: 'prod' }))).toMatchObject({
      code: 'ERR_KV_CONFIG',
      message: `${config} has no environment "prod" (it has "staging", "bare").`,
    })
  })
})

test('the configuration is found from the working directory upwards, json before jsonc before toml', () => {
  const dir = project({
    'wrangler.toml': '[[kv_namespaces]]\nbinding = "FROM_TOML"\n',
    'wrangler.jsonc': '{ "kv_namespaces": [{ "binding": "FROM_JSONC" }] }',
    'src/deep/.keep': '',
  })
  const bindings = (cwd) => {
    const result = spawnSync(
      process.execPath,
      [
        '-e',
        `console.log(Object.keys(require(${JSON.stringify(path.resolve(__dirname, '..'))}).wranglerEnv()))`,
      ],
      { cwd, encoding: 'utf8' },
    )
    return result.stdout.trim() || result.stderr
  }
  expect(bindings(path.join(dir, 'src', 'deep'))).toBe("[ 'FROM_JSONC' ]")
  fs.writeFileSync(
    path.join(dir, 'wrangler.json'),
    '{ "kv_namespaces": [{ "binding": "FROM_JSON" }] }',
  )
  expect(bindings(dir)).toBe("[ 'FROM_JSON' ]")
  // The nearest directory's configuration wins over one further up.
  fs.writeFileSync(path.join(dir, 'src', 'wrangler.toml'), '[[kv_namespaces]]\nbinding = "NEAR"\n')
  expect(bindings(path.join(dir, 'src', 'deep'))).toBe("[ 'NEAR' ]")
})

test('a configuration that cannot be used names the file, the line and the field', () => {
  const cases = [
    [
      'wrangler.toml',
      'name = "x"\n\n[[kv_namespaces]]\nbinding = "A"\n\n[[kv_namespaces]]\nbinding = 7\n',
      ':7: kv_namespaces[1].binding must be the name the worker sees, such as "MY_KV".',
    ],
    [
      'wrangler.toml',
      'name = "x"\nkv_namespaces = [ { binding = "A", id = 5 } ]\n',
      ':2: kv_namespaces[0].id must be a string.',
    ],
    [
      'wrangler.toml',
      '[env.prod]\nname = "p"\n[[env.prod.kv_namespaces]]\nbinding = "A"\n[[env.prod.kv_namespaces]]\nbinding = "A"\n',
      ':6: env.prod.kv_namespaces[1].binding binds "A" a second time.',
      { env: 'prod' },
    ],
    [
      'wrangler.toml',
      'name = "x"\nkv_namespaces = "KV"\n',
      ':2: kv_namespaces must be an array of { binding, id } entries.',
    ],
    ['wrangler.toml', 'name = "x"\n[[kv_namespaces]\nbinding = "A"\n', ':2: not valid TOML'],
    [
      'wrangler.jsonc',
      '{\n  "kv_namespaces": [\n    { "binding": "A" },\n    { "binding": "" }\n  ]\n}',
      ':4: kv_namespaces[1].binding must be the name the worker sees, such as "MY_KV".',
    ],
    [
      'wrangler.jsonc',
      '{\n  "kv_namespaces": [\n    { "binding": "A" "id": "1" }\n  ]\n}',
      ':3: not valid JSON with comments (CommaExpected).',
    ],
    ['wrangler.json', '[1, 2]', ':1: a wrangler configuration is an object of settings.'],
  ]
  for (const [name, text, expected, options] of cases) {
    const config = path.join(project({ [name]: text }), name)
    const error = thrown(() => wranglerEnv({ config, ...options }))
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_KV_CONFIG')
    expect(error.message).toContain(config + expected)
  }
  const nowhere = tempDir()
  expect(thrown(() => wranglerEnv({ config: path.join(nowhere, 'wrangler.toml') })).message).toBe(
    `Cannot read the wrangler configuration ${path.join(nowhere, 'wrangler.toml')}: ` +
      `ENOENT: no such file or directory, open '${path.join(nowhere, 'wrangler.toml')}'`,
  )
  expect(() => wranglerEnv({ config: path.join(nowhere, 'x.toml'), namespace: 'A' })).toThrow(
    new TypeError('wranglerEnv() names each namespace by its binding: leave out namespace.'),
  )
})

test('the CLI reads and writes the namespace of a binding', async () => {
  const dir = project({ 'wrangler.toml': TOML })
  const store = path.join(dir, '.kv')
  const cli = (...args) =>
    spawnSync(process.execPath, [BIN, '--path', store, ...args], { cwd: dir, encoding: 'utf8' })
  expect(cli('--binding', 'FLAGS', 'put', 'beta', 'on').status).toBe(0)
  expect(cli('--binding', 'STAGING_SESSIONS', '--env', 'staging', 'put', 's', '1').status).toBe(0)
  expect(cli('--binding', 'FLAGS', 'get', 'beta')).toMatchObject({ status: 0, stdout: 'on' })
  const flags = new KV({ path: store, namespace: 'FLAGS' })
  await expect(flags.get('beta')).resolves.toBe('on')
  await flags.close()
  const staging = new KV({ path: store, namespace: 'STAGING_SESSIONS' })
  await expect(staging.get('s')).resolves.toBe('1')
  await staging.close()

  expect(cli('--binding', 'CACHE', 'list')).toMatchObject({
    status: 1,
    stderr: `kv-binding: ${path.join(dir, 'wrangler.toml')} binds no KV namespace "CACHE" (it binds "SESSIONS", "FLAGS").\n`,
  })
  expect(cli('--binding', 'SESSIONS', '--env', 'staging', 'list').stderr).toContain(
    'binds no KV namespace "SESSIONS" in environment "staging" (it binds "STAGING_SESSIONS").',
  )
  expect(cli('--env', 'staging', 'list')).toMatchObject({ status: 2 })
  expect(cli('--env', 'staging', 'list').stderr).toContain('--env and --config go with --binding')
  expect(cli('--namespace', 'A', '--binding', 'FLAGS', 'list').stderr).toContain(
    'give --namespace or --binding, not both',
  )
})

test('the demo serves env.KV from the namespace of a binding', async () => {
  const dir = project({ 'wrangler.jsonc': JSONC })
  const store = path.join(dir, '.kv')
  let sessionId
  const demo = spawn(
    process.execPath,
    [DEMO, '--port', '0', '--path', store, '--binding', 'SESSIONS'],
    { cwd: dir },
  )
  try {
    const url = await new Promise((resolve, reject) => {
      demo.stdout.on('data', (chunk) => {
        const match = /on (http:\/\/\S+?)\/? /.exec(String(chunk))
        if (match) resolve(match[1])
      })
      demo.once('exit', reject)
    })
    const response = await fetch(`${url}/login?user=ada`, { method: 'POST' })
    sessionId = response.headers.get('set-cookie').split(';')[0].split('=')[1]
    const exited = new Promise((resolve) => demo.once('exit', resolve))
    demo.kill('SIGINT')
    expect(await exited).toBe(0)
  } finally {
    demo.kill('SIGKILL')
  }
  // The session the demo's worker wrote through env.KV is in namespace SESSIONS, not KV.
  const sessions = new KV({ path: store, namespace: 'SESSIONS' })
  await expect(sessions.get(`session:${sessionId}`, 'json')).resolves.toMatchObject({
    user: 'ada',
  })
  await sessions.close()
  const kv = new KV({ path: store, namespace: 'KV' })
  await expect(kv.list()).resolves.toMatchObject({ keys: [] })
  await kv.close()

  const unknown = spawnSync(process.execPath, [DEMO, '--port', '0', '--binding', 'NOPE'], {
    cwd: dir,
    encoding: 'utf8',
  })
  expect(unknown.status).toBe(1)
  expect(unknown.stderr).toContain('binds no KV namespace "NOPE"')
})

describe('the Jest environment', () => {
  const environment = (testEnvironmentOptions, rootDir) =>
    new KVEnvironment(
      { globalConfig: {}, projectConfig: { rootDir, testEnvironmentOptions, globals: {} } },
      { console, docblockPragmas: {}, testPath: __filename },
    )

  test('takes its namespaces from the project’s wrangler configuration', async () => {
    const root = project({ 'wrangler.toml': TOML })
    for (const [options, expected] of [
      [{}, ['SESSIONS', 'FLAGS']],
      [{ kvWranglerEnv: 'staging' }, ['STAGING_SESSIONS']],
      [{ kvNamespaces: ['OWN'] }, ['OWN']],
    ]) {
      const env = environment(options, root)
      await env.setup()
      try {
        expect(Object.keys(env.global.env)).toEqual(expected)
      } finally {
        await env.teardown()
      }
    }
    // Without a configuration, or with one that binds no KV namespace: KV, as before.
    for (const root of [tempDir(), project({ 'wrangler.toml': 'name = "x"\n' })]) {
      const env = environment({}, root)
      await env.setup()
      expect(Object.keys(env.global.env)).toEqual(['KV'])
      await env.teardown()
    }
  })

  test('a bad configuration fails with the environment’s name, the file and the line', () => {
    const root = project({ 'wrangler.toml': '[[kv_namespaces]]\nid = "x"\n' })
    expect(() => environment({}, root)).toThrow(
      new TypeError(
        `kv-binding/jest-environment: ${path.join(root, 'wrangler.toml')}:1: ` +
          'kv_namespaces[0].binding must be the name the worker sees, such as "MY_KV".',
      ),
    )
    expect(() => environment({ kvWranglerConfig: 'missing.toml' }, root)).toThrow(
      `kv-binding/jest-environment: Cannot read the wrangler configuration ${path.join(root, 'missing.toml')}`,
    )
    expect(() => environment({ kvNamespaces: ['A'], kvWranglerEnv: 'x' }, root)).toThrow(
      'give kvNamespaces or kvWranglerConfig/kvWranglerEnv, not both.',
    )
  })
})
