'use strict'

// The KV class's writes: put (of text, bytes or a stream), delete, the experimental
// deleteBulk, and bulkPut of an array or of an async iterable read a part at a time.

const native = require('../native.js')
const { cancelQuietly, drain, isObject, missingArgument, toBody } = require('../arguments.js')
const { Later, EVERYTHING, keysScope } = require('../order.js')

// A bulkPut of an async iterable stages its entries in parts of at most this many entries,
// or about this many bytes of values.
const PART_ENTRIES = 1024
const PART_BYTES = 4 << 20

// Values longer than this go to the thread pool (the native side reads by the same bound), and
// a stream is only counted, not kept, past the value limit.
const { IN_LINE_MAX, MAX_VALUE_SIZE } = native

/**
 * Adds the writes to one realm's KV class.
 *
 * @param {object} kit the realm's tools and the class's state accessor (see lib/kv.js)
 */
function addWriteMethods(kit) {
  const { stateOf, PromiseInRealm, TypeErrorInRealm, check, completion, fromNative } = kit
  const { readPutOptions, serialiseMetadata, bulkColumns, readBulkEntry, readBulkEntries } =
    kit.args

  // Writes bytes that nobody else will change.
  function putBytes(s, name, bytes, { expiration, expirationTtl }, metadata) {
    const now = s.now()
    if (bytes.byteLength <= IN_LINE_MAX && !s.remote) {
      return s.native.putBytes(name, bytes, expiration, expirationTtl, metadata, now)
    }
    const task = s.native.putAsync(name, bytes, expiration, expirationTtl, metadata, now)
    return new Later(completion(task))
  }

  // A put whose stream has been read to its end, or past the value limit (then `bytes` is
  // null and the checks refuse it by its length).
  function putDrained(s, name, { bytes, length }, options, metadata) {
    if (bytes === null) {
      const { expiration, expirationTtl } = options
      native.checkPut(name, expiration, expirationTtl, metadata, length, s.now())
    }
    s.admitPut(name, length, options, metadata)
    const result = putBytes(s, name, bytes, options, metadata)
    return result instanceof Later ? result.promise : result
  }

  function write(s, name, body, options, metadata) {
    if (s.limits !== null && typeof body.getReader !== 'function') {
      const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength
      s.admitPut(name, length, options, metadata)
    }
    if (typeof body === 'string') {
      // A string's UTF-8 form is at most three bytes per UTF-16 unit.
      if (body.length * 3 <= IN_LINE_MAX && !s.remote) {
        const { expiration, expirationTtl } = options
        return s.native.putText(name, body, expiration, expirationTtl, metadata, s.now())
      }
      return putBytes(s, name, Buffer.from(body, 'utf8'), options, metadata)
    }
    if (typeof body.getReader === 'function') {
      // The runtime checks the key before it reads the body.
      native.validatePutKey(name)
      // A stream whose turn comes after close() was called is not read at all: close()
      // must settle, whatever the stream does.
      if (s.closed() !== null) {
        const error = s.closedMidStream()
        cancelQuietly(body, error)
        throw error
      }
      const arrived = s.arrivals.get(body)
      s.arrivals.delete(body)
      const drained = drain(body, MAX_VALUE_SIZE, TypeErrorInRealm, s.readers)
      drained.finally(arrived).catch(() => {})
      return new Later(drained.then((read) => putDrained(s, name, read, options, metadata)))
    }
    return putBytes(s, name, body, options, metadata)
  }

  function remove(s, name) {
    if (s.remote) return new Later(completion(s.native.deleteAsync(name)))
    s.native.delete(name)
  }

  function removeBulk(s, names) {
    if (s.remote) return new Later(completion(s.native.deleteBulkAsync(names)))
    s.native.deleteBulk(names)
  }

  function putMany(s, { keys, values, expirations, ttls, metadata }) {
    const task = s.native.putManyAsync(keys, values, expirations, ttls, metadata, s.now())
    return new Later(completion(task))
  }

  // A bulkPut of an async iterable. Each entry is checked and converted as it arrives, all
  // against the instant the write began, and they go to the core a part at a time: on sled
  // each part is written with what undoes it (reads may see it before the end), on memory
  // and Redis the core holds the parts. Once the last has arrived, all are kept, as one
  // bulkPut would write them. Reads do not wait for it while its entries arrive. A refused
  // entry, or an iterable that throws, ends it with nothing written.
  async function stageParts(s, entries, arrived) {
    const now = s.now()
    let staged = null
    let given = 0
    let part = bulkColumns()
    let bytes = 0
    const send = async () => {
      const { keys, values, expirations, ttls, metadata } = part
      staged ??= check(await s.native.stageAsync())
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
    return completion(s.native.putManyAsync(keys, values, expirations, ttls, metadata, now))
  }

  const putParts = (s, entries, arrived) => new Later(stageParts(s, entries, arrived))

  // The experimental deleteBulk(keys): a key or an array of up to 100, each checked as
  // delete checks it before any is deleted.
  function deleteBulk(s, keys, given) {
    let names
    try {
      if (keys === undefined && given === 0) {
        throw new TypeErrorInRealm(missingArgument('deleteBulk', 1, 'string or Array'))
      }
      names = Array.isArray(keys) ? keys.map((key) => `${key}`) : [`${keys}`]
    } catch (error) {
      return PromiseInRealm.reject(error)
    }
    const refused = s.overBudget()
    if (refused !== null) return refused
    return s.scheduleWrite(keysScope(names), removeBulk, names)
  }

  // Gives a KV deleteBulk, as workerd does only under its experimental flag.
  kit.addExperimental = (kv) => {
    Object.defineProperty(kv, 'deleteBulk', {
      value: (...args) => deleteBulk(stateOf(kv), args[0], args.length),
      writable: true,
      configurable: true,
    })
  }

  kit.addMethods({
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
      const s = stateOf(this)
      const refused = s.overBudget()
      if (refused !== null) return refused
      // The value is fixed now, as production copies it at the call: bytes that are not
      // written before this call returns are copied, so that a caller who changes or
      // transfers them afterwards changes nothing stored.
      if (typeof body !== 'string' && ArrayBuffer.isView(body)) {
        if (s.remote || !s.order.idle || body.byteLength > IN_LINE_MAX) {
          body = body.slice()
        }
      }
      if (typeof body === 'string' || typeof body.getReader !== 'function') {
        return s.scheduleWrite(name, write, name, body, putOptions, metadata)
      }
      // A stream: reads do not wait for this put until its value has arrived.
      let arrived
      const arrival = new Promise((resolve) => (arrived = resolve))
      s.arrivals.set(body, arrived)
      return s.scheduleWrite(name, write, name, body, putOptions, metadata, arrival)
    },

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
      const s = stateOf(this)
      const refused = s.overBudget()
      if (refused !== null) return refused
      return s.scheduleWrite(name, remove, name)
    },

    /**
     * Writes entries in the JSON format of `wrangler kv bulk put`
     * (`[{ key, value, expiration?, expiration_ttl?, metadata?, base64? }]`), each checked as
     * `put` checks it. All are written or, when one is refused, none; the error names it.
     * `entries` may also be an async iterable (a stream of parsed entries): it is read a part
     * at a time, so that memory holds a part, not all (see stageParts).
     */
    bulkPut(entries) {
      const s = stateOf(this)
      if (isObject(entries) && typeof entries[Symbol.asyncIterator] === 'function') {
        let arrived
        const arrival = new Promise((resolve) => (arrived = resolve))
        return s.scheduleWrite(EVERYTHING, putParts, entries, arrived, 0, 0, arrival)
      }
      let columns
      try {
        columns = readBulkEntries(entries)
      } catch (error) {
        return PromiseInRealm.reject(error)
      }
      return s.scheduleWrite(EVERYTHING, putMany, columns)
    },
  })
}

module.exports = { addWriteMethods }
