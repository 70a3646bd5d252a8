// Public types of kv-binding. `KV` has the shape of Cloudflare's `KVNamespace`, so an instance
// can be given wherever worker code expects `env.KV`.

/** How a value is read: its type and, validated but otherwise ignored locally, `cacheTtl`. */
export interface KVNamespaceGetOptions<Type> {
  /** `"text"` (default), `"json"`, `"arrayBuffer"` or `"stream"`. */
  type: Type
  /** Edge cache TTL in seconds; at least 30. Checked, then ignored: this process is the edge. */
  cacheTtl?: number
}

/** Options of `put`. */
export interface KVNamespacePutOptions {
  /** Absolute expiry in seconds since the UNIX epoch; at least 60 s ahead. */
  expiration?: number
  /** Expiry in seconds from now; at least 60. Wins over `expiration` when both are given. */
  expirationTtl?: number
  /** Any JSON-serialisable value, at most 1024 bytes as JSON. `null` means none. */
  metadata?: any | null
}

/** Options of `list`. */
export interface KVNamespaceListOptions {
  /** Page size, 1 to 1000 (default 1000). */
  limit?: number
  /** Only keys starting with these UTF-8 bytes. */
  prefix?: string | null
  /** Where the previous page ended. */
  cursor?: string | null
}

/** One key of a `list` page. */
export interface KVNamespaceListKey<Metadata, Key extends string = string> {
  name: Key
  /** Absolute expiry in seconds since the UNIX epoch, when the key has one. */
  expiration?: number
  /** The key's metadata, when it has some. */
  metadata?: Metadata
}

/** A `list` page. `cursor` is present exactly when more keys follow. */
export type KVNamespaceListResult<Metadata, Key extends string = string> =
  | {
      list_complete: false
      keys: KVNamespaceListKey<Metadata, Key>[]
      cursor: string
      cacheStatus: string | null
    }
  | {
      list_complete: true
      keys: KVNamespaceListKey<Metadata, Key>[]
      cacheStatus: string | null
    }

/** What `getWithMetadata` resolves. `cacheStatus` is always `null` locally. */
export interface KVNamespaceGetWithMetadataResult<Value, Metadata> {
  value: Value | null
  metadata: Metadata | null
  cacheStatus: string | null
}

