'use strict'

// kv-binding/jest-environment used directly, for what its own Jest projects cannot show.

const path = require('node:path')
const KVEnvironment = require('../jest-environment')
const { tempDir, holdStore } = require('./helpers')

function environment(testEnvironmentOptions, rootDir) {
  return new KVEnvironment(
    {
      globalConfig: {},
      projectConfig: { rootDir, testEnvironmentOptions, globals: {} },
    },
    { console, docblockPragmas: {}, testPath: __filename },
  )
}

test('a persist directory held by another Jest run gives way to one of its own', async () => {
  const root = tempDir()
  const held = path.join(root, 'kv', `worker-${process.env.JEST_WORKER_ID ?? '1'}`)
  const holder = await holdStore(held)
  try {
    const env = environment({ kvNamespaces: ['KV'], kvPersist: 'kv' }, root)
    await env.setup()
    try {
      await env.global.env.KV.put('key', 'value')
      await expect(env.global.env.KV.get('key')).resolves.toBe('value')
    } finally {
      await env.teardown()
    }
    const { KV } = require('..')
    const own = new KV({ path: `${held}-pid${process.pid}`, namespace: 'KV' })
    await expect(own.get('key')).resolves.toBe('value')
    await own.close()
  } finally {
    holder.kill('SIGKILL')
  }
})

test('bad options name the environment and the option', () => {
  expect(() => environment({ kvNamespaces: 'KV' }, tempDir())).toThrow(
    new TypeError(
      'kv-binding/jest-environment: kvNamespaces must be an array of binding names, such as ["KV", "SESSIONS"].',
    ),
  )
  expect(() => environment({ kvSeed: { OTHER: 'x.json' } }, tempDir())).toThrow(
    'kvSeed names "OTHER", which is not in kvNamespaces.',
  )
})

test('an unreadable seed file fails setup with its path', async () => {
  const root = tempDir()
  const env = environment({ kvSeed: { KV: 'missing.json' } }, root)
  await expect(env.setup()).rejects.toThrow(
    `kv-binding/jest-environment: cannot read the seed file ${path.join(root, 'missing.json')}`,
  )
  await env.teardown()
})

test('a seed path that is no seed file is refused, never read into the log', async () => {
  const fs = require('node:fs')
  const { spawnSync } = require('node:child_process')
  const root = tempDir()
  fs.writeFileSync(path.join(root, 'secret.txt'), 'root:SECRET-HASH:19000:0:99999:7:::\n')
  fs.writeFileSync(path.join(root, 'cut.json'), '[{ "key": "a", "value": "SECRET')
  fs.writeFileSync(path.join(root, 'short.json'), '[1,')
  fs.writeFileSync(path.join(root, 'huge.json'), '')
  fs.truncateSync(path.join(root, 'huge.json'), 256 * 1024 * 1024 + 1)
  const fifo = spawnSync('mkfifo', [path.join(root, 'fifo')]).status === 0
  const cases = [
    ['/dev/zero', 'it is not a regular file.'],
    [root, 'it is not a regular file.'],
    ['huge.json', 'it holds 268435457 bytes, more than the 268435456 a seed file may.'],
    ['secret.txt', 'it is not valid JSON'],
    ['cut.json', 'it is not valid JSON (the fault is at character 31).'],
    ['short.json', 'it is not valid JSON: it ends at character 3, before its JSON does.'],
  ]
  // A FIFO nobody writes to would block a plain read for ever.
  if (fifo) cases.push(['fifo', 'it is not a regular file.'])
  for (const [file, why] of cases) {
    const env = environment({ kvSeed: { KV: file } }, root)
    const error = await env.setup().then(
      () => null,
      (error) => error,
    )
    expect(error.message).toContain(`cannot read the seed file ${path.resolve(root, file)}: ${why}`)
    expect(error.message).not.toContain('SECRET')
    expect(String(error.cause?.message)).not.toContain('SECRET')
    await env.teardown()
  }
})

