'use strict'

// Runs examples/worker.js inside edge-runtime (a Node-based worker emulator) with `env.KV`
// backed by kv-binding, and serves it over HTTP.
//
//   node examples/demo.js [--port 8787] [--host 127.0.0.1] [--path .kv | --url redis://...]
//                         [--binding NAME [--env NAME] [--config wrangler.toml]]
//                         [--eventual] [--limits] [--browser-port 8788 | off]
//
// The worker's env.KV is the store's namespace KV, or with --binding the namespace of that
// binding in the project's wrangler configuration (checked to bind it). With --eventual, KV
// reads are cached per Cloudflare location as production caches them: a request that adds
// ?colo=NRT is served from location NRT (see examples/worker.js). With --limits, KV enforces
// production's one write a second per key (see the worker's /api). Beside the worker, on
// --browser-port, `serve()` answers the data browser and Cloudflare's KV REST API over the
// same store; its operations view shows the worker's KV calls as they happen. It listens on
// loopback unless KV_TOKEN gives the token that another host needs.
//
// Environment: PORT, HOST, KV_PATH, KV_URL (Redis instead of a directory: every demo process
// pointed at one server shares the data), RATE_LIMIT (requests a minute per IP, default 100),
// KV_BROWSER_PORT, KV_TOKEN.

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { EdgeRuntime, pipeBodyStreamToResponse } = require('edge-runtime')
const { forRealm, serve: serveKv } = require('..')
const { bindingNamespace } = require('../lib/wrangler.js')
const { isLoopback } = require('../lib/serve/guard.js')

const WORKER = fs.readFileSync(path.join(__dirname, 'worker.js'), 'utf8')
const DEFAULT_FLAGS = { newCheckout: true }
// No request body the worker could store is larger than a KV value (25 MiB).
const MAX_BODY = 25 * 1024 * 1024

// How long a refused client may go on sending its body before the connection is cut.
const REFUSED_BODY_GRACE_MS = 2000

// Answers `status` without running the worker. What the client is still sending is read and
// dropped (a connection closed with it unread is reset, and the client could lose the
// answer), but only for a short while: then the connection is cut.
function refuse(req, res, status, message) {
  res.writeHead(status, { 'Content-Type': 'text/plain' })
  res.end(`${message}\n`)
  req.resume()
  const cutOff = setTimeout(() => req.socket.destroy(), REFUSED_BODY_GRACE_MS).unref()
  req.once('end', () => clearTimeout(cutOff))
  req.once('close', () => clearTimeout(cutOff))
}

/**
 * The body of `req` as a stream of the worker's realm, read only as fast as the worker reads
 * it. Past MAX_BODY bytes it fails, and `tooLarge` is called.
 */
function bodyStream(req, realm, tooLarge) {
  const chunks = req[Symbol.asyncIterator]()
  let received = 0
  return new realm.ReadableStream({
    async pull(controller) {
      const { done, value } = await chunks.next()
      if (done) return controller.close()
      received += value.length
      if (received > MAX_BODY) {
        tooLarge()
        controller.error(new realm.Error('The request body is larger than 25 MiB.'))
        return
      }
      controller.enqueue(new realm.Uint8Array(value))
    },
  })
}

/**
 * Serves `runtime` over HTTP, in place of edge-runtime's own server, which reads every request
 * body whole into memory before the worker runs, however large.
 */
async function serve(runtime, { port, host }) {
  async function handle(req, res) {
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > MAX_BODY) return refuse(req, res, 413, 'Payload Too Large')
    let tooLarge = false
    const body =
      req.method === 'GET' || req.method === 'HEAD'
        ? undefined
        : bodyStream(req, runtime.context, () => (tooLarge = true))
    const headers = Object.entries(req.headers).map(([name, value]) => [
      name,
      Array.isArray(value) ? value.join(', ') : value,
    ])
    const response = await runtime.dispatchFetch(`http://${req.headers.host}${req.url}`, {
      method: req.method,
      headers,
      body,
    })
    if (tooLarge) return refuse(req, res, 413, 'Payload Too Large')
    res.writeHead(response.status, response.statusText, [...response.headers].flat())
    await pipeBodyStreamToResponse(response.body, res)
    res.end()
  }
  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (res.headersSent) res.destroy(error)
      else refuse(req, res, 500, 'Internal Server Error')
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, resolve)
  })
  const address = server.address()
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * Starts the demo worker, and with `browser` the data browser and KV REST API beside it.
 *
 * @param {{ port?: number, host?: string, kvOptions?: object, rateLimit?: number,
 *   browser?: { port?: number, token?: string } }} options
 *   `kvOptions` are passed to `new KV()`: `{ path: '.kv', namespace: 'KV' }` for a store on
 *   disk, `{}` for memory. `browser` serves every namespace of that store (the worker's KV
 *   alone in memory) on the same host.
 * @returns {Promise<{ url: string, kv: object, browser: object | null,
 *   close: () => Promise<void> }>}
 */
