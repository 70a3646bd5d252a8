'use strict'

// The order in which one KV's operations apply. Each operation has a scope: the key it reads
// or writes, the keys of a bulk read, the prefix of a list, or everything (snapshot, restore,
// clear, bulkPut, dump, flush, close). An operation waits only for the earlier operations
// still in progress whose scope meets its own, so operations on one key apply in call order,
// a snapshot sees every earlier write, and a put whose stream is slow holds up nothing but
// operations on its own key. An operation with nothing to wait for runs at once, in-line.
//
// A chain of awaited in-line operations never leaves the microtask queue, so code that polls
// a key in a loop would starve timers and I/O forever. Settling is therefore moved to the
// next turn of the event loop whenever the loop has not turned for about a millisecond.

// The host's own timer and clock: a test realm's fake timers must not stop the event loop
// from turning, nor hide that it has not.
const { setImmediate: nextTurn } = require('node:timers')
const { performance } = require('node:perf_hooks')

/** The scope of an operation that must see, or be seen by, every other. */
const EVERYTHING = Object.freeze({ everything: true })

/** The scope of a list: every key that starts with `prefix`. */
const prefixScope = (prefix) => ({ prefix: wellFormed(prefix) })

/** The scope of a bulk read of `names`. */
const keysScope = (names) => ({ keys: new Set(names.map(wellFormed)) })

// The core stores a lone surrogate as U+FFFD, so "a\uD800" and "a\uFFFD" are one key.
const wellFormed = (name) => name.toWellFormed()

/** A result that is not ready yet: an operation waiting for the pool or a stream. */
class Later {
  constructor(promise) {
    this.promise = promise
  }
}

// How many settles pass between looks at the clock, and how long the loop may go unturned.
const SETTLES_PER_LOOK = 16
const MAX_UNTURNED_MS = 1

let settles = 0
let watching = false
let watchStart = 0
const turned = () => {
  watching = false
}

// Whether an operation settling now should wait for the event loop to turn first.
function overdue() {
  if (++settles % SETTLES_PER_LOOK !== 0) return false
  const now = performance.now()
  if (!watching) {
    watching = true
    watchStart = now
    nextTurn(turned)
    return false
  }
  return now - watchStart > MAX_UNTURNED_MS
}

const covers = (wide, key) =>
  wide === EVERYTHING || (wide.keys ? wide.keys.has(key) : key.startsWith(wide.prefix))

class Order {
  #Promise
  #fail
  // How many operations are in progress (waiting, on the pool or reading a stream).
  #pending = 0
  // For each key, the settling of the last single-key operation in progress on it.
  #byKey = new Map()
  // Operations in progress with a wider scope: { scope, settled }.
  #wide = new Set()

  /**
   * @param {PromiseConstructor} PromiseInRealm the caller's realm's Promise
   * @param {(error: unknown) => unknown} fail turns what an operation throws into its error
   */
  constructor(PromiseInRealm, fail) {
    this.#Promise = PromiseInRealm
    this.#fail = fail
  }

  /** Whether nothing is in progress, so an operation issued now runs at once. */
  get idle() {
    return this.#pending === 0
  }

  /**
   * Runs `operation` (with `this` as `self` and arguments `a` to `d`, so that hot callers
   * need no closure) once the earlier operations its `scope` meets have settled: at once when
   * there are none. Its result may be a `Later`, whose promise is then waited for.
   */
  run(scope, operation, self, a, b, c, d) {
    const waits = this.#pending === 0 ? null : this.#waitsFor(scope)
    if (waits === null || waits.length === 0) {
      let result
      try {
        result = operation.call(self, a, b, c, d)
      } catch (error) {
        return this.#settle(this.#fail(error), false)
      }
      if (result instanceof Later) return this.#track(scope, this.#Promise.resolve(result.promise))
      return this.#settle(result, true)
    }
    const start = waits.length === 1 ? waits[0] : this.#Promise.all(waits)
    return this.#track(
      scope,
      start.then(() => {
        const result = operation.call(self, a, b, c, d)
        return result instanceof Later ? result.promise : result
      }),
    )
  }

  // A promise of the realm that settles with `value` now, or after the event loop has turned
  // when it has not for too long.
  #settle(value, fulfilled) {
    const Promise = this.#Promise
    if (!overdue()) return fulfilled ? Promise.resolve(value) : Promise.reject(value)
    return new Promise((resolve, reject) => nextTurn(fulfilled ? resolve : reject, value))
  }

  #waitsFor(scope) {
    const waits = []
    if (typeof scope === 'string') {
      const key = wellFormed(scope)
      const last = this.#byKey.get(key)
      if (last !== undefined) waits.push(last)
      for (const { scope: wide, settled } of this.#wide) {
        if (covers(wide, key)) waits.push(settled)
      }
      return waits
    }
    for (const { settled } of this.#wide) waits.push(settled)
    if (scope === EVERYTHING) {
      for (const settled of this.#byKey.values()) waits.push(settled)
    } else if (scope.keys) {
      for (const key of scope.keys) {
        const last = this.#byKey.get(key)
        if (last !== undefined) waits.push(last)
      }
    } else {
      for (const [key, settled] of this.#byKey) {
        if (key.startsWith(scope.prefix)) waits.push(settled)
      }
    }
    return waits
  }

  // Counts `promise` as in progress under `scope` until it settles; returns it, its error
  // made by `fail`.
  #track(scope, promise) {
    this.#pending++
    const key = typeof scope === 'string' ? wellFormed(scope) : null
    const wide = key === null ? { scope, settled: null } : null
    const settle = () => {
      this.#pending--
      if (wide !== null) this.#wide.delete(wide)
      else if (this.#byKey.get(key) === settled) this.#byKey.delete(key)
    }
    const settled = promise.then(settle, settle)
    if (wide !== null) {
      wide.settled = settled
      this.#wide.add(wide)
    } else {
      this.#byKey.set(key, settled)
    }
    return promise.catch((error) => {
      throw this.#fail(error)
    })
  }
}

module.exports = { Order, Later, EVERYTHING, prefixScope, keysScope }
