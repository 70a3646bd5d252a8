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
//   }                                            //   for a Redis Cluster)

const fs = require('node:fs')
const path = require('node:path')
const { TestEnvironment } = require('jest-environment-node')
const { forRealm, REMOVE } = require('./index.js')

const NAME = 'kv-binding/jest-environment'

// The binding names of the project's wrangler configuration (the one named, or the first
// found from rootDir upwards), or ['KV'] when there is none or it binds no KV namespace.
function wranglerBindings(rootDir, kvWranglerConfig, kvWranglerEnv, fail) {
  if (
    kvWranglerConfig !== undefined &&
    (typeof kvWranglerConfig !== 'string' || !kvWranglerConfig)
  ) {
    fail('kvWranglerConfig must be the path of a wrangler.json, wrangler.jsonc or wrangler.toml.')
  }
  if (kvWranglerEnv !== undefined && (typeof kvWranglerEnv !== 'string' || !kvWranglerEnv)) {
    fail('kvWranglerEnv must be the name of an environment of the wrangler configuration.')
  }
  const { findConfig, loadKvNamespaces } = require('./lib/wrangler.js')
  const named = kvWranglerConfig !== undefined || kvWranglerEnv !== undefined
  if (!named && findConfig(rootDir) === null) return ['KV']
  let namespaces
  try {
    ;({ namespaces } = loadKvNamespaces({
      config: kvWranglerConfig,
      env: kvWranglerEnv,
      from: rootDir,
    }))
  } catch (error) {
    fail(error.message)
  }
  return namespaces.length > 0 || named ? namespaces.map(({ binding }) => binding) : ['KV']
}

function readOptions(config) {
  const {
    kvNamespaces: given,
    kvWranglerConfig,
    kvWranglerEnv,
    kvSeed = {},
    kvPersist,
    kvUrl,
    kvCluster = false,
  } = config.projectConfig.testEnvironmentOptions ?? {}
  const fail = (message) => {
    throw new TypeError(`${NAME}: ${message}`)
  }
  const rootDir = config.projectConfig.rootDir
  if (given !== undefined && (kvWranglerConfig !== undefined || kvWranglerEnv !== undefined)) {
    fail('give kvNamespaces or kvWranglerConfig/kvWranglerEnv, not both.')
  }
  const kvNamespaces = given ?? wranglerBindings(rootDir, kvWranglerConfig, kvWranglerEnv, fail)
  if (!Array.isArray(kvNamespaces) || !kvNamespaces.every((n) => typeof n === 'string' && n)) {
    fail('kvNamespaces must be an array of binding names, such as ["KV", "SESSIONS"].')
  }
  if (typeof kvSeed !== 'object' || kvSeed === null) {
    fail('kvSeed must map binding names to JSON files.')
  }
  for (const [name, file] of Object.entries(kvSeed)) {
    if (!kvNamespaces.includes(name)) fail(`kvSeed names "${name}", which is not in kvNamespaces.`)
    if (typeof file !== 'string') fail(`kvSeed.${name} must be the path of a JSON file.`)
  }
  if (kvPersist !== undefined && (typeof kvPersist !== 'string' || kvPersist === '')) {
    fail('kvPersist must be a directory path.')
  }
  if (kvUrl !== undefined && (typeof kvUrl !== 'string' || kvUrl === '')) {
    fail('kvUrl must be a Redis URL, such as "redis://localhost:6379".')
  }
  if (kvUrl !== undefined && kvPersist !== undefined) {
    fail('give kvPersist or kvUrl, not both.')
  }
  if (typeof kvCluster !== 'boolean') fail('kvCluster must be true or false.')
  return {
    names: kvNamespaces,
    seeds: Object.fromEntries(
      Object.entries(kvSeed).map(([name, file]) => [name, path.resolve(rootDir, file)]),
    ),
    // One directory per Jest worker, so parallel workers never contend for a store's lock.
    persistDir:
      kvPersist && path.resolve(rootDir, kvPersist, `worker-${process.env.JEST_WORKER_ID ?? '1'}`),
    redis: kvUrl && { url: kvUrl, cluster: kvCluster },
  }
}

function readSeed(file) {
  let entries
  try {
    entries = JSON.parse(fs.readFileSync(file, 'utf8'))
  } catch (error) {
    throw new Error(`${NAME}: cannot read the seed file ${file}: ${error.message}`, {
      cause: error,
    })
  }
  return entries
}

// Opens namespace `name` in `dir`, or, when another Jest run holds `dir` (jest --watch beside
// a CI run), in a directory of this process's own: every test file starts from a cleared
// store, so nothing is lost. Returns the namespace and the directory used.
function openPersisted(KV, dir, name) {
  try {
    // Not shared: a store another run holds is never cleared and reseeded under it.
    return { kv: new KV({ path: dir, namespace: name, shared: false }), dir }
  } catch (error) {
    if (error.code !== 'ERR_KV_LOCKED') throw error
    const own = `${dir}-pid${process.pid}`
    return { kv: new KV({ path: own, namespace: name, shared: false }), dir: own }
  }
}

class KVEnvironment extends TestEnvironment {
  #options
  #namespaces = []

  constructor(config, context) {
    super(config, context)
    this.#options = readOptions(config)
  }

  async setup() {
    await super.setup()
    // Built from the test file's own globals: its Date (so fake timers move KV time), and
    // its constructors for every value, Map, promise and error.
    const KV = forRealm(this.global)
    const env = new this.global.Object()
    const { names, seeds, redis } = this.#options
    let { persistDir } = this.#options
    // On Redis, a key prefix of this test file's own (worker, process, and a random part), so
    // that parallel workers and runs never meet; teardown removes everything under it.
    const keyPrefix =
      redis &&
      `kv-jest:${process.env.JEST_WORKER_ID ?? '1'}:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`
    for (const name of names) {
      let kv
      if (persistDir) ({ kv, dir: persistDir } = openPersisted(KV, persistDir, name))
      else if (redis) kv = new KV({ ...redis, keyPrefix, namespace: name })
      else kv = new KV()
      this.#namespaces.push({ kv })
      // A persisted store keeps what the last test file of this worker left: start clean.
      if (persistDir) await kv.clear()
      if (seeds[name]) {
        await kv.bulkPut(readSeed(seeds[name])).catch((error) => {
          throw new Error(`${NAME}: seeding ${name} from ${seeds[name]} failed: ${error.message}`, {
            cause: error,
          })
        })
      }
      this.#namespaces.at(-1).seeded = await kv.snapshot()
      env[name] = kv
    }
    this.global.env = env
  }

  async handleTestEvent(event) {
    if (event.name === 'test_start') {
      // Each test starts from the seeded state. A restore queues behind anything a previous
      // test left running on the same namespace, so a forgotten promise cannot undo it.
      await Promise.all(this.#namespaces.map(({ kv, seeded }) => kv.restore(seeded)))
    }
  }

  async teardown() {
    const removed = this.#options.redis ? this.#namespaces.map(({ kv }) => kv[REMOVE]()) : []
    await Promise.all([...removed, ...this.#namespaces.map(({ kv }) => kv.close())])
    this.#namespaces = []
    await super.teardown()
  }
}

module.exports = KVEnvironment
