'use strict'

// The local KV state that `wrangler dev` and Miniflare 3/4 keep (`.wrangler/state/v3/kv`:
// one directory of value blobs per namespace id, and SQLite databases of keys, expirations
// and metadata), moved into and out of a kv-binding store.
//
// The state is read and written through Miniflare itself, which a wrangler project has (it
// comes with wrangler): its storage format is Miniflare's to define, and its databases live
// partly in SQLite's write-ahead log, so reading the files by hand would go stale or miss
// writes. A namespace is named in kv-binding by its binding when the project's wrangler
// configuration maps its id (or preview_id), else by its id.

const fs = require('node:fs')
const path = require('node:path')
const { findConfig, readConfig, kvNamespaces } = require('./wrangler.js')

/** wrangler's state directory, from the project directory. */
const DEFAULT_STATE = path.join('.wrangler', 'state')

// Miniflare's own directory beside the namespaces': its databases, not a namespace.
const OBJECT_DIR_PREFIX = 'miniflare-'

// Production (and Miniflare) refuse an expiration less than 60 s ahead: entries that close to
// expiring are left out, and counted.
const MIN_TTL_SECONDS = 60

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

/** Miniflare, from the project (or wherever `from` is), else from beside kv-binding. */
function loadMiniflare(from) {
  let resolved
  try {
    resolved = require.resolve('miniflare', { paths: [process.cwd(), from, __dirname] })
  } catch {
    throw new StateError(
      "wrangler's local state is read and written through Miniflare, which comes with " +
        'wrangler: run this in the wrangler project, or npm install --save-dev miniflare.',
    )
  }
  return require(resolved)
}

/** Runs `use(namespaceOf)` with a Miniflare on `kvDir` binding `ids`, then disposes of it. */
async function withMiniflare(kvDir, ids, use) {
  const { Miniflare } = loadMiniflare(kvDir)
  const bindings = new Map(ids.map((id, i) => [id, `NS${i}`]))
  const mf = new Miniflare({
    modules: true,
    script: 'export default { fetch: () => new Response(null, { status: 404 }) }',
    kvNamespaces: Object.fromEntries([...bindings].map(([id, binding]) => [binding, id])),
    kvPersist: kvDir,
  })
  try {
    return await use((id) => mf.getKVNamespace(bindings.get(id)))
  } finally {
    await mf.dispose()
  }
}

/** Every live entry of `namespace` (Miniflare's binding), in wrangler's bulk format. */
async function readAll(namespace, nowSeconds) {
  const entries = []
  let soon = 0
  let cursor
  do {
    const page = await namespace.list({ cursor })
    for (const { name, expiration } of page.keys) {
      const { value, metadata } = await namespace.getWithMetadata(name, 'arrayBuffer')
      // Deleted or expired since it was listed.
      if (value === null) continue
      if (expiration !== undefined && expiration < nowSeconds + MIN_TTL_SECONDS) {
        soon++
        continue
      }
      entries.push({
        key: name,
        value: Buffer.from(value).toString('base64'),
        base64: true,
        ...(expiration === undefined ? {} : { expiration }),
        ...(metadata === null ? {} : { metadata }),
      })
    }
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor !== undefined)
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
  const { byId } = configuredBindings(path.dirname(path.resolve(from)), config)
  const read = await withMiniflare(kvDir, ids, async (namespaceOf) => {
    const all = []
    for (const id of ids) all.push({ id, ...(await readAll(await namespaceOf(id), now / 1000)) })
    return all
  })
  const done = []
  for (const { id, entries, soon } of read) {
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
