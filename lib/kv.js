'use strict'

// The public `KV` class: argument overloads and coercion as production's runtime does them,
// the clock, and every returned object built in the caller's realm. Storage, validation and
// expiry live in the Rust core (src/store), reached through the generated loader binding.js.
// The class is assembled here from lib/: open.js opens the namespace the options name,
// arguments.js reads what callers pass, results.js builds what they get back, errors.js
// rebuilds native errors, order.js decides which operation waits for which.
//
// The one file over 400 lines, for a reason: the class keeps its state in private (#) fields,
// which no code outside the class body can reach, so nothing a caller holds can read or break
// a namespace's native handle, its order of operations or its clock. Its methods can move to
// family modules (reads, writes, data tools, views) once that state sits behind one private
// accessor the class hands to them alone; until then the class stays whole.

const vm = require('node:vm')
const native = require('./native.js')
const {
  MESSAGES,
  argumentsFor,
  cancelQuietly,
  drain,
  isObject,
  missingArgument,
  toBody,
} = require('./arguments.js')
const { resultsFor, isArrayIndex } = require('./results.js')
const { Order, Later, settle, EVERYTHING, prefixScope, keysScope } = require('./order.js')
const { errorsFor } = require('./errors.js')
const { isWhole, openNative, readLimits } = require('./open.js')

// A bulkPut of an async iterable stages its entries in parts of at most this many entries,
// or about this many bytes of values.
const PART_ENTRIES = 1024
const PART_BYTES = 4 << 20

// Values longer than this go to the thread pool (the native side reads by the same bound), and
// a stream is only counted, not kept, past the value limit.
const { IN_LINE_MAX, MAX_VALUE_SIZE, MAX_BULK_KEYS, MAX_LIST_KEYS } = native

// How many location() views a namespace keeps by name (about as many as Cloudflare has
// locations): the views of names used longer ago are let go, with their caches.
const LOCATIONS_KEPT = 1024

// Forgets a view of a namespace (see #view) once nothing references it.
const forgetView = new FinalizationRegistry(({ views, ref }) => views.delete(ref))

// The key of the method that deletes a namespace with every trace of it (its Redis layout
// too): for the Jest environment's per-file namespaces, not part of the public API.
const REMOVE = Symbol('kv-binding: remove namespace')

// Native snapshot handles, behind the opaque objects `snapshot()` hands out.
const snapshotHandles = new WeakMap()

// Writes a second to one key that `limits` allows (see lib/open.js).
const WRITE_INTERVAL_MS = 1000

/**
 * Builds the `KV` class for one realm: every value, Map, stream, promise and error it hands
 * out is made from that realm's own constructors.
 *
 * @param {typeof globalThis} realm the global object of the realm that will use the class
 */
