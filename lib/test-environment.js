'use strict'

// What the test environments (Jest's, and the Vitest package's) share: their options, and
// the namespaces of a test file: opened in memory, in sled stores or on Redis, seeded,
// snapshotted, restored to the seed before each test, and closed.

const fs = require('node:fs')
const path = require('node:path')
const { forRealm, REMOVE } = require('./kv.js')

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
  const { findConfig, loadKvNamespaces } = require('./wrangler.js')
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

/** `file` from `rootDir`, where a leading `<rootDir>` is that directory, as in Jest's config. */
const fromRoot = (rootDir, file) => path.resolve(rootDir, file.replace(/^<rootDir>/, rootDir))

/**
 * Checks a test environment's options (`kvNamespaces`, `kvSeed`, ...) and resolves their
 * paths from `rootDir`. `name` prefixes every error; `workerId` names this worker's
 * `kvPersist` directory.
 */
function readOptions(options, { rootDir, name, workerId }) {
  const {
    kvNamespaces: given,
    kvWranglerConfig,
    kvWranglerEnv,
    kvSeed = {},
    kvPersist,
    kvUrl,
    kvCluster = false,
    kvConsistency = 'strong',
    kvLimits = false,
  } = options ?? {}
  const fail = (message) => {
    throw new TypeError(`${name}: ${message}`)
  }
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
  if (kvConsistency !== 'strong' && kvConsistency !== 'eventual') {
    fail('kvConsistency must be "strong" or "eventual".')
  }
  if (typeof kvLimits !== 'boolean' && (typeof kvLimits !== 'object' || kvLimits === null)) {
    fail('kvLimits must be true, false, or the limits option of KV.')
  }
  return {
    name,
    names: kvNamespaces,
    seeds: Object.fromEntries(
      Object.entries(kvSeed).map(([name, file]) => [name, fromRoot(rootDir, file)]),
    ),
    // One directory per worker, so parallel workers never contend for a store's lock.
    persistDir: kvPersist && path.join(fromRoot(rootDir, kvPersist), `worker-${workerId}`),
    redis: kvUrl && { url: kvUrl, cluster: kvCluster },
    // What every namespace is opened with besides where it lives.
    behaviour: { consistency: kvConsistency, limits: kvLimits },
  }
}

/** The largest seed file a test environment reads. */
const SEED_MAX_BYTES = 256 * 1024 * 1024

/**
 * The entries of the seed file `file`: a regular file of at most SEED_MAX_BYTES holding JSON.
 * A device, a FIFO or a directory is refused without being read (opened non-blocking, so a
 * FIFO cannot hang the run), and no error quotes the file's content: a seed path that points
 * somewhere it should not must not print what is there into a test log.
 */
function readSeed(file, name) {
  const refuse = (why, cause) => {
    throw new Error(`${name}: cannot read the seed file ${file}: ${why}`, { cause })
  }
  let text
  let fd
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    const stat = fs.fstatSync(fd)
    if (!stat.isFile()) refuse('it is not a regular file.')
    if (stat.size > SEED_MAX_BYTES) {
      refuse(`it holds ${stat.size} bytes, more than the ${SEED_MAX_BYTES} a seed file may.`)
    }
    text = fs.readFileSync(fd, 'utf8')
  } catch (error) {
    if (error.message.startsWith(`${name}: `)) throw error
    const why = { ENOENT: 'there is no such file.', EACCES: 'permission denied.' }[error.code]
    refuse(why ?? `${error.code ?? error.message}.`, error)
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
  try {
    return JSON.parse(text)
  } catch (error) {
    // V8's message quotes the text around the fault; only where it is is repeated here.
    const position = /position (\d+)/.exec(error.message)?.[1]
    refuse(
      /end of JSON input/.test(error.message)
        ? `it is not valid JSON: it ends at character ${text.length}, before its JSON does.`
        : position === undefined
          ? 'it is not valid JSON.'
          : `it is not valid JSON (the fault is at character ${position}).`,
    )
  }
}

// Opens namespace `name` in `dir`, or, when another test run holds `dir` (a watch mode beside
// a CI run), in a directory of this process's own: every test file starts from a cleared
// store, so nothing is lost. Returns the namespace and the directory used.
function openPersisted(KV, dir, name, behaviour) {
  try {
    // Not shared: a store another run holds is never cleared and reseeded under it.
    return { kv: new KV({ ...behaviour, path: dir, namespace: name, shared: false }), dir }
  } catch (error) {
    if (error.code !== 'ERR_KV_LOCKED') throw error
    const own = `${dir}-pid${process.pid}`
    return { kv: new KV({ ...behaviour, path: own, namespace: name, shared: false }), dir: own }
  }
}

