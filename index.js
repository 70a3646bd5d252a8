'use strict'

// kv-binding's public names. The `KV` class is built in lib/kv.js, one per realm; the rest
// of lib/ is what it is built from.

const { KV, forRealm, REMOVE } = require('./lib/kv.js')
const { flushOnSignals } = require('./lib/signals.js')
const { wranglerEnv } = require('./lib/wrangler-env.js')

/** Serves Cloudflare's KV REST API from a store, or from KVs (see lib/serve). */
function serve(options) {
  return require('./lib/serve/index.js').serve(options)
}

module.exports = { KV, forRealm, flushOnSignals, wranglerEnv, serve, REMOVE }
