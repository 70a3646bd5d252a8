'use strict'

const fs = require('node:fs')
const { spawn } = require('node:child_process')
const os = require('node:os')
const path = require('node:path')
const { KV } = require('..')

// The instant the conformance suites start from: half a second past a whole second, so tests
// see the service round down to seconds.
const NOW_MS = 1_900_000_000_500
const NOW = Math.floor(NOW_MS / 1000)

// One temporary store directory per test file; each test gets its own namespace in it.
const dirs = []
function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-binding-test-'))
  dirs.push(dir)
  return dir
}

/** A new temporary directory holding `files` ({ name: text }), as a project would. */
function projectDir(files) {
  const dir = tempDir()
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    fs.writeFileSync(path.join(dir, name), text)
  }
  return dir
}

let storeDir
let counter = 0
const opened = []

/**
 * The backends every conformance test runs against: `[name, open, supports, optionsFor]`.
 * `open(options)` opens a KV on the backend (closed after the file); `optionsFor(options)` is
 * what it opens with, for another process to open the same namespace. `supports` is what the
 * backend guarantees, as its capabilities in src/store/backend.rs say (guarantees.test.js
 * checks that they agree), so that the test of a guarantee runs where it is claimed:
 * - `persistent`: the data outlives the KV, and another KV opened alike reads it;
 * - `shared`: another process that opens the namespace alike reads and writes the same data;
 * - `atomicBulkWrites`: a bulk write of any size is all or nothing;
 * - `durableFlush`: what `flush()` acknowledged survives a crash.
 */
function backend(name, optionsFor, supports) {
  const open = (options = {}) => track(new KV(optionsFor(options)))
  return [name, open, supports, optionsFor]
}
const ON_DISK = { persistent: true, atomicBulkWrites: true, durableFlush: true }
const backends = [
  backend('memory', (options) => options, {
    persistent: false,
    shared: false,
    atomicBulkWrites: true,
    durableFlush: false,
  }),
  // The store is held by this process, which serves it to others.
  backend(
    'sled',
    (options) => {
      storeDir ??= tempDir()
      return { path: storeDir, namespace: `ns${counter++}`, ...options }
    },
    { ...ON_DISK, shared: true },
  ),
]

// A store that another process holds, on platforms that share stores: every operation of
// these KVs goes through the holder's socket. The holder starts on first use, and the open
// waits until it serves.
let sharedDir
let sharedHolder
function sharedStore() {
  if (sharedDir === undefined) {
    sharedDir = tempDir()
    const root = JSON.stringify(path.resolve(__dirname, '..'))
    sharedHolder = spawn(
      process.execPath,
      [
        '-e',
        `globalThis.store = new (require(${root}).KV)({ path: ${JSON.stringify(sharedDir)} })
         setInterval(() => {}, 1000)`,
      ],
      { stdio: 'ignore' },
    )
    const socket = path.join(sharedDir, 'kv.sock')
    const deadline = Date.now() + 20_000
    while (!fs.existsSync(socket)) {
      if (Date.now() > deadline) throw new Error('the holder of the shared store did not start')
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    }
  }
  return sharedDir
}
if (process.platform !== 'win32') {
  backends.push(
    backend(
      'sled, shared',
      (options) => ({ path: sharedStore(), namespace: `ns${counter++}`, ...options }),
      { ...ON_DISK, shared: true },
    ),
  )
}

// The Redis servers of this run (see redis/setup.js): each test file writes under a key
// prefix of its own, and each KV gets a namespace of its own. A bulk write that does not fit
// one script call is not all or nothing, and Redis's persistence is its own configuration's.
const REDIS_PREFIX = `kvtest:${process.pid}:${Math.random().toString(36).slice(2, 8)}:`
const { KV_TEST_REDIS_URL, KV_TEST_REDIS_CLUSTER_URL, KV_TEST_VALKEY_URL } = process.env
const IN_REDIS = { persistent: true, shared: true, atomicBulkWrites: false, durableFlush: false }
const onRedis = (name, url, cluster) =>
  backend(
    name,
    (options) => ({
      url,
      cluster,
      keyPrefix: REDIS_PREFIX,
      namespace: `ns${counter++}`,
      ...options,
    }),
    IN_REDIS,
  )
if (KV_TEST_REDIS_URL) backends.push(onRedis('redis', KV_TEST_REDIS_URL, false))
if (KV_TEST_REDIS_CLUSTER_URL) {
  backends.push(onRedis('redis cluster', KV_TEST_REDIS_CLUSTER_URL, true))
}
if (KV_TEST_VALKEY_URL) backends.push(onRedis('valkey', KV_TEST_VALKEY_URL, false))

function track(kv) {
  opened.push(kv)
  return kv
}

afterAll(async () => {
  await Promise.all(opened.map((kv) => kv.close()))
  sharedHolder?.kill('SIGKILL')
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** Resolves to the error a promise rejects with, failing when it resolves. */
async function rejection(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject, but it resolved')
}

/** The error that opening a KV with `options` throws, failing when it opens. */
function openError(options) {
  let kv
  try {
    kv = new KV(options)
  } catch (error) {
    return error
  }
  kv.close()
  throw new Error('expected opening the KV to throw, but it opened')
}

/** A ReadableStream that yields `chunks` (Uint8Arrays) one by one. */
function streamOf(...chunks) {
  return new ReadableStream({
    pull(controller) {
      if (chunks.length === 0) controller.close()
      else controller.enqueue(chunks.shift())
    },
  })
}

async function readAll(stream) {
  const reader = stream.getReader()
  const parts = []
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return Buffer.concat(parts)
    parts.push(value)
  }
}

/**
 * Opens the store at `dir` in another process and keeps it open, with KV `options` (such as
 * `{ shared: false }`). Resolves the child process once the store is open; kill it to
 * release the store.
 */
function holdStore(dir, options = {}) {
  const root = JSON.stringify(path.resolve(__dirname, '..'))
  const open = JSON.stringify({ path: dir, ...options })
  const child = spawn(process.execPath, [
    '-e',
    // Held by a global: a KV that nothing refers to is closed when it is garbage-collected.
    `globalThis.store = new (require(${root}).KV)(${open})
     console.log('open')
     setInterval(() => {}, 1000)`,
  ])
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`the store holder exited with ${code}`)))
  })
}

module.exports = {
  NOW_MS,
  NOW,
  backends,
  rejection,
  openError,
  streamOf,
  readAll,
  tempDir,
  projectDir,
  holdStore,
}
