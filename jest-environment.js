'use strict'

// A Jest test environment that gives every test file a global `env` of KV namespaces, as a
// worker sees them, each test starting from the same seeded state.
//
//   testEnvironment: 'kv-binding/jest-environment',
//   testEnvironmentOptions: {
//     kvNamespaces: ['KV', 'SESSIONS'],          // default: the bindings of the project's
//                                                //   wrangler configuration, else ['KV']
//     kvWranglerConfig: 'wrangler.toml',         // optional: which configuration (from rootDir)
//     kvWranglerEnv: 'staging',                  // optional: its [env.staging] bindings
//     kvSeed: { KV: 'fixtures/kv.json' },        // `wrangler kv bulk put` JSON, from rootDir
//     kvPersist: '.kv-test',                     // optional: sled stores instead of memory
//     kvUrl: 'redis://localhost:6379',           // optional: Redis instead (kvCluster: true
//                                                //   for a Redis Cluster)
//     kvConsistency: 'eventual',                 // optional: simulate production's caching
//     kvLimits: true,                            // optional: production's write rate limit
//   }

const { TestEnvironment } = require('jest-environment-node')
const { readOptions, TestNamespaces } = require('./lib/test-environment.js')

class KVEnvironment extends TestEnvironment {
  #namespaces

  constructor(config, context) {
    super(config, context)
    const options = readOptions(config.projectConfig.testEnvironmentOptions, {
      rootDir: config.projectConfig.rootDir,
      name: 'kv-binding/jest-environment',
      workerId: process.env.JEST_WORKER_ID ?? '1',
    })
    this.#namespaces = new TestNamespaces(options)
  }

  async setup() {
    await super.setup()
    this.global.env = await this.#namespaces.open(this.global, {
      keyPrefix: `kv-jest:${process.env.JEST_WORKER_ID ?? '1'}`,
    })
  }

  async handleTestEvent(event) {
    if (event.name === 'test_start') await this.#namespaces.restore()
  }

  async teardown() {
    await this.#namespaces.close()
    await super.teardown()
  }
}

module.exports = KVEnvironment
