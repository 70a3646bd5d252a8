'use strict'

// What one KV holds, behind its one private field: the native namespace, its clock, its order
// of operations, durability and limits; and how an operation runs in that order. The class in
// lib/kv.js keeps a State where no caller can reach it, and hands it to its method families
// (reads.js, writes.js, data.js, views.js) alone.

const native = require('../native.js')
const { MESSAGES } = require('../arguments.js')
const { Order, Later, settle } = require('../order.js')

// Writes a second to one key that `limits` allows (see lib/open.js).
const WRITE_INTERVAL_MS = 1000

/**
 * The State class for one realm's KV class: the promises and errors it makes are that realm's.
 *
 * @param {object} kit the realm's tools (see createKV in lib/kv.js)
 */
function stateFor(kit) {
  const { PromiseInRealm, TypeErrorInRealm, ErrorInRealm, fromNative, completion } = kit

  class State {
    constructor() {
      // The native namespace (a view's own, for location views).
      this.native = null
      // Whether every call goes off the JS thread (Redis), rather than in-line when it can.
      this.remote = false
      // Whether snapshots share the namespace's entries, so that a restore runs in-line.
      this.sharedSnapshots = false
      this.clock = null
      this.omitIndexKeys = true
      // Which operations wait for which (see lib/order.js).
      this.order = new Order(PromiseInRealm, fromNative)
      // For each stream a put was given, what says that it has been read (see run()).
      this.arrivals = new WeakMap()
      // What stops each stream that a put is reading, for close() (see drain()).
      this.readers = new Set()
      // With `durable`, writes resolve only after a flush that started after them. One flush
      // runs at a time; writes that arrive meanwhile share the next one.
      this.durable = false
      this.flushRunning = null
      this.flushQueued = null
      // close()'s promise, once it is called: it flushes everything written before it.
      this.closing = null
      this.experimental = false
      // The limits enforced (see readLimits), shared by every view of the namespace, or null.
      this.limits = null
      // In a view made by invocation(): how many operations it may still start.
      this.budget = null
      // Once views exist (location(), invocation()): the namespace as first opened, its
      // location views by name, and the promise of closing them all (see views.js).
      this.family = null
      // What names the namespace and the location() view in the operations published
      // (see feed.js).
      this.namespace = null
      this.location = null
    }

    // The state of a view of this namespace: the same data, order of operations, clock and
    // limits, through `nativeView`, with `budget` operations to start.
    viewThrough(nativeView, budget) {
      const view = new State()
      view.native = nativeView
      view.remote = this.remote
      view.sharedSnapshots = this.sharedSnapshots
      view.clock = this.clock
      view.omitIndexKeys = this.omitIndexKeys
      view.order = this.order
      view.readers = this.readers
      view.durable = this.durable
      view.experimental = this.experimental
      view.limits = this.limits
      view.family = this.family
      view.budget = budget
      view.namespace = this.namespace
      view.location = this.location
      return view
    }

    now() {
      const now = this.clock()
      if (typeof now !== 'number' || !Number.isFinite(now)) {
        throw new TypeErrorInRealm(MESSAGES.clock)
      }
      return now
    }

    // With an invocation budget: counts one operation, or returns the rejection of one that
    // is over budget. Returns null when the operation may go ahead.
    overBudget() {
      if (this.budget === null || this.budget-- > 0) return null
      this.budget = 0
      return PromiseInRealm.reject(
        new ErrorInRealm('Too many API requests by single worker invocation.'),
      )
    }

    // With the write rate limited: refuses a put to a key written less than a second ago by
    // the KV clock, as production does, once every other check of the put has passed.
    admitPut(name, length, { expiration, expirationTtl }, metadata) {
      const limits = this.limits
      if (limits === null || !limits.writeRate) return
      const now = this.now()
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

    // A namespace put back as a whole (a test starting afresh) starts with no write that the
    // write rate limit counts, as it starts with every location's cache empty.
    forgetWrites() {
      this.limits?.lastWrites.clear()
    }

    // Runs `operation(this, a, b, c, d)` (arguments rather than a closure, for hot callers)
    // once the earlier operations that `scope` meets are done (see lib/order.js; an operation
    // that `reads` only waits for writes): at once, in-line, when there are none. Its result
    // may be a `Later`, whose promise is then waited for.
    // `arrival`, for a put of a stream, settles once the stream has been read (see
    // lib/order.js): until then, reads do not wait for the put.
    run(scope, reads, operation, a, b, c, d, arrival = null) {
      const order = this.order
      const before = order.idle ? null : order.before(scope, reads)
      if (before !== null) {
        const run = () => {
          const result = operation(this, a, b, c, d)
          return result instanceof Later ? result.promise : result
        }
        return order.track(scope, before.then(run), reads, arrival)
      }
      let result
      try {
        result = operation(this, a, b, c, d)
      } catch (error) {
        return settle(PromiseInRealm, fromNative(error), false)
      }
      if (result instanceof Later) {
        return order.track(scope, PromiseInRealm.resolve(result.promise), reads, arrival)
      }
      return settle(PromiseInRealm, result, true)
    }

    // Runs an operation that only reads: after the writes before it, beside other reads.
    scheduleRead(scope, operation, a, b, c, d) {
      return this.run(scope, true, operation, a, b, c, d)
    }

    // Runs an operation that every operation meeting its scope waits for, and that waits for
    // them all (flush, close).
    schedule(scope, operation, a, b, c, d, arrival = null) {
      return this.run(scope, false, operation, a, b, c, d, arrival)
    }

    // Runs a write; with `durable`, its promise resolves once the write is on disk. A flush
    // that reports writes lost (a store's holder killed) fails the writes of the keys it
    // names, and those whose keys it does not know; a write of one key it does not name
    // is on disk all the same.
    scheduleWrite(scope, operation, a, b, c, d, arrival = null) {
      const written = this.schedule(scope, operation, a, b, c, d, arrival)
      if (!this.durable) return written
      const durable = () => this.flushShared()
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
    flushShared() {
      if (this.flushQueued === null) {
        const start = () => {
          this.flushQueued = null
          // A write still waiting when the namespace closes is made durable by close().
          const flushing = this.closed() ?? completion(this.native.flush())
          this.flushRunning = flushing
          return flushing
        }
        this.flushQueued = (this.flushRunning ?? PromiseInRealm.resolve()).then(start, start)
      }
      return this.flushQueued
    }

    // close()'s promise once close() was called on this KV or on any view of its namespace,
    // else null.
    closed() {
      return this.closing ?? this.family?.closing ?? null
    }

    // The error of a put whose stream close() cut short.
    closedMidStream() {
      return Object.assign(new ErrorInRealm(MESSAGES.closedMidStream), { code: 'ERR_KV_CLOSED' })
    }
  }

  return State
}

module.exports = { stateFor }