/**
 * The namespaces of one test file, as `options` (from `readOptions`) say, made with the
 * constructors of `realm` (the test file's global object): its Date, so fake timers move KV
 * time, and its Map, promises and errors.
 */
class TestNamespaces {
  #options
  #namespaces = []
  #lastTest
  // The restore of the KV class itself, which a restoring namespace's own does not bypass.
  #restore

  constructor(options) {
    this.#options = options
  }

  /**
   * Opens and seeds every namespace; resolves the `env` object that holds them. With
   * `currentTest` (a function naming the test running now, or undefined between tests), the
   * namespaces restore themselves to the seed when a test first uses one of them: for test
   * runners that tell an environment nothing when a test starts.
   */
  async open(realm, { keyPrefix = 'kv-test', currentTest } = {}) {
    const base = forRealm(realm)
    this.#restore = (kv, seeded) => base.prototype.restore.call(kv, seeded)
    const KV = currentTest ? restoringOnFirstUse(base, () => this.#beforeUse(currentTest())) : base
    const env = new realm.Object()
    const { name: who, names, seeds, redis, behaviour } = this.#options
    let { persistDir } = this.#options
    // On Redis, a key prefix of this test file's own (process, and a random part), so that
    // parallel workers and runs never meet; close() removes everything under it.
    const prefix =
      redis && `${keyPrefix}:${process.pid}:${Math.random().toString(36).slice(2, 10)}:`
    for (const name of names) {
      let kv
      if (persistDir) ({ kv, dir: persistDir } = openPersisted(KV, persistDir, name, behaviour))
      else if (redis) kv = new KV({ ...behaviour, ...redis, keyPrefix: prefix, namespace: name })
      else kv = new KV(behaviour)
      this.#namespaces.push({ kv })
      // A persisted store keeps what the last test file of this worker left: start clean.
      if (persistDir) await kv.clear()
      if (seeds[name]) {
        await kv.bulkPut(readSeed(seeds[name], who)).catch((error) => {
          throw new Error(`${who}: seeding ${name} from ${seeds[name]} failed: ${error.message}`, {
            cause: error,
          })
        })
      }
      this.#namespaces.at(-1).seeded = await kv.snapshot()
      env[name] = kv
    }
    return env
  }

  // Before any use of a namespace: a test that has not used one yet gets them all restored
  // first. The restores are queued at once, so the use that follows waits for them.
  #beforeUse(test) {
    if (test === undefined || test === this.#lastTest) return
    this.#lastTest = test
    for (const { kv, seeded } of this.#namespaces) {
      // What fails here fails the use that follows, which waits for it.
      this.#restore(kv, seeded).catch(() => {})
    }
  }

  /**
   * Puts every namespace back to its seeded state. A restore queues behind anything a
   * previous test left running on the same namespace, so a forgotten promise cannot undo it.
   */
  restore() {
    return Promise.all(this.#namespaces.map(({ kv, seeded }) => kv.restore(seeded)))
  }

  /** Closes every namespace; on Redis, removes what the test file wrote first. */
  async close() {
    const removed = this.#options.redis ? this.#namespaces.map(({ kv }) => kv[REMOVE]()) : []
    await Promise.all([...removed, ...this.#namespaces.map(({ kv }) => kv.close())])
    this.#namespaces = []
  }
}

// The operations of a KV that read or write it, which a restoring namespace precedes with its
// check.
const OPERATIONS = [
  'get',
  'getWithMetadata',
  'put',
  'delete',
  'list',
  'bulkPut',
  'dump',
  'snapshot',
  'restore',
  'clear',
  'flush',
]

/** A subclass of `KV` whose every operation first calls `beforeUse()`. */
function restoringOnFirstUse(KV, beforeUse) {
  class RestoringKV extends KV {}
  for (const name of OPERATIONS) {
    const operation = KV.prototype[name]
    Object.defineProperty(RestoringKV.prototype, name, {
      value: {
        [name](...args) {
          beforeUse()
          return operation.apply(this, args)
        },
      }[name],
      writable: true,
      configurable: true,
    })
  }
  return RestoringKV
}

module.exports = { readOptions, TestNamespaces }
