'use strict'

// The KV class's data tools, beyond production's API: dump, snapshot and restore, clear, and
// the removal of a namespace with every trace of it.

const { isObject } = require('../arguments.js')
const { Later, EVERYTHING } = require('../order.js')

// The key of the method that deletes a namespace with every trace of it (its Redis layout
// too): for the Jest environment's per-file namespaces, not part of the public API.
const REMOVE = Symbol('kv-binding: remove namespace')

// The key of the method that says what the namespace's backend guarantees (its capabilities
// in src/store/backend.rs): for the conformance suite, not part of the public API.
const CAPABILITIES = Symbol('kv-binding: backend capabilities')

// The key of the method that lists the namespaces of the store a KV is in (null in memory,
// where a namespace stands alone): for `kv-binding serve`, not part of the public API.
const NAMESPACES = Symbol('kv-binding: namespaces of the store')

// The key of the method that reads what the store's holder answered for other processes
// (null unless the store is shared through a holder): for `kv-binding serve`'s operations
// view, not part of the public API.
const SERVED = Symbol('kv-binding: operations served by the holder')

// Native snapshot handles, behind the opaque objects `snapshot()` hands out (of every realm).
const snapshotHandles = new WeakMap()

/**
 * Adds the data tools to one realm's KV class.
 *
 * @param {object} kit the realm's tools and the class's state accessor (see lib/kv.js)
 */
function addDataMethods(kit) {
  const { stateOf, PromiseInRealm, TypeErrorInRealm, ObjectInRealm, ArrayInRealm } = kit
  const { check, completion, fromNative } = kit
  const { dumpedEntry } = kit.results

  function dump(s, onDamaged) {
    const task = s.native.dumpAsync(s.now(), onDamaged !== undefined)
    return new Later(
      task.then(check).then(([entries, damaged]) => {
        for (const [key, message] of damaged) {
          onDamaged(key, fromNative({ code: 'ERR_KV_CORRUPT', message }))
        }
        return ArrayInRealm.from(entries, dumpedEntry)
      }),
    )
  }

  function snapshot(s) {
    const task = s.native.snapshotAsync().then(check)
    return new Later(
      task.then((handle) => {
        const snapshot = ObjectInRealm.freeze(
          Object.assign(new ObjectInRealm(), { size: handle.size }),
        )
        snapshotHandles.set(snapshot, handle)
        return snapshot
      }),
    )
  }

  // Where snapshots are shared (memory), a restore takes microseconds: done in-line.
  function restore(s, handle) {
    s.forgetWrites()
    return s.sharedSnapshots
      ? s.native.restore(handle)
      : new Later(completion(s.native.restoreAsync(handle)))
  }

  function clear(s) {
    s.forgetWrites()
    return new Later(completion(s.native.clearAsync()))
  }

  const removeAll = (s) => new Later(completion(s.native.removeAsync()))

  kit.addMethods({
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
      return stateOf(this).scheduleRead(EVERYTHING, dump, onDamaged)
    },

    /** Captures everything in the namespace now, for `restore()`. */
    snapshot() {
      return stateOf(this).scheduleRead(EVERYTHING, snapshot)
    },

    /** Makes the namespace hold exactly what `snapshot` captured. */
    restore(snapshot) {
      const handle = isObject(snapshot) ? snapshotHandles.get(snapshot) : undefined
      if (handle === undefined) {
        return PromiseInRealm.reject(
          new TypeErrorInRealm('restore() takes a snapshot made by snapshot().'),
        )
      }
      return stateOf(this).scheduleWrite(EVERYTHING, restore, handle)
    },

    /** Deletes every key in the namespace. */
    clear() {
      return stateOf(this).scheduleWrite(EVERYTHING, clear)
    },

    // Deletes every entry and every trace of the namespace in its store (see REMOVE).
    [REMOVE]() {
      return stateOf(this).schedule(EVERYTHING, removeAll)
    },

    // The names of the store's namespaces, in byte order (see NAMESPACES).
    [NAMESPACES]() {
      const s = stateOf(this)
      try {
        return PromiseInRealm.resolve(s.native.namespacesAsync()).then(check)
      } catch (error) {
        return PromiseInRealm.reject(fromNative(error))
      }
    },

    // What the holder answered for other processes after `after` in its log (see SERVED).
    [SERVED](after) {
      const s = stateOf(this)
      try {
        return PromiseInRealm.resolve(s.native.servedAsync(after)).then(check)
      } catch (error) {
        return PromiseInRealm.reject(fromNative(error))
      }
    },

    // What the backend guarantees (see CAPABILITIES).
    [CAPABILITIES]() {
      return stateOf(this).native.capabilities
    },
  })
}

module.exports = { addDataMethods, REMOVE, CAPABILITIES, NAMESPACES, SERVED }
