'use strict'

// `serve()`: an HTTP server on this machine that answers Cloudflare's KV REST API from a
// kv-binding store (or from KVs a process hands over), for wrangler's `kv` commands, the
// `cloudflare` SDK and any client of that API.

const http = require('node:http')
const { isObject } = require('../arguments.js')
const { apiFor, resolverFor, fromKv } = require('./api.js')
const { browserFor } = require('./browser.js')
const { guardFor, isLoopback, newToken } = require('./guard.js')
const { Namespaces } = require('./namespaces.js')
const { ApiError, CODES, sendError } = require('./http.js')

// A request whose headers or body take longer than this is cut off.
const REQUEST_TIMEOUT_MS = 120_000

/**
 * Serves the KV REST API and the data browser. Resolves `{ url, apiUrl, browserUrl, token,
 * port, close }` once listening: `apiUrl` is what wrangler's CLOUDFLARE_API_BASE_URL and the
 * SDK's baseURL take, `token` what `Authorization: Bearer` must carry, `browserUrl` the page
 * with the token in its fragment (never sent over the network; the page keeps it).
 *
 * @param {{ path?: string, url?: string, cluster?: boolean, keyPrefix?: string,
 *   namespaces?: Record<string, object>, ids?: Record<string, string>, port?: number,
 *   host?: string, token?: string }} [options]
 */
async function serve(options = {}) {
  if (!isObject(options)) throw new TypeError('serve() takes an options object.')
  const { path, url, cluster, keyPrefix, namespaces: kvs, ids = {} } = options
  const { port = 8788, host = '127.0.0.1', token: given } = options
  if (kvs !== undefined && (path !== undefined || url !== undefined)) {
    throw new TypeError('serve() takes namespaces, or a store (path or url), not both.')
  }
  if (kvs !== undefined && !isObject(kvs)) {
    throw new TypeError('The namespaces option must be an object of KVs by name.')
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError('The port option must be a whole number from 0 to 65535.')
  }
  if (given !== undefined && (typeof given !== 'string' || given.length < 16)) {
    throw new TypeError('The token option must be a string of at least 16 characters.')
  }
  if (!isLoopback(host) && given === undefined) {
    throw new TypeError(
      `Serving on ${host} lets other machines reach the data: give a token of your own to do so.`,
    )
  }
  const token = given ?? newToken()
  const store = kvs === undefined ? storeOf({ path, url, cluster, keyPrefix }) : null
  const namespaces = new Namespaces({ store, kvs, ids })
  const namespaceOf = resolverFor(namespaces)
  const answer = apiFor(namespaces, namespaceOf)
  const browser = browserFor(namespaceOf, namespaces)
  // Made once the port is known; until then (a request in the moment after listening
  // began) nothing is answered but this.
  let guard = () => new ApiError(503, CODES.INTERNAL, 'The server is starting.')

  const server = http.createServer(async (req, res) => {
    try {
      const at = req.url.indexOf('?')
      const path = at === -1 ? req.url : req.url.slice(0, at)
      const query = new URLSearchParams(at === -1 ? '' : req.url.slice(at + 1))
      const page = browser.isPage(path)
      const refused = guard(req, !page)
      if (refused !== null) throw refused
      if (page) return browser.answerPage(req, res, path)
      if (path.startsWith('/_kv/')) {
        return await browser.answer(req, res, path, query).catch((error) => {
          throw fromKv(error)
        })
      }
      await browser.unlessRefresh(req, () => answer(req, res, path, query))
    } catch (error) {
      const failure =
        error instanceof ApiError
          ? error
          : new ApiError(500, CODES.INTERNAL, String(error?.message ?? error))
      if (res.headersSent) return res.destroy()
      // What is left of a refused body is not read: the connection ends with the answer.
      if (!req.complete) {
        res.setHeader('connection', 'close')
        res.once('finish', () => req.destroy())
      }
      sendError(res, failure)
    }
  })
  server.requestTimeout = REQUEST_TIMEOUT_MS
  server.headersTimeout = Math.min(REQUEST_TIMEOUT_MS, 60_000)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = server.address().port
  guard = guardFor({ host, port: bound, token })
  const origin = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`
  let closing = null
  return {
    url: origin,
    apiUrl: `${origin}/client/v4`,
    browserUrl: `${origin}/#token=${encodeURIComponent(token)}`,
    token,
    port: bound,
    close() {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve())
        browser.close()
        server.closeAllConnections()
      }).then(() => namespaces.close())
      return closing
    },
  }
}

// The KV options of the store `serve()` was given: a directory (default .kv), or Redis.
function storeOf({ path, url, cluster, keyPrefix }) {
  if (url !== undefined) {
    const store = { url }
    if (cluster !== undefined) store.cluster = cluster
    if (keyPrefix !== undefined) store.keyPrefix = keyPrefix
    return store
  }
  return { path: path ?? '.kv' }
}

module.exports = { serve }