const redisUrl = process.env.KV_TEST_REDIS_URL
// Without redis-server, Jest's globalSetup has said so once and left the URL unset.
const testRedis = redisUrl ? test : test.skip

testRedis(
  'kvUrl: each test file gets namespaces of its own on Redis, removed at teardown',
  async () => {
    const { spawnSync } = require('node:child_process')
    const port = new URL(redisUrl).port
    const keys = (pattern) =>
      spawnSync('redis-cli', ['-p', port, '--scan', '--pattern', pattern], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter(Boolean)
    const root = tempDir()
    require('node:fs').writeFileSync(
      path.join(root, 'seed.json'),
      JSON.stringify([{ key: 'seeded', value: 'from the seed' }]),
    )
    const options = { kvNamespaces: ['KV'], kvSeed: { KV: 'seed.json' }, kvUrl: redisUrl }
    const first = environment(options, root)
    const second = environment(options, root)
    await first.setup()
    await second.setup()
    const [a, b] = [first.global.env.KV, second.global.env.KV]
    await a.put('only-in-first', 'x')
    await expect(b.get('only-in-first')).resolves.toBeNull()
    await expect(b.get('seeded')).resolves.toBe('from the seed')
    // A test's writes are undone before the next test.
    await first.handleTestEvent({ name: 'test_start' })
    await expect(a.get('only-in-first')).resolves.toBeNull()
    expect(keys('kv-jest:*').length).toBeGreaterThan(0)
    await first.teardown()
    await second.teardown()
    expect(keys('kv-jest:*')).toEqual([])
  },
)

test('kvUrl is a Redis URL, and not with kvPersist', () => {
  expect(() => environment({ kvUrl: 42 }, tempDir())).toThrow('kvUrl must be a Redis URL')
  expect(() => environment({ kvUrl: 'redis://x', kvPersist: 'dir' }, tempDir())).toThrow(
    'give kvPersist or kvUrl, not both.',
  )
})

test('kvSeed and kvPersist paths may start with <rootDir>, as Jest paths do', async () => {
  const root = tempDir()
  const fs = require('node:fs')
  fs.mkdirSync(path.join(root, 'fixtures'))
  fs.writeFileSync(path.join(root, 'fixtures', 'kv.json'), '[{ "key": "seeded", "value": "yes" }]')
  const env = environment(
    {
      kvNamespaces: ['KV'],
      kvSeed: { KV: '<rootDir>/fixtures/kv.json' },
      kvPersist: '<rootDir>/.kv-test',
    },
    root,
  )
  await env.setup()
  try {
    await expect(env.global.env.KV.get('seeded')).resolves.toBe('yes')
  } finally {
    await env.teardown()
  }
  const worker = `worker-${process.env.JEST_WORKER_ID ?? '1'}`
  expect(fs.existsSync(path.join(root, '.kv-test', worker, 'kv.lock'))).toBe(true)
})

test('kvConsistency is "strong" or "eventual", kvLimits true, false or limits', () => {
  expect(() => environment({ kvConsistency: 'weak' }, tempDir())).toThrow(
    new TypeError('kv-binding/jest-environment: kvConsistency must be "strong" or "eventual".'),
  )
  expect(() => environment({ kvLimits: 'on' }, tempDir())).toThrow(
    'kv-binding/jest-environment: kvLimits must be true, false, or the limits option of KV.',
  )
})

test('kvConsistency and kvLimits apply to stores on disk too', async () => {
  const env = environment(
    { kvNamespaces: ['KV'], kvPersist: '.kv-test', kvConsistency: 'eventual', kvLimits: true },
    tempDir(),
  )
  await env.setup()
  try {
    const { KV } = env.global.env
    await expect(KV.location('tokyo').get('k')).resolves.toBeNull()
    await KV.put('k', 'v')
    await expect(KV.location('tokyo').get('k')).resolves.toBeNull()
    await expect(KV.put('k', 'w')).rejects.toThrow('KV PUT failed: 429 Too Many Requests')
  } finally {
    await env.teardown()
  }
})
