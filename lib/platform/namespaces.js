'use strict'

// The KV namespaces getPlatformProxy() hands out, shared by every proxy of this process that
// asks for the same namespace with the same options: a dev server that restarts and calls
// getPlatformProxy() again before disposing of the old proxy gets the same open namespace
// (in memory too, where nothing would survive a reopening). The last proxy to let go of a
// namespace closes it, which flushes it.

// What identifies a namespace's options: their JSON, with each function (a clock) by identity.
const functionIds = new WeakMap()
let nextFunctionId = 0
function optionsKey(options) {
  return JSON.stringify(options, (_, value) => {
    if (typeof value !== 'function') return value
    if (!functionIds.has(value)) functionIds.set(value, nextFunctionId++)
    return `function #${functionIds.get(value)}`
  })
}

// Open namespaces by their options' key: `{ kv, users }`.
const open = new Map()

/** `{ binding, kv, key }`: the namespace `options` name, opened or shared. */
function openNamespace(KV, options) {
  const key = optionsKey(options)
  let entry = open.get(key)
  if (entry === undefined) {
    entry = { kv: new KV(options), users: 0 }
    open.set(key, entry)
  }
  entry.users += 1
  return { binding: options.namespace, kv: entry.kv, key }
}

/** Lets go of a namespace from openNamespace; resolves once it is closed, if this was the last. */
async function releaseNamespace({ key }) {
  const entry = open.get(key)
  if (entry === undefined) return
  entry.users -= 1
  if (entry.users > 0) return
  open.delete(key)
  await entry.kv.close()
}

module.exports = { openNamespace, releaseNamespace }
