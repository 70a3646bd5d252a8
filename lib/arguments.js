'use strict'

// The arguments of the KV methods, converted as production's runtime converts them: numbers
// to int32, bodies to bytes or streams, option objects field by field, bulkPut's entries
// checked one by one. What is refused is a TypeError (or Error) of the caller's realm.

const { types } = require('node:util')

const INT32_MIN = -2147483648
const INT32_MAX = 2147483647

const MESSAGES = {
  int32Range: 'Value out of range. Must be between -2147483648 and 2147483647 (inclusive).',
  unknownType:
    'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".',
  bodyType:
    'KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.',
  metadataUnserialisable: 'KV PUT failed: 500 Internal Server Error',
  closedMidStream:
    'The namespace was closed before the stream given to put() ended, so nothing was written.',
  clock: 'The clock option must return a finite number of milliseconds since the UNIX epoch.',
}

const missingArgument = (method, position, type) =>
  `Failed to execute '${method}' on 'KvNamespace': parameter ${position} is not of type '${type}'.`

// Whether `text` is the standard base64 form of `bytes` (padding optional). Node's decoder
// skips what it cannot read, so the bytes are encoded again and compared.
function isBase64Of(text, bytes) {
  return bytes.toString('base64').replace(/=+$/, '') === text.replace(/={1,2}$/, '')
}

const isObject = (value) =>
  value !== null && (typeof value === 'object' || typeof value === 'function')

// The runtime's int32 conversion of numeric options: fractions truncated, NaN and ±Infinity
// become 0, anything else out of range is a TypeError.
function toInt32(value, TypeErrorInRealm) {
  const number = +value
  if (!Number.isFinite(number)) return 0
  const int = Math.trunc(number)
  if (int < INT32_MIN || int > INT32_MAX) throw new TypeErrorInRealm(MESSAGES.int32Range)
  return int | 0
}

// A `put` body as the native side takes it: a string, a Uint8Array over the caller's bytes
// (copied before anything reads them later), or a stream to drain.
function toBody(value, TypeErrorInRealm) {
  if (typeof value === 'string') return value
  if (!isObject(value)) return `${value}`
  if (types.isArrayBuffer(value)) return new Uint8Array(value)
  if (ArrayBuffer.isView(value))
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  if (typeof value.getReader === 'function') return value
  throw new TypeErrorInRealm(MESSAGES.bodyType)
}

// Cancels a stream or reader with `reason`, whatever it is: a duck-typed one may have no
// cancel(), or one that throws or rejects, and none of that may stop close() from settling.
function cancelQuietly(target, reason) {
  try {
    Promise.resolve(target.cancel(reason)).catch(() => {})
  } catch {
    // Nothing more can be done for it.
  }
}

// Reads a stream to the end. Past `limit` bytes it only counts, so an oversized stream is not
// held in memory: `bytes` is then null and `length` the full length. While it reads,
// `readers` holds a function that stops it: the read in progress is given up at once (a
// stream may never answer, or not honour cancel()), drain rejects with the reason, and the
// stream is cancelled.
async function drain(stream, limit, TypeErrorInRealm, readers) {
  const reader = stream.getReader()
  let stop
  const stopped = new Promise((_, reject) => (stop = reject))
  stopped.catch(() => {})
  const cancel = (reason) => {
    stop(reason)
    cancelQuietly(reader, reason)
  }
  readers.add(cancel)
  const chunks = []
  let length = 0
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), stopped])
      if (done) break
      const chunk = types.isArrayBuffer(value)
        ? new Uint8Array(value)
        : ArrayBuffer.isView(value)
          ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
          : null
      if (chunk === null) throw new TypeErrorInRealm(MESSAGES.bodyType)
      length += chunk.byteLength
      if (length <= limit) chunks.push(chunk.slice())
      else chunks.length = 0
    }
  } finally {
    readers.delete(cancel)
  }
  return { bytes: length <= limit ? Buffer.concat(chunks, length) : null, length }
}

/**
 * The option and entry readers for one realm, whose errors are that realm's.
 *
 * @param {typeof globalThis} realm
 */
