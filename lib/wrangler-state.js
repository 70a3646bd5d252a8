'use strict'

// The local KV state that `wrangler dev` and Miniflare 3/4 keep (`.wrangler/state/v3/kv`:
// one directory of value blobs per namespace id, and SQLite databases of keys, expirations
// and metadata), moved into and out of a kv-binding store.
//
// Importing reads the state as it lies, without running Miniflare: each namespace's database
// through SQLite (in a private copy, its write-ahead log replayed: src/tools/miniflare.rs), and
// its value files without following a link, each at most a value's size. Nothing in the state
// is written. Exporting writes through Miniflare itself, which a wrangler project has (it
// comes with wrangler), so that the state stays Miniflare's to define. A namespace is named
// in kv-binding by its binding when the project's wrangler configuration maps its id (or
// preview_id), else by its id.

const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const native = require('./native.js')
const { findConfig, readConfig, kvNamespaces } = require('./wrangler.js')

/** wrangler's state directory, from the project directory. */
const DEFAULT_STATE = path.join('.wrangler', 'state')

// Miniflare's own directory beside the namespaces': its databases, not a namespace.
const OBJECT_DIR_PREFIX = 'miniflare-'

// The Durable Object class whose databases hold the keys of KV namespaces.
const KV_OBJECT = 'miniflare-KVNamespaceObject'

// Production (and Miniflare) refuse an expiration less than 60 s ahead: entries that close to
// expiring are left out, and counted.
const MIN_TTL_SECONDS = 60

// The largest value production stores: a value file past it is not read.
const MAX_VALUE_SIZE = native.MAX_VALUE_SIZE

class StateError extends Error {
  constructor(message) {
    super(message)
    this.name = 'Error'
    this.code = 'ERR_KV_CONFIG'
  }
}

/** The directory of KV state inside `stateDir`: wrangler's `v3/kv`, or a Miniflare `kvPersist`. */
function kvStateDir(stateDir, { create = false } = {}) {
  const nested = path.join(stateDir, 'v3', 'kv')
  const isDir = (dir) => fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()
  if (isDir(nested)) return nested
  if (isDir(stateDir) && fs.readdirSync(stateDir).some((n) => n.startsWith(OBJECT_DIR_PREFIX))) {
    return stateDir
  }
  if (create) return nested
  throw new StateError(
    `${path.resolve(stateDir)} holds no local KV state (no v3/kv directory): ` +
      'give the directory that wrangler dev keeps its state in, .wrangler/state by default.',
  )
}

/** The namespace ids with state in `kvDir`. */
function stateIds(kvDir) {
  return fs
    .readdirSync(kvDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith(OBJECT_DIR_PREFIX))
    .map((entry) => entry.name)
    .sort()
}

/**
 * What the wrangler configuration `config` (a path), or the one found from `from` upwards,
 * binds, every environment included:
 * `{ file, byId: Map(id -> binding), byBinding: Map(binding -> id) }`; empty without one.
 */
function configuredBindings(from, config) {
  const file = config === undefined ? findConfig(from) : path.resolve(config)
  const byId = new Map()
  const byBinding = new Map()
  if (file === null) return { file, byId, byBinding }
  const loaded = readConfig(file)
  const envs = Object.keys(loaded.config.env ?? {})
  for (const envName of [undefined, ...envs]) {
    for (const { binding, id, previewId } of kvNamespaces(loaded, envName)) {
      for (const each of [id, previewId]) {
        if (each !== undefined && !byId.has(each)) byId.set(each, binding)
      }
      if (id !== undefined && !byBinding.has(binding)) byBinding.set(binding, id)
    }
  }
  return { file: loaded.file, byId, byBinding }
}

/**
 * Miniflare, from the project (or wherever `from` is), else from beside kv-binding, and its
 * version.
 */
function loadMiniflare(from) {
  let resolved
  try {
    resolved = require.resolve('miniflare', { paths: [process.cwd(), from, __dirname] })
  } catch {
    throw new StateError(
      "Writing wrangler's local state goes through Miniflare, which comes with wrangler: " +
        'run this in the wrangler project, or npm install --save-dev miniflare.',
    )
  }
  let version = 'of unknown version'
  for (let dir = path.dirname(resolved); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json')
    if (!fs.existsSync(manifest)) continue
    const { name, version: found } = JSON.parse(fs.readFileSync(manifest, 'utf8'))
    if (name === 'miniflare') {
      version = found
      break
    }
  }
  return { ...require(resolved), version }
}

