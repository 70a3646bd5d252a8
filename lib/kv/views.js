'use strict'

// The KV class's views of one namespace (location() and invocation()) and its end (flush and
// close): every view shares the namespace's order of operations, and closing any closes all.

const { Later, EVERYTHING } = require('../order.js')

// How many location() views a namespace keeps by name (about as many as Cloudflare has
// locations): the views of names used longer ago are let go, with their caches.
const LOCATIONS_KEPT = 1024

// Forgets a view of a namespace (see view()) once nothing references it.
const forgetView = new FinalizationRegistry(({ views, ref }) => views.delete(ref))

/**
 * Adds views, flush and close to one realm's KV class.
 *
 * @param {object} kit the realm's tools, the class and its state accessor (see lib/kv.js)
 */
function addViewMethods(kit) {
  const { stateOf, KV, PromiseInRealm, TypeErrorInRealm, completion, fromNative } = kit

  const done = () => undefined

  // A KV of the same class as `kv` (a subclass's methods included), viewing its namespace
  // through `nativeView`.
  function view(kv, nativeView, budget) {
    const s = stateOf(kv)
    // `views` holds every view weakly, for close(): one nobody references is let go.
    s.family ??= { root: kv, locations: new Map(), views: new Set(), closing: null }
    // KV's constructor takes the state it is given here rather than reading options.
    kit.viewing = s.viewThrough(nativeView, budget)
    let made
    try {
      made = Reflect.construct(KV, [], kv.constructor)
    } finally {
      kit.viewing = null
    }
    const ref = new WeakRef(made)
    s.family.views.add(ref)
    forgetView.register(made, { views: s.family.views, ref })
    return made
  }

  // Closes the native handles of `views`, which share one order of operations.
  function closeAll(s, views) {
    for (const stop of s.readers) stop(s.closedMidStream())
    const states = views.map(stateOf)
    const closing = s.schedule(EVERYTHING, () => {
      // An invocation() view shares its native handle: each handle is closed once.
      const handles = new Set(states.map((view) => view.native))
      return new Later(PromiseInRealm.all([...handles].map((h) => completion(h.close()))))
    })
    for (const view of states) view.closing = closing
    return closing.then(done)
  }

  const flush = (s) => new Later(completion(s.native.flush()))
  const closeOwn = (s) => new Later(completion(s.native.close()))

  kit.addMethods({
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
      const s = stateOf(this)
      const locations = s.family?.locations
      let made = locations?.get(name)
      if (made !== undefined) {
        // Kept in order of use: the first is the one used longest ago.
        locations.delete(name)
        locations.set(name, made)
        return made
      }
      let nativeView
      try {
        nativeView = s.native.atNewLocation()
      } catch (error) {
        throw fromNative(error)
      }
      made = view(this, nativeView, null)
      stateOf(made).location = name
      s.family.locations.set(name, made)
      if (s.family.locations.size > LOCATIONS_KEPT) {
        s.family.locations.delete(s.family.locations.keys().next().value)
      }
      return made
    },

    /**
     * This KV as one worker invocation (one request) uses it: the same namespace and
     * location, with a budget of operations of its own when `limits` sets one (production's
     * 1000; a bulk read counts as one). An operation past the budget rejects.
     */
    invocation() {
      const s = stateOf(this)
      const budget = s.limits?.operationsPerInvocation || null
      return view(this, s.native, budget)
    },

    /** Resolves once every write issued before it is durable on disk. */
    flush() {
      return stateOf(this).schedule(EVERYTHING, flush)
    },

    /**
     * Flushes and releases the store, once the operations issued before it are done. A put
     * still reading its stream is cancelled and rejects with `ERR_KV_CLOSED`. Later calls
     * reject with `ERR_KV_CLOSED`; closing twice is fine.
     */
    close() {
      const s = stateOf(this)
      const family = s.family
      if (family !== null) {
        // One store behind every view: closing any closes them all, in one operation after
        // everything issued before it (one per view would each wait for all the others').
        const views = [...family.views].map((ref) => ref.deref()).filter(Boolean)
        family.closing ??= closeAll(s, [family.root, ...views])
        return family.closing
      }
      if (s.closing === null) {
        for (const stop of s.readers) stop(s.closedMidStream())
        s.closing = s.schedule(EVERYTHING, closeOwn)
      }
      return s.closing
    },
  })
}

module.exports = { addViewMethods }
