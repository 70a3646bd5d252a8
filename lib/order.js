'use strict'

// The order in which one KV's operations apply. Each operation has a scope: the key it reads
// or writes, the keys of a bulk read, the prefix of a list, or everything (snapshot, restore,
// clear, bulkPut, dump, flush, close), and either only reads or changes what it meets. An
// operation waits only for the earlier operations still in progress whose scope meets its
// own, and a read only for the writes among them: so writes to one key apply in call order,
// every read sees the writes issued before it and none issued after, a snapshot sees every
// earlier write, reads of one hot key go out together (on Redis, one round trip for many, not
// one each), and a put whose stream is slow holds up nothing but operations on its own key.
// A put whose stream is still arriving is not a write yet: reads (lists and snapshots too)
// issued meanwhile do not wait for it and see what was there before, as production's would;
// later writes of its key wait their turn. An operation with nothing to wait for runs at
// once, in-line.
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

// How many settles pass between looks at the clock (a power of two, counted with a mask),
// and how long the loop may go unturned.
const SETTLES_PER_LOOK = 16
const MAX_UNTURNED_MS = 1

let settles = 0
let watching = false
let watchStart = 0
const turned = () => {
  watching = false
}

// Whether the event loop has gone unturned for too long: looked at once every
// SETTLES_PER_LOOK settles, so that a settle costs a counter increment.
function overdue() {
  const now = performance.now()
  if (!watching) {
    watching = true
    watchStart = now
    nextTurn(turned)
    return false
  }
  return now - watchStart > MAX_UNTURNED_MS
}

/**
 * A promise of the realm whose constructor is `Promise`, settled with `value` (fulfilled or
 * rejected): at once, or on the next turn of the event loop when it has not turned for too
 * long.
 */
function settle(Promise, value, fulfilled) {
  if ((++settles & (SETTLES_PER_LOOK - 1)) !== 0 || !overdue()) {
    return fulfilled ? Promise.resolve(value) : Promise.reject(value)
  }
  return new Promise((resolve, reject) => nextTurn(fulfilled ? resolve : reject, value))
}

const ignore = () => {}

const covers = (wide, key) =>
  wide === EVERYTHING || (wide.keys ? wide.keys.has(key) : key.startsWith(wide.prefix))

class Order {
  #Promise
  #fail
  // How many operations are in progress (waiting, on the pool or reading a stream).
  #pending = 0
  // For each key, the single-key operations in progress on it: `write`, the settling of the
  // last write (or null), and `reads`, the settlings of the reads issued since it. While that
  // write's value is still `arriving`, reads wait for `before` instead, the write it follows.
  #byKey = new Map()
  // Operations in progress with a wider scope: { scope, reads, settled, arriving, before },
  // the last two as for a key.
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
   * What an operation of `scope` issued now must wait for: `null` when it can run at once,
   * else a promise that fulfills once every earlier operation its scope meets has settled
   * (only the writes among them when it `reads`).
   */
  before(scope, reads = false) {
    if (this.#pending === 0) return null
    const waits = this.#waitsFor(scope, reads)
    if (waits.length === 0) return null
    return waits.length === 1 ? waits[0].then(ignore, ignore) : this.#Promise.allSettled(waits)
  }

  #waitsFor(scope, reads) {
    const waits = []
    // What an operation on `key` in progress holds this one up with.
    const onKey = ({ write, arriving, before, reads: readers }) => {
      const last = reads && arriving ? before : write
      if (last !== null) waits.push(last)
      if (!reads) waits.push(...readers)
    }
    // What a wider operation in progress holds this one up with: while a write's entries
    // are arriving, a read waits only for what that write waits for.
    const onWide = ({ settled, arriving, before }) => {
      const last = reads && arriving ? before : settled
      if (last !== null) waits.push(last)
    }
    if (typeof scope === 'string') {
      const key = wellFormed(scope)
      const inProgress = this.#byKey.get(key)
      if (inProgress !== undefined) onKey(inProgress)
      for (const wide of this.#wide) {
        if ((!reads || !wide.reads) && covers(wide.scope, key)) onWide(wide)
      }
      return waits
    }
    for (const wide of this.#wide) {
      if (!reads || !wide.reads) onWide(wide)
    }
    if (scope === EVERYTHING) {
      for (const inProgress of this.#byKey.values()) onKey(inProgress)
    } else if (scope.keys) {
      for (const key of scope.keys) {
        const inProgress = this.#byKey.get(key)
        if (inProgress !== undefined) onKey(inProgress)
      }
    } else {
      for (const [key, inProgress] of this.#byKey) {
        if (key.startsWith(scope.prefix)) onKey(inProgress)
      }
    }
    return waits
  }

  /**
   * Counts `promise` as in progress under `scope` until it settles, so that later operations
   * wait for it as `before` says; returns it, with its error made by `fail`. `reads` says
   * that it only reads what its scope meets. `arrival`, for a write whose value (or entries)
   * are still arriving, settles once they have: until then, reads do not wait for the write.
   */
  track(scope, promise, reads = false, arrival = null) {
    const key = typeof scope === 'string' ? wellFormed(scope) : null
    const wide =
      key === null
        ? { scope, reads, settled: null, arriving: arrival !== null, before: null }
        : null
    if (wide !== null && arrival !== null) {
      wide.before = this.before(scope)
      const arrived = () => {
        wide.arriving = false
        wide.before = null
      }
      arrival.then(arrived, arrived)
    }
    this.#pending++
    let inProgress = null
    const finished = () => {
      this.#pending--
      if (wide !== null) {
        this.#wide.delete(wide)
        return
      }
      if (reads) inProgress.reads.delete(settled)
      else if (inProgress.write === settled) {
        inProgress.write = null
        inProgress.arriving = false
        inProgress.before = null
      }
      if (
        inProgress.write === null &&
        inProgress.reads.size === 0 &&
        this.#byKey.get(key) === inProgress
      ) {
        this.#byKey.delete(key)
      }
    }
    // One promise is both the caller's and what later operations wait for.
    const settled = promise.then(
      (value) => {
        finished()
        return value
      },
      (error) => {
        finished()
        throw this.#fail(error)
      },
    )
    if (wide !== null) {
      wide.settled = settled
      this.#wide.add(wide)
      return settled
    }
    inProgress = this.#byKey.get(key)
    if (inProgress === undefined) {
      inProgress = { write: null, arriving: false, before: null, reads: new Set() }
      this.#byKey.set(key, inProgress)
    }
    if (reads) {
      inProgress.reads.add(settled)
      return settled
    }
    // This write waits for the reads before it: later operations need wait only for it, and,
    // while its value arrives, later reads for the write before it (or for what that one
    // waited for, if still arriving itself).
    const last = inProgress.arriving ? inProgress.before : inProgress.write
    inProgress.write = settled
    inProgress.reads = new Set()
    inProgress.arriving = arrival !== null
    inProgress.before = arrival !== null ? last : null
    if (arrival !== null) {
      const arrived = () => {
        if (inProgress.write === settled) {
          inProgress.arriving = false
          inProgress.before = null
        }
      }
      arrival.then(arrived, arrived)
    }
    return settled
  }
}

module.exports = { Order, Later, settle, EVERYTHING, prefixScope, keysScope }
