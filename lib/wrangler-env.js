'use strict'

const { isObject } = require('./arguments.js')
const { KV } = require('./kv.js')

/**
 * A worker's `env` of KV namespaces as its wrangler configuration binds them: for each entry
 * of `kv_namespaces`, `env[binding]` is a `KV` of the namespace named by the binding, opened
 * with the other options (`path`, `url`, ...).
 *
 * @param {object} [options]
 * @param {string} [options.config] the wrangler.json, wrangler.jsonc or wrangler.toml to read
 *   (default: the first found from the working directory upwards)
 * @param {string} [options.env] the environment (`[env.NAME]`) whose bindings to use
 */
function wranglerEnv(options = {}) {
  if (!isObject(options)) throw new TypeError('wranglerEnv() takes an options object.')
  const { config, env, ...kvOptions } = options
  if (kvOptions.namespace !== undefined) {
    throw new TypeError('wranglerEnv() names each namespace by its binding: leave out namespace.')
  }
  // Loaded on first use: most programs never read a wrangler configuration.
  const { loadKvNamespaces } = require('./wrangler.js')
  const { namespaces } = loadKvNamespaces({ config, env })
  const bindings = {}
  try {
    for (const { binding } of namespaces) {
      bindings[binding] = new KV({ ...kvOptions, namespace: binding })
    }
  } catch (error) {
    for (const kv of Object.values(bindings)) kv.close().catch(() => {})
    throw error
  }
  return bindings
}

module.exports = { wranglerEnv }