/**
 * Runs `use(namespaceOf)` with a Miniflare on `kvDir` binding `ids`, then disposes of it. A
 * failure of Miniflare itself (state written by a newer Miniflare than this one, most often)
 * is one line that says which Miniflare it was.
 */
async function withMiniflare(kvDir, ids, use) {
  const { Miniflare, version } = loadMiniflare(kvDir)
  const bindings = new Map(ids.map((id, i) => [id, `NS${i}`]))
  let mf
  try {
    mf = new Miniflare({
      modules: true,
      script: 'export default { fetch: () => new Response(null, { status: 404 }) }',
      kvNamespaces: Object.fromEntries([...bindings].map(([id, binding]) => [binding, id])),
      kvPersist: kvDir,
    })
    await mf.ready
  } catch (error) {
    await mf?.dispose().catch(() => {})
    const first = String(error?.message ?? error).split('\n')[0]
    throw new StateError(
      `Miniflare ${version} could not open the state in ${kvDir}: ${first}. State that a ` +
        'newer Miniflare wrote needs that Miniflare: run this in the wrangler project that ' +
        'wrote it, whose Miniflare is used first.',
    )
  }
  try {
    return await use((id) => mf.getKVNamespace(bindings.get(id)))
  } finally {
    await mf.dispose()
  }
}

/**
 * The file of namespace `id`'s database in `kvDir`: Miniflare names a Durable Object's
 * database by the object's id, which it derives from the namespace id with two HMAC-SHA-256s
 * keyed by the SHA-256 of the class's unique key.
 */
function databaseOf(kvDir, id) {
  const key = crypto.createHash('sha256').update(KV_OBJECT).digest()
  const name = crypto.createHmac('sha256', key).update(id).digest().subarray(0, 16)
  const check = crypto.createHmac('sha256', key).update(name).digest().subarray(0, 16)
  return path.join(kvDir, KV_OBJECT, `${Buffer.concat([name, check]).toString('hex')}.sqlite`)
}

/**
 * Every live entry of namespace `id` in `kvDir`, in wrangler's bulk format, read from the
 * files; `soon` counts those left out because they expire within a minute.
 */
function readNamespace(kvDir, id, nowMs) {
  const fail = (why) => new StateError(`The state of namespace ${id} cannot be imported: ${why}`)
  const db = databaseOf(kvDir, id)
  // Values with no database naming them (the namespace was emptied): nothing to import.
  if (fs.lstatSync(db, { throwIfNoEntry: false }) === undefined) return { entries: [], soon: 0 }
  const blobs = path.join(kvDir, id, 'blobs')
  const blobsDir = fs.lstatSync(blobs, { throwIfNoEntry: false })
  if (blobsDir !== undefined && !blobsDir.isDirectory()) {
    throw fail(`${blobs} is not a directory (a link is not followed).`)
  }
  let rows
  try {
    rows = native.readMiniflareEntries(db)
  } catch (error) {
    throw fail(`${error.message}.`)
  }
  const entries = []
  let soon = 0
  for (const [key, blob, expirationMs, metadata] of rows) {
    // Gone already, as Miniflare's own reads would say.
    if (expirationMs !== null && expirationMs < nowMs) continue
    const expiration = expirationMs === null ? undefined : Math.floor(expirationMs / 1000)
    if (expiration !== undefined && expiration < nowMs / 1000 + MIN_TTL_SECONDS) {
      soon++
      continue
    }
    // A value file's name is Miniflare's hex id: anything else would name another file.
    if (!/^[0-9a-f]+$/i.test(blob)) {
      throw fail(`key ${JSON.stringify(key)} names a value file that is not Miniflare's.`)
    }
    let value
    try {
      value = native.readRegularFile(path.join(blobs, blob), MAX_VALUE_SIZE)
    } catch (error) {
      throw fail(`the value of key ${JSON.stringify(key)} cannot be read: ${error.message}.`)
    }
    let parsed
    if (metadata !== null) {
      try {
        parsed = JSON.parse(metadata)
      } catch {
        throw fail(`the metadata of key ${JSON.stringify(key)} is not JSON.`)
      }
    }
    entries.push({
      key,
      value: value.toString('base64'),
      base64: true,
      ...(expiration === undefined ? {} : { expiration }),
      ...(metadata === null ? {} : { metadata: parsed }),
    })
  }
  return { entries, soon }
}

