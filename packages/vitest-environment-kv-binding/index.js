'use strict'

// A Vitest environment (`environment: 'kv-binding'`, which Vitest loads from this package)
// that gives every test file a global `env` of KV namespaces, as a worker sees them, with
// the options of kv-binding's Jest environment:
//
//   test: {
//     environment: 'kv-binding',
//     environmentOptions: {
//       kvNamespaces: ['KV', 'SESSIONS'],   // default: the wrangler configuration's bindings
//       kvSeed: { KV: 'fixtures/kv.json' }, // `wrangler kv bulk put` JSON
//       kvPersist: '.kv-test',              // optional: sled stores, one directory per worker
//       kvConsistency: 'eventual',          // optional: cache reads per location
//       kvLimits: true,                     // optional: production's write rate limit
//     },
//   },
//
// Paths are from the working directory, Vitest's root. Each test starts from the seeded
// state: Vitest gives environments no hook per test, so the namespaces are put back when a
// test first uses one of them, before that use, having waited for anything the previous
// test left running.

const { runInContext } = require('node:vm')
const { readOptions, TestNamespaces } = require('kv-binding/test-environment')

const NAME = 'vitest-environment-kv-binding'

// The test running now in `realm`, and which attempt of it (a retry or a repeat starts from
// the seed too): Vitest's worker state names it while it runs, and while its beforeEach
// hooks do.
const currentTest = (realm) => {
  const current = realm.__vitest_worker__?.current
  if (current?.type !== 'test') return undefined
  const { retryCount = 0, repeatCount = 0 } = current.result ?? {}
  return `${current.id}:${retryCount}:${repeatCount}`
}

/** Opens the namespaces for the test files whose global object is `realm`. */
async function openFor(realm, environmentOptions) {
  const options = readOptions(environmentOptions?.['kv-binding'] ?? environmentOptions, {
    rootDir: process.cwd(),
    name: NAME,
    workerId: process.env.VITEST_POOL_ID ?? '1',
  })
  const namespaces = new TestNamespaces(options)
  realm.env = await namespaces.open(realm, {
    keyPrefix: `kv-vitest:${process.env.VITEST_POOL_ID ?? '1'}`,
    currentTest: () => currentTest(realm),
  })
  return namespaces
}

module.exports = {
  name: 'kv-binding',
  viteEnvironment: 'ssr',
  // The threads and forks pools: test files run in the worker's own global.
  async setup(global, environmentOptions) {
    const namespaces = await openFor(global, environmentOptions)
    return {
      async teardown(global) {
        await namespaces.close()
        delete global.env
      },
    }
  },
  // The vmThreads and vmForks pools: test files run in a vm context, which Vitest's own
  // node environment makes; the namespaces are made with that context's constructors.
  async setupVM(environmentOptions) {
    const { builtinEnvironments } = await import('vitest/runtime')
    const node = await builtinEnvironments.node.setupVM(environmentOptions)
    const context = node.getVmContext()
    const realm = runInContext('globalThis', context)
    const namespaces = await openFor(realm, environmentOptions)
    return {
      getVmContext: () => context,
      async teardown() {
        await namespaces.close()
        await node.teardown()
      },
    }
  },
}
