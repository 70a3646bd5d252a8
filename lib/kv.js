'use strict'

// The public `KV` class: argument overloads and coercion as production's runtime does them,
// the clock, and every returned object built in the caller's realm. Storage, validation and
// expiry live in the Rust core (src/store), reached through the generated loader binding.js.
//
// The class is assembled here, one per realm, from method families in lib/kv/: reads.js,
// writes.js, data.js (dump, snapshot, restore, clear) and views.js (location, invocation,
// flush, close). A KV's whole state is one State (lib/kv/state.js) in its one private field,
// which no code outside the class body can reach; the class hands its accessor to the
// families alone, so nothing a caller holds can read or break a namespace's native handle,
// its order of operations or its clock. Beside them in lib/: open.js opens the namespace the
// options name, arguments.js reads what callers pass, results.js builds what they get back,
// errors.js rebuilds native errors, order.js decides which operation waits for which.

const vm = require('node:vm')
const { MAX_LIST_KEYS } = require('./native.js')
const { argumentsFor, isObject } = require('./arguments.js')
const { resultsFor } = require('./results.js')
const { errorsFor } = require('./errors.js')
const { isWhole, openNative, readLimits } = require('./open.js')
const { stateFor } = require('./kv/state.js')
const { addReadMethods } = require('./kv/reads.js')
const { addWriteMethods } = require('./kv/writes.js')
const { addDataMethods, REMOVE, CAPABILITIES, NAMESPACES, SERVED } = require('./kv/data.js')
const { addViewMethods } = require('./kv/views.js')
const { watchMethods } = require('./kv/feed.js')

/**
 * Builds the `KV` class for one realm: every value, Map, stream, promise and error it hands
 * out is made from that realm's own constructors.
 *
 * @param {typeof globalThis} realm the global object of the realm that will use the class
 */
function createKV(realm) {
  // What the families share: the realm's constructors, its argument readers and result
  // builders, the error mapping, and (set by the class below) the state accessor.
  const kit = {
    PromiseInRealm: realm.Promise,
    TypeErrorInRealm: realm.TypeError,
    ErrorInRealm: realm.Error,
    MapInRealm: realm.Map,
    ObjectInRealm: realm.Object,
    ArrayInRealm: realm.Array,
    args: argumentsFor(realm),
    results: resultsFor(realm),
    ...errorsFor(realm),
    // The class, its state accessor and addMethods, once the class exists.
    KV: null,
    stateOf: null,
    addMethods: null,
    // While a view is being made: the state KV's constructor takes (see views.js).
    viewing: null,
    // Gives a KV the experimental methods (see writes.js).
    addExperimental: null,
  }
  const { TypeErrorInRealm } = kit
  const State = stateFor(kit)

  /**
   * A Workers KV namespace (`KVNamespace`), in memory, stored on disk with sled, shared
   * through a store's holder, or in Redis.
   */
  class KV {
    #state

    /**
     * @param {{ path?: string, url?: string, namespace?: string, clock?: () => number,
     *   cacheCapacity?: number, flushEveryMs?: number, bulkIndexKeys?: 'omit' | 'keep',
     *   listPageCap?: number, durable?: boolean, shared?: boolean, cluster?: boolean,
     *   keyPrefix?: string,
     *   timeoutMs?: number, partitions?: number,
     *   tls?: { ca?: string, cert?: string, key?: string } }} [options]
     */
    constructor(options = {}) {
      if (kit.viewing !== null) {
        this.#state = kit.viewing
        if (kit.viewing.experimental) kit.addExperimental(this)
        return
      }
      this.#state = openState(options)
      if (this.#state.experimental) kit.addExperimental(this)
    }

    static {
      kit.stateOf = (kv) => kv.#state
    }

    get [Symbol.toStringTag]() {
      return 'KvNamespace'
    }
  }

  // The state of a KV opened with `options`, checked as the constructor documents.
  function openState(options) {
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
    const s = new State()
    s.limits = readLimits(limits, TypeErrorInRealm)
    s.experimental = experimental
    s.durable = durable
    s.clock = clock || (() => realm.Date.now())
    s.omitIndexKeys = bulkIndexKeys === 'omit'
    const where = { path, url, namespace, cacheCapacity, flushEveryMs, listPageCap, shared }
    const opened = openNative(where, timeoutMs, options, TypeErrorInRealm, kit.fromNative)
    s.native = opened.native
    s.remote = opened.remote
    s.sharedSnapshots = opened.sharedSnapshots
    s.namespace = namespace
    if (consistency === 'eventual') s.native.makeEventuallyConsistent(locationCacheBytes)
    return s
  }

  kit.KV = KV
  // Adds methods as a class body would: not enumerable, replaceable by a subclass.
  // The methods that make KV operations also publish them, for whoever watches (feed.js).
  const labelOf = (kv) => {
    const s = kit.stateOf(kv)
    return { namespace: s.namespace, location: s.location }
  }
  kit.addMethods = (methods) => {
    watchMethods(methods, labelOf)
    for (const name of Reflect.ownKeys(methods)) {
      const { value } = Object.getOwnPropertyDescriptor(methods, name)
      Object.defineProperty(KV.prototype, name, { value, writable: true, configurable: true })
    }
  }
  addReadMethods(kit)
  addWriteMethods(kit)
  addDataMethods(kit)
  addViewMethods(kit)

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

module.exports = { KV, forRealm, REMOVE, CAPABILITIES, NAMESPACES, SERVED }