/**
 * Imports every namespace of wrangler's local state in `from` into the store that `open`
 * opens (`open(name)` gives a KV of namespace `name`). Each namespace is all or nothing.
 * Resolves `[{ id, name, count, soon }]`: `soon` counts entries left out because they
 * expire within a minute.
 */
async function importWranglerState({ from = DEFAULT_STATE, config, open, now = Date.now() }) {
  const kvDir = kvStateDir(from)
  const ids = stateIds(kvDir)
  const objects = path.join(kvDir, KV_OBJECT)
  if (fs.lstatSync(objects, { throwIfNoEntry: false })?.isDirectory() === false) {
    throw new StateError(`${path.resolve(objects)} is not a directory (a link is not followed).`)
  }
  const { byId } = configuredBindings(path.dirname(path.resolve(from)), config)
  const done = []
  for (const id of ids) {
    const { entries, soon } = readNamespace(kvDir, id, now)
    const name = byId.get(id) ?? id
    const kv = open(name)
    try {
      await kv.bulkPut(entries)
    } catch (error) {
      error.message = `Importing namespace ${name} (id ${id}) failed, so nothing of it was written: ${error.message}`
      throw error
    } finally {
      await kv.close()
    }
    done.push({ id, name, count: entries.length, soon })
  }
  return done
}

/**
 * Writes the namespaces that the wrangler configuration binds, from the store that `open`
 * opens, into wrangler's local state in `to`, each under its id, replacing what the state
 * held for it. Resolves `[{ id, name, count, soon }]`.
 */
async function exportWranglerState({ to = DEFAULT_STATE, config, open, now = Date.now() }) {
  const { file, byBinding } = configuredBindings(path.dirname(path.resolve(to)), config)
  if (byBinding.size === 0) {
    throw new StateError(
      file === null
        ? 'Exporting to wrangler needs its configuration, to know each namespace id: no ' +
            'wrangler.json, wrangler.jsonc or wrangler.toml was found.'
        : `${file} binds no KV namespace with an id, so there is nothing to export.`,
    )
  }
  const kvDir = kvStateDir(to, { create: true })
  fs.mkdirSync(kvDir, { recursive: true })
  const names = [...byBinding.keys()]
  const dumps = []
  for (const name of names) {
    const kv = open(name)
    try {
      dumps.push(await kv.dump())
    } finally {
      await kv.close()
    }
  }
  const ids = names.map((name) => byBinding.get(name))
  return withMiniflare(kvDir, ids, async (namespaceOf) => {
    const done = []
    for (const [i, name] of names.entries()) {
      const namespace = await namespaceOf(ids[i])
      // What the state held that the store does not is deleted: the state ends as the store.
      const keep = new Set(dumps[i].map((entry) => entry.key))
      let cursor
      do {
        const page = await namespace.list({ cursor })
        for (const { name: key } of page.keys) if (!keep.has(key)) await namespace.delete(key)
        cursor = page.list_complete ? undefined : page.cursor
      } while (cursor !== undefined)
      let count = 0
      let soon = 0
      for (const { key, value, base64, expiration, metadata } of dumps[i]) {
        if (expiration !== undefined && expiration < now / 1000 + MIN_TTL_SECONDS) {
          soon++
          await namespace.delete(key)
          continue
        }
        // A plain Uint8Array: Miniflare's proxy does not carry a Buffer.
        const bytes = base64 ? new Uint8Array(Buffer.from(value, 'base64')) : value
        await namespace.put(key, bytes, { expiration, metadata })
        count++
      }
      done.push({ id: ids[i], name, count, soon })
    }
    return done
  })
}

module.exports = { DEFAULT_STATE, importWranglerState, exportWranglerState }
