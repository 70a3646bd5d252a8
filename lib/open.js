'use strict'

// Opening a namespace from the KV options: each backend's options checked with the messages
// users see, then one NativeNamespace.open({ backend, ... }) call; and the limits option.

const native = require('./native.js')
const { isObject } = require('./arguments.js')

// Whether an option is a whole number from `min` to `max`: counts and sizes cross to the
// native side as integers, where a fraction or an out-of-range number would be cut or wrapped.
const isWhole = (value, min, max = Number.MAX_SAFE_INTEGER) =>
  Number.isSafeInteger(value) && value >= min && value <= max

// Production's limits, which `limits: true` enforces: writes a second to one key, operations
// per worker invocation (a bulk read is one).
const OPERATIONS_PER_INVOCATION = 1000

/**
 * The limits a KV enforces, from its `limits` option: `false` (none, the default), `true`
 * (production's), or `{ writeRate?, operationsPerInvocation? }` to pick.
 */
function readLimits(limits, TypeErrorInRealm) {
  if (limits === false || limits === undefined) return null
  const invalid = () =>
    new TypeErrorInRealm(
      'The limits option must be true, false, or { writeRate?: boolean, operationsPerInvocation?: number }.',
    )
  if (limits === true) limits = {}
  if (!isObject(limits)) throw invalid()
  const { writeRate = true, operationsPerInvocation = OPERATIONS_PER_INVOCATION } = limits
  if (typeof writeRate !== 'boolean' || !isWhole(operationsPerInvocation, 0)) throw invalid()
  // Key (well-formed) -> when it was last written, by the KV clock: shared by every view.
  return { writeRate, operationsPerInvocation, lastWrites: new Map(), sweepAt: 1024 }
}

/**
 * `opened` with what the class reads of its backend's capabilities: whether its calls go off
 * the JS thread (`remote`), and whether a snapshot is shared and restored in-line.
 */
function capable(opened) {
  const { inLine, sharedSnapshots } = opened.capabilities
  return { native: opened, remote: !inLine, sharedSnapshots }
}

/**
 * The native namespace that the options name: in memory, in a sled store (or through the
 * process holding it) or on Redis (whose own options `connect` reads from `options`), as
 * `capable` gives it.
 */
function openNative(where, timeoutMs, options, TypeErrorInRealm, fromNative) {
  const { path, url, namespace, cacheCapacity, flushEveryMs, listPageCap, shared } = where
  if (url !== undefined) {
    if (path !== undefined) {
      throw new TypeErrorInRealm('Give either the path option or the url option, not both.')
    }
    return capable(connect(url, namespace, listPageCap, options, TypeErrorInRealm, fromNative))
  }
  if (path === undefined) {
    return capable(native.NativeNamespace.open({ backend: 'memory', namespace: '', listPageCap }))
  }
  if (typeof path !== 'string' || path === '') {
    throw new TypeErrorInRealm('The path option must be a non-empty string.')
  }
  if (typeof namespace !== 'string') {
    throw new TypeErrorInRealm('The namespace option must be a string.')
  }
  if (cacheCapacity !== undefined && !isWhole(cacheCapacity, 0)) {
    throw new TypeErrorInRealm(
      'The cacheCapacity option must be a whole number of bytes, 0 or more.',
    )
  }
  if (flushEveryMs !== undefined && !isWhole(flushEveryMs, 0)) {
    throw new TypeErrorInRealm(
      'The flushEveryMs option must be a whole number of milliseconds, 0 (no background flush) or more.',
    )
  }
  if (shared !== undefined && typeof shared !== 'boolean') {
    throw new TypeErrorInRealm('The shared option must be true or false.')
  }
  if (timeoutMs !== undefined && !isWhole(timeoutMs, 1, 2 ** 31 - 1)) {
    throw new TypeErrorInRealm(
      'The timeoutMs option must be a whole number of milliseconds, 1 or more.',
    )
  }
  let opened
  try {
    opened = native.NativeNamespace.open({
      backend: 'sled',
      namespace,
      listPageCap,
      sled: { path, cacheCapacity, flushEveryMs, shared, timeoutMs },
    })
  } catch (error) {
    throw fromNative(error)
  }
  // Held by another process: every operation goes through it, off the JS thread.
  return capable(opened)
}

// How long a Redis operation may wait for the server, unless the timeoutMs option says.
const DEFAULT_TIMEOUT_MS = 5000

/**
 * Opens namespace `namespace` on Redis from the KV options: `url` and its companions
 * `cluster`, `keyPrefix`, `timeoutMs` and `partitions`.
 */
function connect(url, namespace, listPageCap, options, TypeErrorInRealm, fromNative) {
  const {
    cluster = false,
    keyPrefix = 'kv:',
    timeoutMs = DEFAULT_TIMEOUT_MS,
    partitions,
    tls = {},
  } = options
  if (typeof url !== 'string' || url === '') {
    throw new TypeErrorInRealm(
      'The url option must be a Redis URL such as "redis://localhost:6379".',
    )
  }
  if (typeof namespace !== 'string') {
    throw new TypeErrorInRealm('The namespace option must be a string.')
  }
  if (typeof cluster !== 'boolean') {
    throw new TypeErrorInRealm('The cluster option must be true or false.')
  }
  if (typeof keyPrefix !== 'string') {
    throw new TypeErrorInRealm('The keyPrefix option must be a string, such as "kv:".')
  }
  if (!isWhole(timeoutMs, 1, 2 ** 31 - 1)) {
    throw new TypeErrorInRealm(
      'The timeoutMs option must be a whole number of milliseconds, 1 or more.',
    )
  }
  if (partitions !== undefined && !isWhole(partitions, 1, native.MAX_PARTITIONS)) {
    throw new TypeErrorInRealm(
      `The partitions option must be a whole number from 1 to ${native.MAX_PARTITIONS}.`,
    )
  }
  const { ca, cert, key } = isObject(tls) ? tls : { ca: 0 }
  const isPem = (text, label) =>
    text === undefined || (typeof text === 'string' && label.test(text))
  const certificate = /-----BEGIN CERTIFICATE-----/
  if (
    !isPem(ca, certificate) ||
    !isPem(cert, certificate) ||
    !isPem(key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/) ||
    (cert === undefined) !== (key === undefined)
  ) {
    throw new TypeErrorInRealm(
      'The tls option must be { ca?, cert?, key? } with PEM text, and key with cert.',
    )
  }
  try {
    return native.NativeNamespace.open({
      backend: 'redis',
      namespace,
      listPageCap,
      redis: { url, cluster, keyPrefix, timeoutMs, partitions, tls: { ca, cert, key } },
    })
  } catch (error) {
    throw fromNative(error)
  }
}

module.exports = { isWhole, openNative, readLimits }
