'use strict'

// Errors from the native side, rebuilt in the caller's realm: the class production throws
// (TypeError or Error), or ours with its ERR_KV_* code, and what says a write may be lost or
// may or may not have happened.

const { isObject } = require('./arguments.js')

/**
 * @param {typeof globalThis} realm
 */
function errorsFor(realm) {
  const { TypeError: TypeErrorInRealm, Error: ErrorInRealm } = realm
  const done = () => undefined

  // Native errors carry in `code` the class to throw; rebuild them here.
  function fromNative(error) {
    const code = error && error.code
    if (code === 'TypeError') return new TypeErrorInRealm(error.message)
    if (code === 'Error') return new ErrorInRealm(error.message)
    if (typeof code === 'string' && code.startsWith('ERR_KV_')) {
      const Class = code === 'ERR_KV_INVALID_ARGUMENT' ? TypeErrorInRealm : ErrorInRealm
      const built = Object.assign(new Class(error.message), { code })
      // Writes to a shared store that may have been lost, by key (see #scheduleWrite).
      if (Array.isArray(error.lostKeys)) built.lostKeys = error.lostKeys
      // A write that may or may not have been applied (sent, then no answer).
      if (error.outcome === 'unknown') built.outcome = 'unknown'
      return built
    }
    return error
  }

  // Pool tasks resolve a failure object rather than rejecting (see src/binding).
  function check(result) {
    if (isObject(result) && typeof result.kvErrorCode === 'string') {
      const { kvErrorCode: code, message, lostKeys, outcome } = result
      throw fromNative({ code, message, lostKeys, outcome })
    }
    return result
  }

  // Settles with `undefined` when a pool task that yields nothing does, or with its error.
  const completion = (task) => task.then(check).then(done)

  return { fromNative, check, completion }
}

module.exports = { errorsFor }