/** Options of the `KV` constructor. */
export interface KVOptions {
  /**
   * Directory of a sled store, created if missing. Without it the namespace lives in memory,
   * isolated from every other `KV`.
   */
  path?: string
  /**
   * A Redis or Valkey server to keep the namespace on, shared by every process that opens it:
   * `redis://[user:password@]host:port[/db]`. With `cluster: true`, any node of a Redis
   * Cluster. Nothing is sent before the first operation. Not with `path`.
   */
  url?: string
  /** `url` names a node of a Redis Cluster, whose other nodes are found from it. */
  cluster?: boolean
  /**
   * For a `rediss://` URL: PEM text of the authorities to trust instead of the system's
   * (`ca`), and a client certificate with its key for servers that ask for one.
   */
  tls?: { ca?: string; cert?: string; key?: string }
  /** Put in front of every Redis key this namespace writes (default `"kv:"`). */
  keyPrefix?: string
  /**
   * How long a Redis operation may wait for the server before it rejects with
   * `ERR_KV_UNAVAILABLE` (default 5000 ms); with `path`, how long an operation on a store
   * that another process holds waits for that process (default 30000 ms).
   */
  timeoutMs?: number
  /**
   * With `path`: share the store with the other processes that open it (default true). The
   * process holding it serves it on a socket inside the directory and the others reach it
   * through that; when the holder goes away, one of them takes the store over. `false` opens
   * the store for this process alone: opening one that another process holds then fails
   * with `ERR_KV_LOCKED`, and no other process can reach it while this one holds it.
   */
  shared?: boolean
  /**
   * How many partitions a new Redis namespace is split into (default 1 on a single server, 16
   * on a cluster); an existing namespace keeps its own.
   */
  partitions?: number
  /** Namespace within the store at `path` or on the server at `url` (default `"default"`). */
  namespace?: string
  /**
   * Milliseconds since the UNIX epoch, read at every call. Default: `Date.now()` of the realm
   * the class belongs to, so fake timers move KV time.
   */
  clock?: () => number
  /**
   * Memory for caching in bytes (default 64 MiB): half for the record cache that answers
   * reads, half for sled's page cache. Read when the directory is first opened.
   */
  cacheCapacity?: number
  /** Background flush interval of sled in ms (default 200); 0 turns it off. */
  flushEveryMs?: number
  /**
   * Each write resolves only once it is on disk; concurrent writes share one fsync. Default
   * false: sled writes in the background every `flushEveryMs`, and at `flush()` and exit.
   */
  durable?: boolean
  /**
   * Bulk reads leave keys that look like array indices (`"0"`, `"42"`) out of their Map, as
   * production does (`"omit"`, the default); `"keep"` includes them.
   */
  bulkIndexKeys?: 'omit' | 'keep'
  /**
   * Caps the keys a `list` page holds, whatever `limit` asks for, so code that ignores
   * `cursor` fails with a handful of keys instead of 1001. Validation is unchanged.
   */
  listPageCap?: number
  /** Adds what workerd has only under its `experimental` flag: `deleteBulk`. */
  experimental?: boolean
  /**
   * `"strong"` (the default, as Miniflare): every read sees every write at once.
   * `"eventual"` simulates production's caching: this `KV` and each `location(name)` is a
   * Cloudflare location that keeps what it read (a value, or that the key was missing) for the
   * read's `cacheTtl` (60 s by default) by the KV clock, and a `list` page for 60 s. A
   * location sees its own writes at once, other locations' once its cached answer runs out.
   * `clear()` and `restore()` empty every location's cache.
   */
  consistency?: 'strong' | 'eventual'
  /**
   * With `consistency: "eventual"`: the bytes of cached answers all locations may hold
   * together (default 64 MiB). A location that would pass it drops what it cached.
   */
  locationCacheBytes?: number
  /**
   * Enforces production's limits, off by default: `true` for all of them, or pick.
   * `writeRate`: a second `put` to one key within a second (KV clock) rejects with
   * `KV PUT failed: 429 Too Many Requests`. `operationsPerInvocation` (1000): the operations
   * one `invocation()` may start; a bulk read counts as one.
   */
  limits?: boolean | KVLimits
}

/** The limits a `KV` enforces (see `KVOptions.limits`). */
export interface KVLimits {
  /** At most one `put` a second to each key. Default `true`. */
  writeRate?: boolean
  /** Operations one `invocation()` may start; 0 for no budget. Default 1000. */
  operationsPerInvocation?: number
}

/** One entry of `wrangler kv bulk put`'s JSON format, as `bulkPut` takes and `dump` gives. */
export interface KVBulkEntry {
  key: string
  /** The value: text, or base64 when `base64` is true. */
  value: string
  /** Absolute expiry in seconds since the UNIX epoch. */
  expiration?: number
  /** Expiry in seconds from now; wins over `expiration`. */
  expiration_ttl?: number
  metadata?: any
  base64?: boolean
}

/** What `snapshot()` captured; opaque apart from its size. */
export interface KVSnapshot {
  /** How many entries it holds. */
  readonly size: number
}

/**
 * A Workers KV namespace, in memory, stored on disk with sled, or on Redis, that behaves like
 * production's `KVNamespace` binding: same overloads, result shapes, limits and error messages.
 *
 * Errors that production does not have (a closed or locked store, a damaged one, a Redis
 * server out of reach) carry a `code`: `ERR_KV_CLOSED`, `ERR_KV_LOCKED`, `ERR_KV_CORRUPT`,
 * `ERR_KV_STORAGE`, `ERR_KV_UNAVAILABLE`, `ERR_KV_INVALID_ARGUMENT`. A write on Redis that
 * failed after it was sent (no answer in time, the connection lost) also has
 * `outcome: 'unknown'`: it may or may not have been applied, in whole or in part. A failed
 * Redis write without it changed nothing.
 */