async function startDemo({
  port = 8787,
  host = '127.0.0.1',
  kvOptions = {},
  rateLimit = 100,
  browser: browserOptions = null,
}) {
  let kv
  const runtime = new EdgeRuntime({
    extend(context) {
      // The worker's realm is the runtime's context: build KV from its globals, so values,
      // promises and errors the worker sees are its own.
      const KV = forRealm(context)
      kv = new KV(kvOptions)
      context.env = { KV: kv, RATE_LIMIT: rateLimit }
      return context
    },
  })
  if ((await kv.get('feature-flags')) === null) {
    await kv.put('feature-flags', JSON.stringify(DEFAULT_FLAGS))
  }
  runtime.evaluate(WORKER)
  const server = await serve(runtime, { port, host })
  let browser = null
  if (browserOptions !== null) {
    try {
      const { port: browserPort = 8788, token } = browserOptions
      const listen = {
        host: token || isLoopback(host) ? host : '127.0.0.1',
        port: browserPort,
        token,
      }
      browser = await serveData(kv, kvOptions, listen).catch((error) => {
        // Another server on the usual port (wrangler dev's, say): any free port will do.
        if (error.code !== 'EADDRINUSE') throw error
        return serveData(kv, kvOptions, { ...listen, port: 0 })
      })
    } catch (error) {
      await server.close()
      await kv.close()
      throw error
    }
  }
  return {
    url: server.url,
    kv,
    browser,
    async close() {
      await browser?.close()
      await server.close()
      await kv.close()
    },
  }
}

// The data browser and REST API over the demo's store: every namespace of a store on disk or
// in Redis (opened in this process, which holds the store), or the worker's KV in memory. Its
// operations view shows the worker's requests, since they run in this process.
function serveData(kv, { path: dir, url, keyPrefix, cluster, namespace = 'KV' }, listen) {
  if (dir !== undefined) return serveKv({ path: dir, ...listen })
  if (url !== undefined) return serveKv({ url, keyPrefix, cluster, ...listen })
  return serveKv({ namespaces: { [namespace]: kv }, ...listen })
}

/** `url` without its password, for printing. */
function redacted(url) {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.href
  } catch {
    return 'the given URL'
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PORT || '8787' },
      host: { type: 'string', default: process.env.HOST || '127.0.0.1' },
      path: { type: 'string', default: process.env.KV_PATH || '.kv' },
      url: { type: 'string', default: process.env.KV_URL || undefined },
      binding: { type: 'string' },
      env: { type: 'string' },
      config: { type: 'string' },
      eventual: { type: 'boolean', default: false },
      limits: { type: 'boolean', default: false },
      'browser-port': { type: 'string', default: process.env.KV_BROWSER_PORT || '8788' },
    },
  })
  const namespace =
    values.binding === undefined
      ? 'KV'
      : bindingNamespace(values.binding, { env: values.env, config: values.config })
  // Redis when a URL is given: the namespace is then shared by every process that names it.
  const kvOptions = values.url ? { url: values.url, namespace } : { path: values.path, namespace }
  if (values.eventual) kvOptions.consistency = 'eventual'
  if (values.limits) kvOptions.limits = true
  const where = values.url
    ? `on Redis at ${redacted(values.url)}`
    : `in ${path.resolve(values.path)}`
  const rateLimit = Number(process.env.RATE_LIMIT || 100)
  const demo = await startDemo({
    port: Number(values.port),
    host: values.host,
    kvOptions,
    rateLimit,
    browser:
      values['browser-port'] === 'off'
        ? null
        : { port: Number(values['browser-port']), token: process.env.KV_TOKEN || undefined },
  })
  const url = demo.url.replace(/\/$/, '')
  console.log(`kv-binding demo worker on ${url} (env.KV: namespace ${namespace} ${where})`)
  console.log(
    `  curl -i -X POST '${url}/login?user=alice'    then  curl -i ${url}/me --cookie session=...`,
  )
  console.log(`  curl ${url}/checkout    curl -X PUT ${url}/flags -d '{"newCheckout":false}'`)
  console.log(`  curl -H 'CF-Connecting-IP: 203.0.113.7' ${url}/api   (${rateLimit} a minute)`)
  if (values.eventual) {
    console.log(
      `  curl '${url}/checkout?colo=NRT'   (location NRT keeps what it read for 60 s after a PUT /flags)`,
    )
  }
  if (demo.browser !== null) {
    console.log(`Data browser and operations view: ${demo.browser.browserUrl}`)
    console.log(`KV REST API: ${demo.browser.apiUrl} (token ${demo.browser.token})`)
  }
  console.log('Ctrl-C stops it; every acknowledged write is flushed first.')
  const stop = async () => {
    await demo.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error.message)
    process.exit(1)
  })
}

module.exports = { startDemo }
