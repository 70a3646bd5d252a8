'use strict'

// The KV class's reads: get, getWithMetadata and list, in every overload production has.
// A read runs in-line when the value is short and the store local, else off the JS thread
// (see lib/open.js for which backends are remote).

const { missingArgument } = require('../arguments.js')
const { isArrayIndex } = require('../results.js')
const { Later, prefixScope, keysScope } = require('../order.js')
const { MAX_BULK_KEYS } = require('../native.js')

/**
 * Adds the reads to one realm's KV class.
 *
 * @param {object} kit the realm's tools and the class's state accessor (see lib/kv.js)
 */
function addReadMethods(kit) {
  const { stateOf, PromiseInRealm, TypeErrorInRealm, MapInRealm, check } = kit
  const { NO_GET_OPTIONS, readGetOptions, readListOptions } = kit.args
  const { readerFor, parseJson, parseMetadata, withMetadata, listResult } = kit.results

  // Resolves `build([value, metadata])` (or `build(null)`) read off the JS thread: on Redis,
  // and for a value too long to read in-line. The key and cacheTtl are checked as in-line.
  const readOffThread = (s, name, cacheTtl, asText, now, build) =>
    s.native.readAsync(name, cacheTtl, asText, now).then((pair) => build(check(pair)))

  function getOne(s, name, type, cacheTtl) {
    const { asText, convert } = readerFor(type)
    const now = s.now()
    // A number means "read it off the JS thread": always on Redis, else a long value.
    const found = s.remote
      ? 0
      : asText
        ? s.native.getText(name, cacheTtl, now)
        : s.native.getBytes(name, cacheTtl, now)
    if (found === null) return null
    if (typeof found === 'number') {
      const build = (pair) => (pair === null ? null : convert(pair[0]))
      return new Later(readOffThread(s, name, cacheTtl, asText, now, build))
    }
    return convert(found)
  }

  function getOneWithMetadata(s, name, type, cacheTtl) {
    const { asText, convert } = readerFor(type)
    const now = s.now()
    const build = (read) =>
      read === null
        ? withMetadata(null, null)
        : withMetadata(convert(read[0]), parseMetadata(read[1]), read[2])
    const found = s.remote ? 0 : s.native.getWithMetadata(name, cacheTtl, asText, now)
    if (typeof found === 'number') {
      return new Later(readOffThread(s, name, cacheTtl, asText, now, build))
    }
    return build(found)
  }

  function getBulk(s, names, type, cacheTtl, metadataWanted) {
    const now = s.now()
    const convert = type === 'json' ? parseJson : (text) => text
    const build = (entries) => {
      const map = new MapInRealm()
      for (let i = 0; i < names.length; i++) {
        // The service returns its keys as UTF-8: a lone surrogate comes back as U+FFFD.
        const name = names[i].toWellFormed()
        if ((s.omitIndexKeys && isArrayIndex(name)) || map.has(name)) continue
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
    const entries = s.remote ? null : s.native.getBulk(names, type, cacheTtl, now)
    if (entries === null) {
      const pending = s.native.getBulkAsync(names, type, cacheTtl, now)
      return new Later(pending.then(check).then(build))
    }
    return build(entries)
  }

  // What get and getWithMetadata share once their arguments are there.
  function read(s, key, typeOrOptions, metadataWanted) {
    // The commonest call, get(key), skips reading options.
    const { type, cacheTtl } =
      typeOrOptions === undefined ? NO_GET_OPTIONS : readGetOptions(typeOrOptions)
    const refused = s.overBudget()
    if (refused !== null) return refused
    if (Array.isArray(key)) {
      // However long the array, the core's refusal of more than 100 keys needs no more than
      // 101 of them converted.
      const length = Math.min(key.length, MAX_BULK_KEYS + 1)
      const names = Array.from({ length }, (_, i) => `${key[i]}`)
      return s.scheduleRead(keysScope(names), getBulk, names, type, cacheTtl, metadataWanted)
    }
    const name = `${key}`
    const operation = metadataWanted ? getOneWithMetadata : getOne
    return s.scheduleRead(name, operation, name, type ?? 'text', cacheTtl)
  }

  function list(s, prefix, limit, cursor) {
    if (s.remote) {
      const pending = s.native.listAsync(prefix, limit, cursor, s.now())
      return new Later(pending.then(check).then(listResult))
    }
    return listResult(s.native.list(prefix, limit, cursor, s.now()))
  }

  kit.addMethods({
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
      return read(stateOf(this), key, typeOrOptions, false)
    },

    /**
     * Reads a value as `get` does, with its metadata: `{ value, metadata, cacheStatus }`.
     * Given an array of keys, resolves a Map of `{ value, metadata }` (or `null` when missing).
     */
    getWithMetadata(key, typeOrOptions) {
      if (arguments.length === 0) {
        throw new TypeErrorInRealm(missingArgument('getWithMetadata', 1, 'Array or string'))
      }
      return read(stateOf(this), key, typeOrOptions, true)
    },

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
      const s = stateOf(this)
      const refused = s.overBudget()
      if (refused !== null) return refused
      return s.scheduleRead(prefixScope(prefix), list, prefix, limit, cursor)
    },
  })
}

module.exports = { addReadMethods }
