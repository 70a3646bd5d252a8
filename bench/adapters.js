'use strict'

// One adapter per library, each through the API its users would reach for, behind one shape:
//
//   open(dir) -> { put(key, value), get(key), getBytes(key), delete(key),
//                  list(prefix, limit), sync(), close() }
//
// `value` is a string (small values) or a Uint8Array (large ones); `get` resolves a string or
// null, `getBytes` a Uint8Array or null, `list` an array of key names. `sync` makes the writes
// so far durable where the library can, so disk sizes compare like for like.

const path = require('node:path')

// Any KVNamespace (kv-binding's KV, Miniflare's binding) through its own API.
function kvNamespaceAdapter(kv, { sync, close }) {
  return {
    // Putting a seed back before each test, where the namespace can (see the reset phase).
    reset:
      typeof kv.snapshot === 'function'
        ? {
            seed: (entries) => kv.bulkPut(entries).then(() => kv.snapshot()),
            restore: (snapshot) => kv.restore(snapshot),
            reput: (entries) => kv.clear().then(() => kv.bulkPut(entries)),
          }
        : undefined,
    put: (key, value) => kv.put(key, value),
    get: (key) => kv.get(key),
    getBytes: (key) => kv.get(key, 'arrayBuffer'),
    delete: (key) => kv.delete(key),
    list: async (prefix, limit) => (await kv.list({ prefix, limit })).keys.map((k) => k.name),
    sync,
    close,
  }
}

// `root` is the package to load: this checkout, or another one to compare against.
const kvBinding = (backend, durable = false, root = '..', label = '') => ({
  name: `kv-binding${label} (${backend}${durable ? ', durable' : ''})`,
  open(dir) {
    const { KV } = require(root)
    const kv = backend === 'sled' ? new KV({ path: dir, namespace: 'bench', durable }) : new KV()
    return kvNamespaceAdapter(kv, { sync: () => kv.flush(), close: () => kv.close() })
  },
})

// kv-binding on a sled store that another process holds: every operation goes through the
// holder's socket. The holder is started here and stopped at close.
const kvBindingShared = (root = path.resolve(__dirname, '..'), suffix = '') => ({
  name: `kv-binding (sled, held by another process${suffix})`,
  async open(dir) {
    const { spawn } = require('node:child_process')
    const fs = require('node:fs')
    const rootText = JSON.stringify(root)
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `globalThis.store = new (require(${rootText}).KV)({ path: ${JSON.stringify(dir)} })
         setInterval(() => {}, 1000)`,
      ],
      { stdio: 'ignore' },
    )
    while (!fs.existsSync(path.join(dir, 'kv.sock'))) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const { KV } = require(root)
    const kv = new KV({ path: dir, namespace: 'bench' })
    return kvNamespaceAdapter(kv, {
      sync: () => kv.flush(),
      close: async () => {
        await kv.close()
        holder.kill()
      },
    })
  },
})

// A private prefix for each open, unless KV_BENCH_PREFIX shares one (bench/processes.js).
const benchPrefix = (lib) =>
  process.env.KV_BENCH_PREFIX ?? `${lib}-${process.pid}-${Math.random().toString(36).slice(2)}:`

// kv-binding on the Redis server (or cluster) that run.js starts.
const kvBindingRedis = (cluster, root = '..', suffix = '') => ({
  name: `kv-binding (redis${cluster ? ' cluster' : ''}${suffix})`,
  redis: cluster ? 'cluster' : 'single',
  open() {
    const { KV } = require(root)
    const kv = new KV({
      url: cluster ? process.env.KV_BENCH_REDIS_CLUSTER_URL : process.env.KV_BENCH_REDIS_URL,
      cluster,
      keyPrefix: benchPrefix('bench'),
      namespace: 'bench',
    })
    return kvNamespaceAdapter(kv, { sync: async () => {}, close: () => kv.close() })
  },
})