export declare class KV<Key extends string = string> {
  /**
   * Opens a namespace: in memory without `path` or `url`, in the sled store at `path`, or on
   * the Redis server at `url` (connected at the first operation).
   */
  constructor(options?: KVOptions)

  /** Reads a value as text; `null` when the key is missing or expired. */
  get(key: Key, options?: Partial<KVNamespaceGetOptions<undefined>>): Promise<string | null>
  /** Reads a value as text. */
  get(key: Key, type: 'text'): Promise<string | null>
  /** Reads a value and parses it as JSON. */
  get<ExpectedValue = unknown>(key: Key, type: 'json'): Promise<ExpectedValue | null>
  /** Reads a value as a fresh ArrayBuffer. */
  get(key: Key, type: 'arrayBuffer'): Promise<ArrayBuffer | null>
  /** Reads a value as a byte ReadableStream. */
  get(key: Key, type: 'stream'): Promise<ReadableStream | null>
  /** Reads a value as text. */
  get(key: Key, options?: KVNamespaceGetOptions<'text'>): Promise<string | null>
  /** Reads a value and parses it as JSON. */
  get<ExpectedValue = unknown>(
    key: Key,
    options?: KVNamespaceGetOptions<'json'>,
  ): Promise<ExpectedValue | null>
  /** Reads a value as a fresh ArrayBuffer. */
  get(key: Key, options?: KVNamespaceGetOptions<'arrayBuffer'>): Promise<ArrayBuffer | null>
  /** Reads a value as a byte ReadableStream. */
  get(key: Key, options?: KVNamespaceGetOptions<'stream'>): Promise<ReadableStream | null>
  /** Reads up to 100 keys as text, into a Map in request order. */
  get(key: Array<Key>, type: 'text'): Promise<Map<string, string | null>>
  /** Reads up to 100 keys as JSON, into a Map in request order. */
  get<ExpectedValue = unknown>(
    key: Array<Key>,
    type: 'json',
  ): Promise<Map<string, ExpectedValue | null>>
  /** Reads up to 100 keys as text, into a Map in request order. */
  get(
    key: Array<Key>,
    options?: Partial<KVNamespaceGetOptions<undefined>>,
  ): Promise<Map<string, string | null>>
  /** Reads up to 100 keys as text, into a Map in request order. */
  get(key: Array<Key>, options?: KVNamespaceGetOptions<'text'>): Promise<Map<string, string | null>>
  /** Reads up to 100 keys as JSON, into a Map in request order. */
  get<ExpectedValue = unknown>(
    key: Array<Key>,
    options?: KVNamespaceGetOptions<'json'>,
  ): Promise<Map<string, ExpectedValue | null>>

  /** Lists keys in UTF-8 byte order, up to `limit` per page, with their expiration and metadata. */
  list<Metadata = unknown>(
    options?: KVNamespaceListOptions,
  ): Promise<KVNamespaceListResult<Metadata, Key>>

  /**
   * Writes a value, replacing its value, metadata and expiration at once. Values up to 25 MiB.
   * Bytes are taken as they are at the call (changing or transferring them afterwards changes
   * nothing stored); a stream is read to its end first, and only operations on the same key
   * wait for it.
   */
  put(
    key: Key,
    value: string | ArrayBuffer | ArrayBufferView | ReadableStream,
    options?: KVNamespacePutOptions,
  ): Promise<void>