function argumentsFor(realm) {
  const { TypeError: TypeErrorInRealm, Error: ErrorInRealm, JSON: JSONInRealm } = realm

  // Empty parallel arrays of bulkPut entries, as the native side takes them.
  const bulkColumns = () => ({ keys: [], values: [], expirations: [], ttls: [], metadata: [] })

  // Checks entry number `index` of a bulkPut and adds it, converted, to `columns`: its bytes
  // are fixed now, whatever the caller does with the entry afterwards.
  function readBulkEntry(columns, entry, index) {
    const refuse = (problem, Class = TypeErrorInRealm) => {
      const key =
        isObject(entry) && typeof entry.key === 'string'
          ? ` (key ${JSON.stringify(entry.key)})`
          : ''
      return new Class(`Entry ${index}${key} was refused, so nothing was written: ${problem}`)
    }
    if (!isObject(entry)) throw refuse('it is not an object.')
    const { key, value, expiration, expiration_ttl: ttl, metadata, base64 } = entry
    if (typeof key !== 'string') throw refuse('its "key" is not a string.')
    if (typeof value !== 'string') throw refuse('its "value" is not a string.')
    if (base64 !== undefined && typeof base64 !== 'boolean') {
      throw refuse('its "base64" is not a boolean.')
    }
    const bytes = Buffer.from(value, base64 ? 'base64' : 'utf8')
    if (base64 && !isBase64Of(value, bytes)) throw refuse('its "value" is not valid base64.')
    const int = (option) =>
      option === undefined || option === null ? null : toInt32(option, TypeErrorInRealm)
    let converted
    try {
      converted = [int(expiration), int(ttl), serialiseMetadata(metadata) ?? null]
    } catch (error) {
      throw refuse(
        error.message,
        error instanceof TypeErrorInRealm ? TypeErrorInRealm : ErrorInRealm,
      )
    }
    columns.keys.push(key)
    columns.values.push(bytes)
    columns.expirations.push(converted[0])
    columns.ttls.push(converted[1])
    columns.metadata.push(converted[2])
  }

  // Checks and converts bulkPut's array of entries (see readBulkEntry).
  function readBulkEntries(entries) {
    if (!Array.isArray(entries)) {
      throw new TypeErrorInRealm(
        'bulkPut() takes an array of { key, value, expiration?, expiration_ttl?, metadata?, base64? } entries, or an async iterable of them.',
      )
    }
    const columns = bulkColumns()
    entries.forEach((entry, index) => readBulkEntry(columns, entry, index))
    return columns
  }

  // The runtime's conversion of get's and getWithMetadata's second argument.
  const NO_GET_OPTIONS = Object.freeze({ type: undefined, cacheTtl: undefined })

  function readGetOptions(typeOrOptions) {
    let type
    let cacheTtl
    if (isObject(typeOrOptions)) {
      const { type: requested, cacheTtl: ttl } = typeOrOptions
      if (requested !== undefined) type = `${requested}`
      if (ttl !== undefined) cacheTtl = toInt32(ttl, TypeErrorInRealm)
    } else if (typeOrOptions !== undefined && typeOrOptions !== null) {
      type = `${typeOrOptions}`
    }
    return { type, cacheTtl }
  }

  function readListOptions(options) {
    if (options === undefined || options === null) return { prefix: '', limit: 0, cursor: null }
    if (!isObject(options)) throw new TypeErrorInRealm(missingArgument('list', 1, 'ListOptions'))
    const { cursor, limit, prefix } = options
    return {
      cursor: cursor === undefined || cursor === null ? null : `${cursor}`,
      limit: limit === undefined ? 0 : toInt32(limit, TypeErrorInRealm),
      prefix: prefix === undefined || prefix === null ? '' : `${prefix}`,
    }
  }

  function serialiseMetadata(metadata) {
    if (metadata === undefined || metadata === null) return undefined
    const json = JSONInRealm.stringify(metadata)
    if (json === undefined) throw new ErrorInRealm(MESSAGES.metadataUnserialisable)
    return json
  }

  function readPutOptions(options) {
    if (options === undefined || options === null) return {}
    if (!isObject(options)) throw new TypeErrorInRealm(missingArgument('put', 3, 'PutOptions'))
    const { expiration, expirationTtl, metadata } = options
    return {
      expiration: expiration === undefined ? undefined : toInt32(expiration, TypeErrorInRealm),
      expirationTtl:
        expirationTtl === undefined ? undefined : toInt32(expirationTtl, TypeErrorInRealm),
      metadata,
    }
  }

  return {
    NO_GET_OPTIONS,
    readGetOptions,
    readListOptions,
    readPutOptions,
    bulkColumns,
    readBulkEntry,
    readBulkEntries,
    serialiseMetadata,
  }
}

module.exports = {
  MESSAGES,
  argumentsFor,
  cancelQuietly,
  drain,
  isObject,
  missingArgument,
  toBody,
}
