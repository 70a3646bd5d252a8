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