// ioredis doing what kv-binding does on Redis, in kv-binding's key layout: a write is the
// index member, the list record and the value in one MULTI; a read is one GET; a list is a
// ZRANGEBYLEX with an HMGET of the list records. Auto-pipelining on, its fastest setting for
// many calls in flight. On a cluster, keys spread over 16 hash-tagged partitions as
// kv-binding's do (by a simpler hash), and a list reads every partition.
const ioredis = (cluster) => ({
  name: `ioredis (same commands${cluster ? ', cluster' : ''})`,
  redis: cluster ? 'cluster' : 'single',
  open() {
    const Redis = require('ioredis')
    const client = cluster
      ? new Redis.Cluster([process.env.KV_BENCH_REDIS_CLUSTER_URL], { enableAutoPipelining: true })
      : new Redis(process.env.KV_BENCH_REDIS_URL, { enableAutoPipelining: true })
    const prefix = benchPrefix('ioredis')
    const partitions = cluster ? 16 : 1
    const partitionOf = (key) => key.charCodeAt(key.length - 1) % partitions
    const base = (p) => `${prefix}{bench:${p}}:`
    const keysOf = (key) => {
      const b = base(partitionOf(key))
      return [`${b}i`, `${b}m`, `${b}v:${key}`]
    }
    // The list record kv-binding keeps: a flags byte (no expiration, no metadata).
    const record = Buffer.from([0])
    const listPartition = async (p, prefixOf, limit) => {
      const keys = await client.zrangebylex(`${base(p)}i`, `[${prefixOf}`, '+', 'LIMIT', 0, limit)
      if (keys.length > 0) await client.hmgetBuffer(`${base(p)}m`, ...keys)
      return keys.filter((key) => key.startsWith(prefixOf))
    }
    return {
      put: async (key, data) => {
        const [index, meta, value] = keysOf(key)
        await client.multi().zadd(index, 0, key).hset(meta, key, record).set(value, data).exec()
      },
      get: async (key) => client.get(keysOf(key)[2]),
      getBytes: async (key) => client.getBuffer(keysOf(key)[2]),
      delete: async (key) => {
        const [index, meta, value] = keysOf(key)
        await client.multi().zrem(index, key).hdel(meta, key).del(value).exec()
      },
      list: async (prefixOf, limit) => {
        const parts = await Promise.all(
          Array.from({ length: partitions }, (_, p) => listPartition(p, prefixOf, limit)),
        )
        return parts.flat().sort().slice(0, limit)
      },
      sync: async () => {},
      close: async () => {
        await client.quit()
      },
    }
  },
})

// The floor for any Promise API: a Map behind async functions. It keeps keys in insertion
// order, which the benchmark makes sorted, so a prefix list is a scan from the start.
const jsMap = {
  name: 'JS Map (async)',
  open() {
    const map = new Map()
    return {
      put: async (key, value) => {
        map.set(key, value)
      },
      get: async (key) => map.get(key) ?? null,
      getBytes: async (key) => map.get(key) ?? null,
      delete: async (key) => {
        map.delete(key)
      },
      list: async (prefix, limit) => {
        const keys = []
        for (const key of map.keys()) {
          if (key.startsWith(prefix)) keys.push(key)
          if (keys.length === limit) break
        }
        return keys
      },
      sync: async () => {},
      close: async () => map.clear(),
    }
  },
}

// lmdb-js: writes resolve when their (batched) transaction commits; reads are synchronous.
const lmdb = {
  name: 'lmdb-js',
  open(dir) {
    const { open } = require('lmdb')
    const db = open({ path: dir, encoding: 'binary', compression: false })
    return {
      put: (key, value) => db.put(key, typeof value === 'string' ? Buffer.from(value) : value),
      get: async (key) => db.get(key)?.toString() ?? null,
      getBytes: async (key) => db.get(key) ?? null,
      delete: (key) => db.remove(key),
      list: async (prefix, limit) =>
        db.getKeys({ start: prefix, end: `${prefix}\uffff`, limit }).asArray,
      sync: () => db.flushed,
      close: () => db.close(),
    }
  },
}