  /** Reads a value as text, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options?: Partial<KVNamespaceGetOptions<undefined>>,
  ): Promise<KVNamespaceGetWithMetadataResult<string, Metadata>>
  /** Reads a value as text, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    type: 'text',
  ): Promise<KVNamespaceGetWithMetadataResult<string, Metadata>>
  /** Reads a value as JSON, with its metadata. */
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Key,
    type: 'json',
  ): Promise<KVNamespaceGetWithMetadataResult<ExpectedValue, Metadata>>
  /** Reads a value as an ArrayBuffer, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    type: 'arrayBuffer',
  ): Promise<KVNamespaceGetWithMetadataResult<ArrayBuffer, Metadata>>
  /** Reads a value as a ReadableStream, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    type: 'stream',
  ): Promise<KVNamespaceGetWithMetadataResult<ReadableStream, Metadata>>
  /** Reads a value as text, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<'text'>,
  ): Promise<KVNamespaceGetWithMetadataResult<string, Metadata>>
  /** Reads a value as JSON, with its metadata. */
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<'json'>,
  ): Promise<KVNamespaceGetWithMetadataResult<ExpectedValue, Metadata>>
  /** Reads a value as an ArrayBuffer, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<'arrayBuffer'>,
  ): Promise<KVNamespaceGetWithMetadataResult<ArrayBuffer, Metadata>>
  /** Reads a value as a ReadableStream, with its metadata. */
  getWithMetadata<Metadata = unknown>(
    key: Key,
    options: KVNamespaceGetOptions<'stream'>,
  ): Promise<KVNamespaceGetWithMetadataResult<ReadableStream, Metadata>>
  /** Reads up to 100 keys as text with their metadata; missing keys map to `null`. */
  getWithMetadata<Metadata = unknown>(
    key: Array<Key>,
    type: 'text',
  ): Promise<Map<string, KVNamespaceGetWithMetadataResult<string, Metadata>>>
  /** Reads up to 100 keys as JSON with their metadata; missing keys map to `null`. */
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Array<Key>,
    type: 'json',
  ): Promise<Map<string, KVNamespaceGetWithMetadataResult<ExpectedValue, Metadata>>>
  /** Reads up to 100 keys as text with their metadata; missing keys map to `null`. */
  getWithMetadata<Metadata = unknown>(
    key: Array<Key>,
    options?: Partial<KVNamespaceGetOptions<undefined>>,
  ): Promise<Map<string, KVNamespaceGetWithMetadataResult<string, Metadata>>>
  /** Reads up to 100 keys as text with their metadata; missing keys map to `null`. */
  getWithMetadata<Metadata = unknown>(
    key: Array<Key>,
    options?: KVNamespaceGetOptions<'text'>,
  ): Promise<Map<string, KVNamespaceGetWithMetadataResult<string, Metadata>>>
  /** Reads up to 100 keys as JSON with their metadata; missing keys map to `null`. */
  getWithMetadata<ExpectedValue = unknown, Metadata = unknown>(
    key: Array<Key>,
    options?: KVNamespaceGetOptions<'json'>,
  ): Promise<Map<string, KVNamespaceGetWithMetadataResult<ExpectedValue, Metadata>>>

  /** Deletes a key; deleting a missing key succeeds. */
  delete(key: Key): Promise<void>

  /**
   * Deletes a key, or up to 100 keys, each checked as `delete` checks it before any is deleted.
   * Present only on a `KV` made with `experimental: true`: workerd has it only under its
   * `experimental` compatibility flag, and workers-types only in its experimental typings.
   *
   * @experimental
   */
  deleteBulk?: (keys: Key | Key[]) => Promise<void>

  /**
   * Writes entries in `wrangler kv bulk put`'s format, each checked as `put` checks it: all of
   * them, or none when one is refused (the error names it). An async iterable of entries (a
   * stream of parsed entries) is read a part at a time, so memory holds a part, not all;
   * reads do not wait for it while its entries arrive.
   */
  bulkPut(entries: KVBulkEntry[] | AsyncIterable<KVBulkEntry>): Promise<void>
  /**
   * Every live entry, in the format `bulkPut` takes (binary values as base64). A damaged entry
   * rejects the dump with `ERR_KV_CORRUPT`, unless `onDamaged` is given: then that entry is
   * left out and reported to it, and the rest is dumped.
   */
  dump(options?: {
    onDamaged?: (key: string, error: Error & { code: 'ERR_KV_CORRUPT' }) => void
  }): Promise<KVBulkEntry[]>
  /** Captures everything in the namespace now. */
  snapshot(): Promise<KVSnapshot>
  /** Makes the namespace hold exactly what `snapshot` captured. */
  restore(snapshot: KVSnapshot): Promise<void>
  /** Deletes every key. */
  clear(): Promise<void>

  /**
   * The same namespace seen from another Cloudflare location: a `KV` that shares this one's
   * data and, with `consistency: "eventual"`, has a read cache of its own. The same name gives
   * the same `KV` (for the 1,024 names used last); closing any of them closes them all.
   */
  location(name: string): KV<Key>
  /**
   * This `KV` as one worker invocation uses it, with its own budget of operations when
   * `limits` sets one (past it, operations reject with
   * `Too many API requests by single worker invocation.`). Same data, location and cache.
   */
  invocation(): KV<Key>

  /** Resolves once every write issued before it is durable on disk (at once in memory). */
  flush(): Promise<void>
  /**
   * Flushes and releases the store once the operations issued before it are done; a put still
   * reading its stream is cancelled and rejects with `ERR_KV_CLOSED`. Later calls reject with
   * `ERR_KV_CLOSED`. Idempotent.
   */
  close(): Promise<void>
  /** Same as `close()`, for `await using kv = new KV(...)`. */
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * The `KV` class for another realm (a `vm` context, a test environment's global): every
 * object it returns is made with that realm's own constructors.
 */
export declare function forRealm(realm: typeof globalThis): typeof KV

/**
 * Makes Ctrl-C (SIGINT) and SIGTERM flush every open store before the process ends, so that
 * the writes of the last flush window (`flushEveryMs`) are not lost. The process then ends as
 * it would have: by the signal, or as the program's own handlers for it decide.
 */
export declare function flushOnSignals(): void

/** Options of `wranglerEnv`: which configuration to read, and how to open each namespace. */
export interface WranglerEnvOptions extends Omit<KVOptions, 'namespace'> {
  /**
   * The wrangler.json, wrangler.jsonc or wrangler.toml to read (default: the first found in
   * the working directory or a directory above it).
   */
  config?: string
  /** The environment (`[env.NAME]`) whose `kv_namespaces` to use (default: the top level). */
  env?: string
}

/**
 * A worker's `env` of KV namespaces as its wrangler configuration binds them: for each entry of
 * `kv_namespaces`, `env[binding]` is a `KV` of the namespace named by the binding. A
 * configuration that cannot be used throws an Error with code `ERR_KV_CONFIG` naming the
 * file, the line and the field.
 */
export declare function wranglerEnv<Bindings extends string = string>(
  options?: WranglerEnvOptions,
): Record<Bindings, KV>

/** Options of {@link serve}: a store (`path`, or `url` with its Redis options), or KVs. */
export interface ServeOptions {
  /** The sled store to serve (default `.kv`). */
  path?: string
  /** A Redis or Valkey server to serve, as `new KV({ url })` takes it. */
  url?: string
  cluster?: boolean
  keyPrefix?: string
  /** Namespaces to serve as they are, by name, instead of a store's. */
  namespaces?: Record<string, KV>
  /** Namespace ids (a wrangler configuration's `id`s and `preview_id`s) and the names they reach. */
  ids?: Record<string, string>
  /** Default 8788; 0 picks a free port. */
  port?: number
  /** Default 127.0.0.1. Any other address needs a `token`. */
  host?: string
  /** What clients send as `Authorization: Bearer <token>` (at least 16 characters); a random one by default. */
  token?: string
}

/** A running {@link serve} server. */
export interface KVServer {
  /** Its address, such as `http://127.0.0.1:8788`. */
  url: string
  /** What wrangler's `CLOUDFLARE_API_BASE_URL` and the `cloudflare` SDK's `baseURL` take. */
  apiUrl: string
  /** The data browser, with the token in the URL's fragment (the page keeps it). */
  browserUrl: string
  token: string
  port: number
  /** Stops serving and closes the namespaces it opened. */
  close(): Promise<void>
}

/**
 * Serves Cloudflare's KV REST API (`/client/v4/accounts/:account_id/storage/kv/namespaces/...`)
 * and a data browser at `/` on this machine, from every namespace of a store or from the KVs
 * given.
 */
export declare function serve(options?: ServeOptions): Promise<KVServer>
