'use strict'

// What the KV methods resolve, built with the caller's realm's constructors: values as text,
// JSON, ArrayBuffers or streams, results with metadata, list pages and dumped entries.

const { ReadableStream: NodeReadableStream } = require('node:stream/web')
const { MESSAGES } = require('./arguments.js')

// Keys a bulk read leaves out of its Map, as production does: the Map is copied from a JS
// object, and canonical array indices ("0", "42") are skipped in that copy.
function isArrayIndex(key) {
  const index = Number(key) >>> 0
  return index !== 4294967295 && `${index}` === key
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

// The text of `bytes`, or null when they are not UTF-8 (dump() then gives base64).
function utf8OrNull(bytes) {
  try {
    return strictUtf8.decode(bytes)
  } catch {
    return null
  }
}

/**
 * The result builders for one realm.
 *
 * @param {typeof globalThis} realm
 */
function resultsFor(realm) {
  const {
    TypeError: TypeErrorInRealm,
    ArrayBuffer: ArrayBufferInRealm,
    Uint8Array: Uint8ArrayInRealm,
    JSON: JSONInRealm,
    Object: ObjectInRealm,
    Array: ArrayInRealm,
  } = realm
  const ReadableStreamInRealm = realm.ReadableStream || NodeReadableStream

  // The native side hands over each value in a Buffer of its own. When that Buffer's memory
  // already belongs to the caller's realm it is used as it is; otherwise (a Jest test realm,
  // a vm context) it is copied into one that does.
  function toArrayBuffer(bytes) {
    const { buffer } = bytes
    if (
      buffer instanceof ArrayBufferInRealm &&
      bytes.byteOffset === 0 &&
      bytes.byteLength === buffer.byteLength
    ) {
      return buffer
    }
    const copy = new ArrayBufferInRealm(bytes.byteLength)
    new Uint8ArrayInRealm(copy).set(bytes)
    return copy
  }

  function toStream(bytes) {
    const chunk = new Uint8ArrayInRealm(toArrayBuffer(bytes))
    return new ReadableStreamInRealm({
      type: 'bytes',
      start(controller) {
        if (chunk.byteLength > 0) controller.enqueue(chunk)
        controller.close()
      },
    })
  }

  const unknownType = () => {
    throw new TypeErrorInRealm(MESSAGES.unknownType)
  }
  const parseJson = (text) => JSONInRealm.parse(text)
  const parseMetadata = (json) => (json == null ? null : JSONInRealm.parse(json))

  // How a stored value becomes what `type` asks for. Text and JSON are read as strings,
  // the others as bytes. Production checks the type only once a value is found.
  const READERS = {
    text: { asText: true, convert: (text) => text },
    json: { asText: true, convert: parseJson },
    arrayBuffer: { asText: false, convert: toArrayBuffer },
    stream: { asText: false, convert: toStream },
  }
  const UNKNOWN_READER = { asText: false, convert: unknownType }
  const readerFor = (type) => (Object.hasOwn(READERS, type) ? READERS[type] : UNKNOWN_READER)

  // `cacheStatus` is "HIT" or "MISS" when consistency is simulated, else null or undefined;
  // false for a bulk entry, which has no cacheStatus (single reads always have one).
  function withMetadata(value, metadata, cacheStatus) {
    const result = new ObjectInRealm()
    result.value = value
    result.metadata = metadata
    if (cacheStatus !== false) result.cacheStatus = cacheStatus ?? null
    return result
  }

  function listResult([names, lengths, expirations, metadata, cursor, cacheStatus]) {
    const keys = new ArrayInRealm()
    for (let i = 0, start = 0; i < lengths.length; i++) {
      const key = new ObjectInRealm()
      key.name = names.slice(start, (start += lengths[i]))
      if (expirations != null && expirations[i] !== null) key.expiration = expirations[i]
      if (metadata != null && metadata[i] !== null) key.metadata = JSONInRealm.parse(metadata[i])
      keys.push(key)
    }
    const result = new ObjectInRealm()
    result.keys = keys
    result.list_complete = cursor === null
    if (cursor !== null) result.cursor = cursor
    result.cacheStatus = cacheStatus ?? null
    return result
  }

  // One entry of `wrangler kv bulk put`'s JSON format, as dump() writes it.
  function dumpedEntry([key, bytes, expiration, metadata]) {
    const entry = new ObjectInRealm()
    entry.key = key
    const text = utf8OrNull(bytes)
    entry.value = text ?? bytes.toString('base64')
    if (expiration !== null) entry.expiration = expiration
    if (metadata !== null) entry.metadata = JSONInRealm.parse(metadata)
    if (text === null) entry.base64 = true
    return entry
  }

  return {
    readerFor,
    parseJson,
    parseMetadata,
    withMetadata,
    listResult,
    dumpedEntry,
  }
}

module.exports = { resultsFor, isArrayIndex }