const classicLevel = {
  name: 'classic-level',
  open(dir) {
    const { ClassicLevel } = require('classic-level')
    const db = new ClassicLevel(dir, { valueEncoding: 'utf8' })
    const view = { valueEncoding: 'view' }
    return {
      put: (key, value) =>
        typeof value === 'string' ? db.put(key, value) : db.put(key, value, view),
      get: async (key) => (await db.get(key)) ?? null,
      getBytes: async (key) => (await db.get(key, view)) ?? null,
      delete: (key) => db.del(key),
      list: (prefix, limit) => db.keys({ gte: prefix, lt: `${prefix}\xff`, limit }).all(),
      sync: async () => {},
      close: () => db.close(),
    }
  },
}

// better-sqlite3 is synchronous; its users wrap it in async functions to offer a Promise API.
const betterSqlite3 = {
  name: 'better-sqlite3',
  open(dir) {
    const Database = require('better-sqlite3')
    const db = new Database(path.join(dir, 'kv.sqlite'))
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID')
    const put = db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)')
    const get = db.prepare('SELECT value FROM kv WHERE key = ?').pluck()
    const del = db.prepare('DELETE FROM kv WHERE key = ?')
    const list = db
      .prepare('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?')
      .pluck()
    return {
      put: async (key, value) => {
        put.run(key, value)
      },
      get: async (key) => get.get(key)?.toString() ?? null,
      getBytes: async (key) => get.get(key) ?? null,
      delete: async (key) => {
        del.run(key)
      },
      list: async (prefix, limit) => list.all(prefix, `${prefix}\uffff`, limit),
      sync: async () => {
        db.pragma('wal_checkpoint(TRUNCATE)')
      },
      close: async () => db.close(),
    }
  },
}

// Miniflare 4's KV, driven from Node as its own tests do: every call crosses into workerd.
const miniflare = {
  name: 'Miniflare 4',
  async open(dir) {
    const { Miniflare } = require('miniflare')
    const mf = new Miniflare({
      modules: true,
      script: 'export default { fetch: () => new Response(null) }',
      kvNamespaces: ['KV'],
      kvPersist: dir,
    })
    const kv = await mf.getKVNamespace('KV')
    return kvNamespaceAdapter(kv, { sync: async () => {}, close: () => mf.dispose() })
  },
}

const ADAPTERS = {
  'kv-binding': kvBinding('sled'),
  'kv-binding-memory': kvBinding('memory'),
  'kv-binding-durable': kvBinding('sled', true),
  // Another checkout of kv-binding, built, named by KV_BENCH_BASELINE (see run.js --baseline):
  // measures a change against the code before it, side by side in one run.
  ...(process.env.KV_BENCH_BASELINE && {
    baseline: kvBinding('sled', false, path.resolve(process.env.KV_BENCH_BASELINE), ', baseline'),
    'baseline-memory': kvBinding(
      'memory',
      false,
      path.resolve(process.env.KV_BENCH_BASELINE),
      ', baseline',
    ),
    'baseline-shared': kvBindingShared(path.resolve(process.env.KV_BENCH_BASELINE), ', baseline'),
    'baseline-redis': kvBindingRedis(
      false,
      path.resolve(process.env.KV_BENCH_BASELINE),
      ', baseline',
    ),
  }),
  map: jsMap,
  lmdb,
  'classic-level': classicLevel,
  'better-sqlite3': betterSqlite3,
  miniflare,
  'kv-binding-shared': kvBindingShared(),
  // The floor the shared store is measured against (see socket-floor.js).
  'socket-floor': require('./socket-floor').socketFloor,
  'kv-binding-redis': kvBindingRedis(false),
  ioredis: ioredis(false),
  'kv-binding-redis-cluster': kvBindingRedis(true),
  'ioredis-cluster': ioredis(true),
}

module.exports = { ADAPTERS }
