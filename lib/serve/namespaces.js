'use strict'

// The namespaces a server serves: those of one store, each opened when first used, or a
// fixed set of KVs that a process hands over. Each is reached by its name, or by an id that a
// wrangler configuration binds to it (its `id` and `preview_id`).

const { KV, NAMESPACES, REMOVE, SERVED } = require('../kv.js')

// The store's default namespace (the CLI's and the demo's), always served: it is the one that
// lists the store's namespaces when none has been opened yet.
const FIRST = 'KV'

class Namespaces {
  // KV options of the store (without a namespace), or null for a fixed set.
  #store
  // Every KV in use, by namespace name; `#given` are the caller's, left open at the end.
  #kvs = new Map()
  #given = new Set()
  // Namespace names known to exist, and the configured ids that name them.
  #known = new Set()
  #ids
  #idOf = new Map()

  /**
   * @param {{ store?: object, kvs?: Record<string, KV>, ids?: Record<string, string> }} options
   *   `store`: the KV options of a store (path, or url and its options); `kvs`: namespaces by
   *   name, served as they are; `ids`: namespace ids (as a wrangler configuration binds them)
   *   to the namespace names they reach.
   */
  constructor({ store = null, kvs = {}, ids = {} }) {
    this.#store = store
    for (const [name, kv] of Object.entries(kvs)) {
      this.#kvs.set(name, kv)
      this.#given.add(name)
      this.#known.add(name)
    }
    if (store !== null) this.#known.add(FIRST)
    this.#ids = new Map(Object.entries(ids))
    for (const [id, name] of this.#ids) {
      if (!this.#idOf.has(name)) this.#idOf.set(name, id)
      if (store !== null) this.#known.add(name)
    }
  }

  /** The KV of namespace `name`, opened in the store when first used. */
  kv(name) {
    let kv = this.#kvs.get(name)
    if (kv === undefined) {
      if (this.#store === null) throw new Error(`no namespace ${name} is served`)
      kv = new KV({ ...this.#store, namespace: name })
      this.#kvs.set(name, kv)
    }
    return kv
  }

  /** Every namespace served, as production lists them: `{ id, title }`, by title. */
  async list() {
    if (this.#store !== null) {
      const any = this.#kvs.keys().next().value ?? [...this.#known][0] ?? FIRST
      for (const name of (await this.kv(any)[NAMESPACES]()) ?? []) this.#known.add(name)
    }
    const names = [...this.#known].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    return names.map((title) => ({ id: this.#idOf.get(title) ?? title, title }))
  }

  /**
   * What the store's holder answered for other processes after `after` in its log:
   * `{ operations, last }`, or null when the store is not shared through a holder.
   */
  async served(after) {
    if (this.#store === null) return null
    const any = this.#kvs.keys().next().value ?? FIRST
    return this.kv(any)[SERVED](after)
  }

  /** The name of the namespace `id` reaches, or null when none does. */
  async resolve(id) {
    const named = this.#ids.get(id)
    if (named !== undefined) return named
    if (this.#known.has(id)) return id
    if (this.#store === null) return null
    await this.list()
    return this.#known.has(id) ? id : null
  }

  /** Makes namespace `title` (opening it); false when it exists already. */
  async create(title) {
    if ((await this.resolve(title)) !== null) return false
    if (this.#store === null) throw new Error('this server serves a fixed set of namespaces')
    this.kv(title)
    this.#known.add(title)
    return true
  }

  /** Deletes namespace `name` with everything in it. */
  async remove(name) {
    const kv = this.kv(name)
    await kv[REMOVE]()
    this.#known.delete(name)
    if (!this.#given.has(name)) {
      this.#kvs.delete(name)
      await kv.close()
    }
  }

  /** Whether namespaces can be made and removed (a store, not a fixed set). */
  get fromStore() {
    return this.#store !== null
  }

  /** Closes the KVs this server opened. */
  async close() {
    const opened = [...this.#kvs].filter(([name]) => !this.#given.has(name))
    this.#kvs.clear()
    await Promise.all(opened.map(([, kv]) => kv.close()))
  }
}

module.exports = { Namespaces }