function createKV(realm) {
  const {
    Promise: PromiseInRealm,
    TypeError: TypeErrorInRealm,
    Error: ErrorInRealm,
    Map: MapInRealm,
    Object: ObjectInRealm,
    Array: ArrayInRealm,
  } = realm
  // While a view is being made: what KV's constructor makes it from (see KV#view).
  let viewing = null
  const {
    NO_GET_OPTIONS,
    readGetOptions,
    readListOptions,
    readPutOptions,
    bulkColumns,
    readBulkEntry,
    readBulkEntries,
    serialiseMetadata,
  } = argumentsFor(realm)
  const { readerFor, parseJson, parseMetadata, withMetadata, listResult, dumpedEntry } =
    resultsFor(realm)

  const done = () => undefined
  const { fromNative, check, completion } = errorsFor(realm)

  /**
   * A Workers KV namespace (`KVNamespace`), in memory or stored on disk with sled.
   */
  class KV {
    #native
    // Whether every call goes off the JS thread (Redis), rather than in-line when it can.
    #remote = false
    // Whether snapshots share the namespace's entries, so that a restore runs in-line.
    #sharedSnapshots = false
    #clock
    #omitIndexKeys
    // Which operations wait for which (see lib/order.js).
    #order = new Order(PromiseInRealm, fromNative)
    // For each stream a put was given, what says that it has been read (see #run).
    #arrivals = new WeakMap()
    // What stops each stream that a put is reading, for close() (see drain()).
    #readers = new Set()
    // With `durable`, writes resolve only after a flush that started after them. One flush
    // runs at a time; writes that arrive meanwhile share the next one.
    #durable = false
    #flushRunning = null
    #flushQueued = null
    // close()'s promise, once it is called: it flushes everything written before it.
    #closing = null
    #experimental = false
    // The limits enforced (see readLimits), shared by every view of the namespace, or null.
    #limits = null
    // In a view made by invocation(): how many operations it may still start.
    #budget = null
    // Once views exist (location(), invocation()): the namespace as first opened, its
    // location views by name, and the promise of closing them all.
    #family = null

    /**
     * @param {{ path?: string, url?: string, namespace?: string, clock?: () => number,
     *   cacheCapacity?: number, flushEveryMs?: number, bulkIndexKeys?: 'omit' | 'keep',
     *   listPageCap?: number, durable?: boolean, shared?: boolean, cluster?: boolean,
     *   keyPrefix?: string,
     *   timeoutMs?: number, partitions?: number,
     *   tls?: { ca?: string, cert?: string, key?: string } }} [options]
     */
    constructor(options = {}) {
      if (viewing !== null) {
        this.#becomeView(viewing)
        return
      }
      if (!isObject(options)) {
        throw new TypeErrorInRealm('The KV options must be an object.')
      }
      const {
        path,
        url,
        namespace = 'default',
        clock,
        cacheCapacity,
        flushEveryMs,
        bulkIndexKeys = 'omit',
        listPageCap,
        durable = false,
        shared,
        timeoutMs,
        experimental = false,
        consistency = 'strong',
        locationCacheBytes,
        limits,
      } = options
      if (clock !== undefined && typeof clock !== 'function') {
        throw new TypeErrorInRealm('The clock option must be a function returning milliseconds.')
      }
      if (bulkIndexKeys !== 'omit' && bulkIndexKeys !== 'keep') {
        throw new TypeErrorInRealm('The bulkIndexKeys option must be "omit" or "keep".')
      }
      if (listPageCap !== undefined && !isWhole(listPageCap, 1, MAX_LIST_KEYS)) {
        throw new TypeErrorInRealm(
          `The listPageCap option must be a whole number of keys from 1 to ${MAX_LIST_KEYS}.`,
        )
      }
      if (typeof durable !== 'boolean') {
        throw new TypeErrorInRealm('The durable option must be true or false.')
      }
      if (typeof experimental !== 'boolean') {
        throw new TypeErrorInRealm('The experimental option must be true or false.')
      }
      if (consistency !== 'strong' && consistency !== 'eventual') {
        throw new TypeErrorInRealm('The consistency option must be "strong" or "eventual".')
      }
      if (locationCacheBytes !== undefined && !isWhole(locationCacheBytes, 0, 2 ** 48)) {
        throw new TypeErrorInRealm(
          'The locationCacheBytes option must be a whole number of bytes (0 caches nothing).',
        )
      }
      this.#limits = readLimits(limits, TypeErrorInRealm)
      if (experimental) this.#addExperimental()
      this.#durable = durable
      this.#clock = clock || (() => realm.Date.now())
      this.#omitIndexKeys = bulkIndexKeys === 'omit'
      const where = { path, url, namespace, cacheCapacity, flushEveryMs, listPageCap, shared }
      this.#native = this.#open(where, timeoutMs, options)
      if (consistency === 'eventual') this.#native.makeEventuallyConsistent(locationCacheBytes)
    }

    // The native namespace that the options name (see lib/open.js).
    #open(where, timeoutMs, options) {
      const {
        native: opened,
        remote,
        sharedSnapshots,
      } = openNative(where, timeoutMs, options, TypeErrorInRealm, fromNative)
      this.#remote = remote
      this.#sharedSnapshots = sharedSnapshots
      return opened
    }

    // As in workerd, where deleteBulk exists only under its experimental flag.
    #addExperimental() {
      this.#experimental = true
      Object.defineProperty(this, 'deleteBulk', {
        value: (...args) => this.#deleteBulkPublic(...args),
        writable: true,
        configurable: true,
      })
    }

    // Makes this KV a view of `from`'s namespace (see #view): the same data, order of
    // operations, clock and limits, through `nativeView`, with `budget` operations to start.
    #becomeView({ from, nativeView, budget }) {
      this.#native = nativeView
      this.#remote = from.#remote
      this.#sharedSnapshots = from.#sharedSnapshots
      this.#clock = from.#clock
      this.#omitIndexKeys = from.#omitIndexKeys
      this.#order = from.#order
      this.#readers = from.#readers
      this.#durable = from.#durable
      this.#limits = from.#limits
      this.#family = from.#family
      this.#budget = budget
      if (from.#experimental) this.#addExperimental()
    }

    // A KV of the same class as this one (a subclass's methods included), viewing its
    // namespace through `nativeView`.
    #view(nativeView, budget) {
      // `views` holds every view weakly, for close(): one nobody references is let go.
      this.#family ??= { root: this, locations: new Map(), views: new Set(), closing: null }
      viewing = { from: this, nativeView, budget }
      let view
      try {
        view = Reflect.construct(KV, [], this.constructor)
      } finally {
        viewing = null
      }
      const ref = new WeakRef(view)
      this.#family.views.add(ref)
      forgetView.register(view, { views: this.#family.views, ref })
      return view
    }

    /**
     * The same namespace as seen from another Cloudflare location, `name`: the same data and
     * order of operations; with `consistency: 'eventual'`, a read cache of its own, so that
     * what this KV writes reaches it only when its cached answer runs out. The same name
     * gives the same view, for the LOCATIONS_KEPT names used last; a view of a name used
     * longer ago than that is let go (with its cache), as a location's cache would be.
     */
    location(name) {
      if (typeof name !== 'string' || name === '') {
        throw new TypeErrorInRealm('location() takes the name of a location, a non-empty string.')
      }
      const locations = this.#family?.locations
      let view = locations?.get(name)
      if (view !== undefined) {
        // Kept in order of use: the first is the one used longest ago.
        locations.delete(name)
        locations.set(name, view)
        return view
      }
      let nativeView
      try {
        nativeView = this.#native.atNewLocation()
      } catch (error) {
        throw fromNative(error)
      }
      view = this.#view(nativeView, null)
      this.#family.locations.set(name, view)
      if (this.#family.locations.size > LOCATIONS_KEPT) {
        this.#family.locations.delete(this.#family.locations.keys().next().value)
      }
      return view
    }

    /**
     * This KV as one worker invocation (one request) uses it: the same namespace and
     * location, with a budget of operations of its own when `limits` sets one (production's
     * 1000; a bulk read counts as one). An operation past the budget rejects.
     */
    invocation() {
      const budget = this.#limits?.operationsPerInvocation || null
      return this.#view(this.#native, budget)
    }

    // With an invocation budget: counts one operation, or returns the rejection of one
    // that is over budget. Returns null when the operation may go ahead.
    #overBudget() {
      if (this.#budget === null || this.#budget-- > 0) return null
      this.#budget = 0
      return PromiseInRealm.reject(
        new ErrorInRealm('Too many API requests by single worker invocation.'),
      )
    }

    // With the write rate limited: refuses a put to a key written less than a second ago by
    // the KV clock, as production does, once every other check of the put has passed.
    #admitPut(name, length, { expiration, expirationTtl }, metadata) {
      const limits = this.#limits
      if (limits === null || !limits.writeRate) return
      const now = this.#now()
      native.checkPut(name, expiration, expirationTtl, metadata, length, now)
      const key = name.toWellFormed()
      const last = limits.lastWrites.get(key)
      if (last !== undefined && now >= last && now - last < WRITE_INTERVAL_MS) {
        throw new ErrorInRealm('KV PUT failed: 429 Too Many Requests')
      }
      limits.lastWrites.set(key, now)
      if (limits.lastWrites.size >= limits.sweepAt) {
        for (const [written, at] of limits.lastWrites) {
          if (now - at >= WRITE_INTERVAL_MS) limits.lastWrites.delete(written)
        }
        limits.sweepAt = Math.max(1024, limits.lastWrites.size * 2)
      }
    }

    #now() {
      const now = this.#clock()
      if (typeof now !== 'number' || !Number.isFinite(now)) {
        throw new TypeErrorInRealm(MESSAGES.clock)
      }
      return now
    }

    // Runs `operation` (called on this KV with `a` to `d`, so that hot callers need no
    // closure) once the earlier operations that `scope` meets are done (see lib/order.js; an
    // operation that `reads` only waits for writes): at once, in-line, when there are none.
    // Its result may be a `Later`, whose promise is then waited for.
    // `arrival`, for a put of a stream, settles once the stream has been read (see
    // lib/order.js): until then, reads do not wait for the put.
    #run(scope, reads, operation, a, b, c, d, arrival = null) {
      const order = this.#order
      const before = order.idle ? null : order.before(scope, reads)
      if (before !== null) {
        const run = () => {
          const result = operation.call(this, a, b, c, d)
          return result instanceof Later ? result.promise : result
        }
        return order.track(scope, before.then(run), reads, arrival)
      }
      let result
      try {
        result = operation.call(this, a, b, c, d)
      } catch (error) {
        return settle(PromiseInRealm, fromNative(error), false)
      }
      if (result instanceof Later) {
        return order.track(scope, PromiseInRealm.resolve(result.promise), reads, arrival)
      }
      return settle(PromiseInRealm, result, true)
    }

    // Runs an operation that only reads: after the writes before it, beside other reads.
    #scheduleRead(scope, operation, a, b, c, d) {
      return this.#run(scope, true, operation, a, b, c, d)
    }

    // Runs an operation that every operation meeting its scope waits for, and that waits for
    // them all (flush, close).
    #schedule(scope, operation, a, b, c, d, arrival = null) {
      return this.#run(scope, false, operation, a, b, c, d, arrival)
    }

    // Runs a write; with `durable`, its promise resolves once the write is on disk. A flush
    // that reports writes lost (a store's holder killed) fails the writes of the keys it
    // names, and those whose keys it does not know; a write of one key it does not name
    // is on disk all the same.
    #scheduleWrite(scope, operation, a, b, c, d, arrival = null) {
      const written = this.#schedule(scope, operation, a, b, c, d, arrival)
      if (!this.#durable) return written
      const durable = () => this.#flushShared()
      if (typeof scope !== 'string') return written.then(durable)
      const key = scope.toWellFormed()
      const unlessOthers = (error) => {
        if (Array.isArray(error?.lostKeys) && !error.lostKeys.includes(key)) return undefined
        throw error
      }
      return written.then(() => durable().catch(unlessOthers))
    }

    // A flush that starts after every write applied so far, shared by everyone who asks
    // before it starts (group commit).
    #flushShared() {
      if (this.#flushQueued === null) {
        const start = () => {
          this.#flushQueued = null
          // A write still waiting when the namespace closes is made durable by close().
          const flushing = this.#closed() ?? completion(this.#native.flush())
          this.#flushRunning = flushing
          return flushing
        }
        this.#flushQueued = (this.#flushRunning ?? PromiseInRealm.resolve()).then(start, start)
      }
      return this.#flushQueued
    }

    // Resolves `build([value, metadata])` (or `build(null)`) read off the JS thread: on Redis,
    // and for a value too long to read in-line. The key and cacheTtl are checked as in-line.
    #readOffThread(name, cacheTtl, asText, now, build) {
      return this.#native.readAsync(name, cacheTtl, asText, now).then((pair) => build(check(pair)))
    }

    #get(name, type, cacheTtl) {
      const { asText, convert } = readerFor(type)
      const now = this.#now()
      // A number means "read it off the JS thread": always on Redis, else a long value.
      const found = this.#remote
        ? 0
        : asText
          ? this.#native.getText(name, cacheTtl, now)
          : this.#native.getBytes(name, cacheTtl, now)
      if (found === null) return null
      if (typeof found === 'number') {
        const build = (pair) => (pair === null ? null : convert(pair[0]))
        return new Later(this.#readOffThread(name, cacheTtl, asText, now, build))
      }
      return convert(found)
    }

    #getWithMetadata(name, type, cacheTtl) {
      const { asText, convert } = readerFor(type)
      const now = this.#now()
      const build = (read) =>
        read === null
          ? withMetadata(null, null)
          : withMetadata(convert(read[0]), parseMetadata(read[1]), read[2])
      const found = this.#remote ? 0 : this.#native.getWithMetadata(name, cacheTtl, asText, now)
      if (typeof found === 'number') {
        return new Later(this.#readOffThread(name, cacheTtl, asText, now, build))
      }
      return build(found)
    }

    #getBulk(names, type, cacheTtl, metadataWanted) {
      const now = this.#now()
      const convert = type === 'json' ? parseJson : (text) => text
      const build = (entries) => {
        const map = new MapInRealm()
        for (let i = 0; i < names.length; i++) {
          // The service returns its keys as UTF-8: a lone surrogate comes back as U+FFFD.
          const name = names[i].toWellFormed()
          if ((this.#omitIndexKeys && isArrayIndex(name)) || map.has(name)) continue
          const entry = entries[i]
          let result = null
          if (entry !== null) {
            const value = convert(entry[0])
            // Miniflare builds a bulk entry only for a value that is not null: a stored JSON
            // null maps to null, whatever its metadata.
            result =
              metadataWanted && value !== null
                ? withMetadata(value, parseMetadata(entry[1]), false)
                : value
          }
          map.set(name, result)
        }
        return map
      }
      const entries = this.#remote ? null : this.#native.getBulk(names, type, cacheTtl, now)
      if (entries === null) {
        const pending = this.#native.getBulkAsync(names, type, cacheTtl, now)
        return new Later(pending.then(check).then(build))
      }
      return build(entries)
    }

    #write(name, body, options, metadata) {
      if (this.#limits !== null && typeof body.getReader !== 'function') {
        const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
        this.#admitPut(name, length, options, metadata)
      }
      if (typeof body === 'string') {
        // A string's UTF-8 form is at most three bytes per UTF-16 unit.
        if (body.length * 3 <= IN_LINE_MAX && !this.#remote) {
          const { expiration, expirationTtl } = options
          return this.#native.putText(name, body, expiration, expirationTtl, metadata, this.#now())
        }
        return this.#putBytes(name, Buffer.from(body, 'utf8'), options, metadata)
      }
      if (typeof body.getReader === 'function') {
        // The runtime checks the key before it reads the body.
        native.validatePutKey(name)
        // A stream whose turn comes after close() was called is not read at all: close()
        // must settle, whatever the stream does.
        if (this.#closed() !== null) {
          const error = this.#closedMidStream()
          cancelQuietly(body, error)
          throw error
        }
        const arrived = this.#arrivals.get(body)
        this.#arrivals.delete(body)
        const drained = drain(body, MAX_VALUE_SIZE, TypeErrorInRealm, this.#readers)
        drained.finally(arrived).catch(() => {})
        return new Later(
          drained.then(({ bytes, length }) => {
            if (bytes === null) {
              const { expiration, expirationTtl } = options
              native.checkPut(name, expiration, expirationTtl, metadata, length, this.#now())
            }
            this.#admitPut(name, length, options, metadata)
            const result = this.#putBytes(name, bytes, options, metadata)
            return result instanceof Later ? result.promise : result
          }),
        )
      }
      return this.#putBytes(name, body, options, metadata)
    }

    // Writes bytes that nobody else will change.
    #putBytes(name, bytes, { expiration, expirationTtl }, metadata) {
      const now = this.#now()
      if (bytes.byteLength <= IN_LINE_MAX && !this.#remote) {
        return this.#native.putBytes(name, bytes, expiration, expirationTtl, metadata, now)
      }
      const task = this.#native.putAsync(name, bytes, expiration, expirationTtl, metadata, now)
      return new Later(completion(task))
    }

    /**
     * Reads a value: text (the default), parsed JSON, an ArrayBuffer or a ReadableStream.
     * Resolves `null` when the key is missing or expired. Given an array of up to 100 keys,
     * resolves a Map of their text or JSON values in request order.
     */
    get(key, typeOrOptions) {
      // Argument conversion errors are thrown synchronously, as production does for `get`.
      if (arguments.length === 0) {
        throw new TypeErrorInRealm(missingArgument('get', 1, 'string or Array'))
      }
      return this.#read(key, typeOrOptions, false)
    }

    /**
     * Reads a value as `get` does, with its metadata: `{ value, metadata, cacheStatus }`.
     * Given an array of keys, resolves a Map of `{ value, metadata }` (or `null` when missing).
     */
    getWithMetadata(key, typeOrOptions) {
      if (arguments.length === 0) {
        throw new TypeErrorInRealm(missingArgument('getWithMetadata', 1, 'Array or string'))
      }
      return this.#read(key, typeOrOptions, true)
    }

    // What get and getWithMetadata share once their arguments are there.
    #read(key, typeOrOptions, metadataWanted) {
      // The commonest call, get(key), skips reading options.
      const { type, cacheTtl } =
        typeOrOptions === undefined ? NO_GET_OPTIONS : readGetOptions(typeOrOptions)
      const refused = this.#overBudget()
      if (refused !== null) return refused
      if (Array.isArray(key)) {
        // However long the array, the core's refusal of more than 100 keys needs no more than
        // 101 of them converted.
        const length = Math.min(key.length, MAX_BULK_KEYS + 1)
        const names = Array.from({ length }, (_, i) => `${key[i]}`)
        return this.#scheduleRead(keysScope(names), () =>
          this.#getBulk(names, type, cacheTtl, metadataWanted),
        )
      }
      const name = `${key}`
      const read = metadataWanted ? this.#getWithMetadata : this.#get
      return this.#scheduleRead(name, read, name, type ?? 'text', cacheTtl)
    }

    /**
     * Lists keys in UTF-8 byte order: `{ keys, list_complete, cursor?, cacheStatus }`, up to
     * `limit` (default and at most 1000) keys that start with `prefix`, after `cursor`.
     */
    list(options) {
      let query
      try {
        query = readListOptions(options)
      } catch (error) {
        return PromiseInRealm.reject(error)
      }
      const { prefix, limit, cursor } = query
      const refused = this.#overBudget()
      if (refused !== null) return refused
      return this.#scheduleRead(prefixScope(prefix), () => {
        if (this.#remote) {
          const pending = this.#native.listAsync(prefix, limit, cursor, this.#now())
          return new Later(pending.then(check).then(listResult))
        }
        return listResult(this.#native.list(prefix, limit, cursor, this.#now()))
      })
    }

    /**
     * Writes a value (string, ArrayBuffer, ArrayBufferView or ReadableStream), replacing its
     * value, metadata and expiration at once.
     */
    put(key, value, options) {
      let name, body, putOptions, metadata
      try {
        if (arguments.length < 2) {
          throw new TypeErrorInRealm(
            arguments.length === 0
              ? missingArgument('put', 1, 'string')
              : missingArgument('put', 2, 'string or JsObject'),
          )
        }
        name = `${key}`
        putOptions = readPutOptions(options)
        try {
          metadata = serialiseMetadata(putOptions.metadata)
          body = toBody(value, TypeErrorInRealm)
        } catch (error) {
          // The runtime checks the key before metadata and body.
          native.validatePutKey(name)
          throw error
        }
      } catch (error) {
        return PromiseInRealm.reject(fromNative(error))
      }
      const refused = this.#overBudget()
      if (refused !== null) return refused
      // The value is fixed now, as production copies it at the call: bytes that are not
      // written before this call returns are copied, so that a caller who changes or
      // transfers them afterwards changes nothing stored.
      if (typeof body !== 'string' && ArrayBuffer.isView(body)) {
        if (this.#remote || !this.#order.idle || body.byteLength > IN_LINE_MAX) {
          body = body.slice()
        }
      }
      if (typeof body === 'string' || typeof body.getReader !== 'function') {
        return this.#scheduleWrite(name, this.#write, name, body, putOptions, metadata)
      }
      // A stream: reads do not wait for this put until its value has arrived.
      let arrived
      const arrival = new Promise((resolve) => (arrived = resolve))
      this.#arrivals.set(body, arrived)
      return this.#scheduleWrite(name, this.#write, name, body, putOptions, metadata, arrival)
    }

    /** Deletes a key. Deleting a missing key succeeds. */
    delete(key) {
      let name
      try {
        if (arguments.length === 0) {
          throw new TypeErrorInRealm(missingArgument('delete', 1, 'string'))
        }
        name = `${key}`
      } catch (error) {
        return PromiseInRealm.reject(error)
      }
      const refused = this.#overBudget()
      if (refused !== null) return refused
      return this.#scheduleWrite(name, this.#delete, name)
    }

    #delete(name) {
      if (this.#remote) return new Later(completion(this.#native.deleteAsync(name)))
      this.#native.delete(name)
    }

    // The experimental deleteBulk(keys): a key or an array of up to 100, each checked as
    // delete checks it before any is deleted. Present only with the experimental option.
    #deleteBulkPublic(keys) {
      let names
      try {
        if (keys === undefined && arguments.length === 0) {
          throw new TypeErrorInRealm(missingArgument('deleteBulk', 1, 'string or Array'))
        }
        names = Array.isArray(keys) ? keys.map((key) => `${key}`) : [`${keys}`]
      } catch (error) {
        return PromiseInRealm.reject(error)
      }
      const refused = this.#overBudget()
      if (refused !== null) return refused
      return this.#scheduleWrite(keysScope(names), this.#deleteBulk, names)
    }

    #deleteBulk(names) {
      if (this.#remote) return new Later(completion(this.#native.deleteBulkAsync(names)))
      this.#native.deleteBulk(names)
    }

    /**
     * Writes entries in the JSON format of `wrangler kv bulk put`
     * (`[{ key, value, expiration?, expiration_ttl?, metadata?, base64? }]`), each checked as
     * `put` checks it. All are written or, when one is refused, none; the error names it.
     * `entries` may also be an async iterable (a stream of parsed entries): it is read a part
     * at a time, so that memory holds a part, not all (see #stageParts).
     */
    bulkPut(entries) {
      if (isObject(entries) && typeof entries[Symbol.asyncIterator] === 'function') {
        let arrived
        const arrival = new Promise((resolve) => (arrived = resolve))
        return this.#scheduleWrite(EVERYTHING, this.#putParts, entries, arrived, 0, 0, arrival)
      }
      let columns
      try {
        columns = readBulkEntries(entries)
      } catch (error) {
        return PromiseInRealm.reject(error)
      }
      const { keys, values, expirations, ttls, metadata } = columns
      return this.#scheduleWrite(EVERYTHING, () => {
        const now = this.#now()
        const task = this.#native.putManyAsync(keys, values, expirations, ttls, metadata, now)
        return new Later(completion(task))
      })
    }

    #putParts(entries, arrived) {
      return new Later(this.#stageParts(entries, arrived))
    }

    // A bulkPut of an async iterable. Each entry is checked and converted as it arrives, all
    // against the instant the write began, and they go to the core a part at a time: on sled
    // each part is written with what undoes it (reads may see it before the end), on memory
    // and Redis the core holds the parts. Once the last has arrived, all are kept, as one
    // bulkPut would write them. Reads do not wait for it while its entries arrive. A refused
    // entry, or an iterable that throws, ends it with nothing written.
    async #stageParts(entries, arrived) {
      const now = this.#now()
      let staged = null
      let given = 0
      let part = bulkColumns()
      let bytes = 0
      const send = async () => {
        const { keys, values, expirations, ttls, metadata } = part
        staged ??= check(await this.#native.stageAsync())
        await completion(staged.putAsync(keys, values, expirations, ttls, metadata, now))
        given += keys.length
        part = bulkColumns()
        bytes = 0
      }
      try {
        for await (const entry of entries) {
          readBulkEntry(part, entry, given + part.keys.length)
          bytes += part.values[part.values.length - 1].length
          if (part.keys.length === PART_ENTRIES || bytes >= PART_BYTES) await send()
        }
        if (staged !== null && part.keys.length > 0) await send()
      } catch (error) {
        if (staged !== null) await completion(staged.dropAsync()).catch(() => {})
        throw error
      } finally {
        arrived()
      }
      if (staged !== null) return completion(staged.commitAsync())
      // It all came in one part: one bulk write.
      const { keys, values, expirations, ttls, metadata } = part
      return completion(this.#native.putManyAsync(keys, values, expirations, ttls, metadata, now))
    }

    /**
     * Every live entry in the format `bulkPut` takes: values as text, or base64 with
     * `base64: true` when they are not UTF-8; `expiration` absolute. A damaged entry (a value
     * file garbled or gone) rejects the whole dump with `ERR_KV_CORRUPT`, unless `onDamaged`
     * is given: then the entry is left out and `onDamaged(key, error)` is called for it, so
     * that everything else can still be saved.
     */
    dump(options) {
      let onDamaged
      try {
        if (options !== undefined && options !== null) {
          onDamaged = isObject(options) ? options.onDamaged : null
          if (onDamaged !== undefined && typeof onDamaged !== 'function') {
            throw new TypeErrorInRealm('dump() takes { onDamaged?: (key, error) => void }.')
          }
        }
      } catch (error) {
        // Reading the options may throw too (a getter): dump rejects, as every method but
        // get and getWithMetadata does.
        return PromiseInRealm.reject(error)
      }
      return this.#scheduleRead(EVERYTHING, () => {
        const task = this.#native.dumpAsync(this.#now(), onDamaged !== undefined)
        return new Later(
          task.then(check).then(([entries, damaged]) => {
            for (const [key, message] of damaged) {
              onDamaged(key, fromNative({ code: 'ERR_KV_CORRUPT', message }))
            }
            return ArrayInRealm.from(entries, dumpedEntry)
          }),
        )
      })
    }

    /** Captures everything in the namespace now, for `restore()`. */
    snapshot() {
      return this.#scheduleRead(EVERYTHING, () => {
        const task = this.#native.snapshotAsync().then(check)
        return new Later(
          task.then((handle) => {
            const snapshot = ObjectInRealm.freeze(
              Object.assign(new ObjectInRealm(), { size: handle.size }),
            )
            snapshotHandles.set(snapshot, handle)
            return snapshot
          }),
        )
      })
    }

    /** Makes the namespace hold exactly what `snapshot` captured. */
    restore(snapshot) {
      const handle = isObject(snapshot) ? snapshotHandles.get(snapshot) : undefined
      if (handle === undefined) {
        return PromiseInRealm.reject(
          new TypeErrorInRealm('restore() takes a snapshot made by snapshot().'),
        )
      }
      // Where snapshots are shared (memory), a restore takes microseconds: done in-line.
      return this.#scheduleWrite(EVERYTHING, () => {
        this.#forgetWrites()
        return this.#sharedSnapshots
          ? this.#native.restore(handle)
          : new Later(completion(this.#native.restoreAsync(handle)))
      })
    }

    /** Deletes every key in the namespace. */
    clear() {
      return this.#scheduleWrite(EVERYTHING, () => {
        this.#forgetWrites()
        return new Later(completion(this.#native.clearAsync()))
      })
    }

    // A namespace put back as a whole (a test starting afresh) starts with no write that the
    // write rate limit counts, as it starts with every location's cache empty.
    #forgetWrites() {
      this.#limits?.lastWrites.clear()
    }

    // Deletes every entry and every trace of the namespace in its store (see REMOVE).
    [REMOVE]() {
      return this.#schedule(EVERYTHING, () => new Later(completion(this.#native.removeAsync())))
    }

    /** Resolves once every write issued before it is durable on disk. */
    flush() {
      return this.#schedule(EVERYTHING, () => new Later(completion(this.#native.flush())))
    }

    // The error of a put whose stream close() cut short.
    #closedMidStream() {
      return Object.assign(new ErrorInRealm(MESSAGES.closedMidStream), { code: 'ERR_KV_CLOSED' })
    }

    /**
     * Flushes and releases the store, once the operations issued before it are done. A put
     * still reading its stream is cancelled and rejects with `ERR_KV_CLOSED`. Later calls
     * reject with `ERR_KV_CLOSED`; closing twice is fine.
     */
    close() {
      const family = this.#family
      if (family !== null) {
        // One store behind every view: closing any closes them all, in one operation after
        // everything issued before it (one per view would each wait for all the others').
        const views = [...family.views].map((ref) => ref.deref()).filter(Boolean)
        family.closing ??= this.#closeAll([family.root, ...views])
        return family.closing
      }
      return this.#closeOwn()
    }

    // Closes the native handles of `views`, which share this KV's order of operations.
    #closeAll(views) {
      for (const stop of this.#readers) stop(this.#closedMidStream())
      const closing = this.#schedule(EVERYTHING, () => {
        // An invocation() view shares its native handle: each handle is closed once.
        const handles = new Set(views.map((kv) => kv.#native))
        return new Later(PromiseInRealm.all([...handles].map((h) => completion(h.close()))))
      })
      for (const kv of views) kv.#closing = closing
      return closing.then(done)
    }

    // close()'s promise once close() was called on this KV or on any view of its namespace,
    // else null.
    #closed() {
      return this.#closing ?? this.#family?.closing ?? null
    }

    // Closes this KV's own native handle (see close()).
    #closeOwn() {
      if (this.#closing === null) {
        for (const stop of this.#readers) stop(this.#closedMidStream())
        this.#closing = this.#schedule(
          EVERYTHING,
          () => new Later(completion(this.#native.close())),
        )
      }
      return this.#closing
    }

    get [Symbol.toStringTag]() {
      return 'KvNamespace'
    }
  }

  if (Symbol.asyncDispose) {
    Object.defineProperty(KV.prototype, Symbol.asyncDispose, {
      value: KV.prototype.close,
      writable: true,
      configurable: true,
    })
  }

  return KV
}

const classes = new WeakMap()

/**
 * The `KV` class for another realm (a `vm` context, a Jest test's global): every object it
 * returns is made with that realm's constructors.
 *
 * @param {typeof globalThis | object} realm the realm's global object, or a contextified
 *   `vm` sandbox (whose global is then used)
 */
function forRealm(realm) {
  if (!isObject(realm)) throw new TypeError('forRealm() takes a global object or a vm context.')
  if (vm.isContext(realm)) realm = vm.runInContext('globalThis', realm)
  let KV = classes.get(realm)
  if (KV === undefined) {
    KV = createKV(realm)
    classes.set(realm, KV)
  }
  return KV
}

const KV = forRealm(globalThis)

module.exports = { KV, forRealm, REMOVE }
