'use strict'

// The data browser: its page and scripts (files of the package, so it works offline), and
// what it needs beyond Cloudflare's API, under /_kv/: the operations feed, and export and
// import of a whole namespace in wrangler's bulk format.

const { AsyncLocalStorage } = require('node:async_hooks')
const fs = require('node:fs')
const path = require('node:path')
const diagnostics = require('node:diagnostics_channel')
const { CHANNEL } = require('../kv/feed.js')
const { resultsFor } = require('../results.js')
const { CODES, ApiError, invalid, readJson, sendResult } = require('./http.js')

// The page's files, by the path they are served at.
const UI = path.join(__dirname, 'ui')
const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/ui/app.css': ['app.css', 'text/css; charset=utf-8'],
  '/ui/main.js': ['main.js', 'text/javascript; charset=utf-8'],
  '/ui/api.js': ['api.js', 'text/javascript; charset=utf-8'],
  '/ui/dom.js': ['dom.js', 'text/javascript; charset=utf-8'],
  '/ui/keys.js': ['keys.js', 'text/javascript; charset=utf-8'],
  '/ui/value.js': ['value.js', 'text/javascript; charset=utf-8'],
  '/ui/editor.js': ['editor.js', 'text/javascript; charset=utf-8'],
  '/ui/operations.js': ['operations.js', 'text/javascript; charset=utf-8'],
  '/ui/favicon.svg': ['favicon.svg', 'image/svg+xml'],
}

// The page loads nothing but its own files; values shown as images are blob: URLs; no other
// site may frame it.
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache',
}

// Whole namespaces move through import and export: production's bulk write limit by bytes,
// not by pairs, so that an export of any size can be imported back at once.
const IMPORT_BYTES = 100 * 1000 * 1000

// The operations kept for a page that opens the feed: the last ones sent to pages before.
const RECENT_KEPT = 200
// A comment sent down an idle feed, so that proxies and the page know it is alive.
const HEARTBEAT_MS = 15_000
// The most bytes of events a page's feed may have unsent before it is cut.
const FEED_BACKLOG = 1 << 20
// How often the store's holder is asked what it answered for other processes.
const SERVED_POLL_MS = 250

// Set while the server answers the page's own refreshes (`x-kv-refresh`): the operations they
// make are left out of the feed, which would otherwise show little else.
const refreshing = new AsyncLocalStorage()

/**
 * The browser's routes over `namespaceOf(id)` (see api.js) and `namespaces` (see
 * namespaces.js). Returns `{ isPage(path),
 * answerPage(req, res, path), answer(req, res, path, query), unlessRefresh(req, task),
 * close() }`: pages need no token, the rest does.
 */
function browserFor(namespaceOf, namespaces) {
  const files = new Map(
    Object.entries(FILES).map(([route, [file, type]]) => [
      route,
      { body: fs.readFileSync(path.join(UI, file)), type },
    ]),
  )
  const feed = operationsFeed(namespaces)

  function answerPage(req, res, route) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new ApiError(405, CODES.NO_ROUTE, 'The page is read with GET.')
    }
    const { body, type } = files.get(route)
    res.writeHead(200, { ...PAGE_HEADERS, 'content-type': type, 'content-length': body.length })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  async function answer(req, res, route, query) {
    const [, , what, id, ...rest] = route.split('/')
    if (what === 'events' && id === undefined && req.method === 'GET') {
      return feed.open(req, res)
    }
    if (id === undefined || rest.length > 0) throw noRoute()
    const { kv } = await namespaceOf(id)
    if (what === 'export' && req.method === 'GET') {
      const prefix = query.get('prefix') ?? ''
      const entries = prefix === '' ? await kv.dump() : await entriesUnder(kv, prefix)
      const text = JSON.stringify(entries)
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
        'x-kv-entries': entries.length,
      })
      return res.end(text)
    }
    if (what === 'import' && req.method === 'POST') {
      const entries = await readJson(req, IMPORT_BYTES, 'import')
      if (!Array.isArray(entries)) {
        throw invalid('An import is a JSON array of { key, value } objects, as wrangler writes.')
      }
      // One bulkPut: every entry is checked before any is written.
      await kv.bulkPut(entries)
      return sendResult(res, { successful_key_count: entries.length, unsuccessful_keys: [] })
    }
    throw noRoute()
  }

  return {
    isPage: (route) => files.has(route),
    answerPage,
    answer,
    // Runs `task()`, its operations left out of the feed when the page is refreshing.
    unlessRefresh: (req, task) =>
      req.headers['x-kv-refresh'] === '1' ? refreshing.run(true, task) : task(),
    close: () => feed.close(),
  }
}

const noRoute = () => new ApiError(404, CODES.NO_ROUTE, 'No route for that URI')

const { dumpedEntry } = resultsFor(globalThis)

/**
 * The entries under `prefix`, as `dump()` gives a whole namespace: read a list page at a time,
 * so that exporting a few keys of a large namespace reads those keys alone. A key deleted
 * between its listing and its read is left out.
 */
async function entriesUnder(kv, prefix) {
  const entries = []
  let cursor
  do {
    const page = await kv.list({ prefix, cursor })
    const read = await Promise.all(
      page.keys.map(({ name }) => kv.getWithMetadata(name, 'arrayBuffer')),
    )
    page.keys.forEach(({ name, expiration }, i) => {
      const { value, metadata } = read[i]
      if (value === null) return
      const json = metadata === null ? null : JSON.stringify(metadata)
      entries.push(dumpedEntry([name, Buffer.from(value), expiration ?? null, json]))
    })
    cursor = page.list_complete ? undefined : page.cursor
  } while (cursor !== undefined)
  return entries
}

// The operations of this process's KVs, and those the store's holder answered for other
// processes, sent to each page that listens as server-sent events (read with fetch, which
// can send the token). Both are watched only while a page listens.
function operationsFeed(namespaces) {
  const listeners = new Set()
  const recent = []
  let seq = 0
  const send = (operation) => {
    const event = `data: ${JSON.stringify({ seq: ++seq, ...operation })}\n\n`
    recent.push(event)
    if (recent.length > RECENT_KEPT) recent.shift()
    for (const res of listeners) deliver(res, event)
  }
  // A page that stops reading (a tab in the background, a client that never reads) would
  // have its events queue up here without end: past FEED_BACKLOG bytes unsent, its feed is
  // cut, and the page connects again when it reads once more.
  const deliver = (res, text) => {
    if (res.writableLength > FEED_BACKLOG) {
      stop(res)
      res.destroy()
    } else {
      res.write(text)
    }
  }
  const onOperation = (operation) => {
    if (refreshing.getStore() !== true) send({ ...operation, process: process.pid, here: true })
  }
  const served = servedPoller(namespaces, send)
  const stop = (res) => {
    if (!listeners.delete(res)) return
    if (listeners.size > 0) return
    diagnostics.unsubscribe(CHANNEL, onOperation)
    served.stop()
  }
  let heartbeat = null
  return {
    open(req, res) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-accel-buffering': 'no',
      })
      res.write(`: kv-binding operations\n\n${recent.join('')}`)
      if (listeners.size === 0) {
        diagnostics.subscribe(CHANNEL, onOperation)
        served.start()
      }
      listeners.add(res)
      heartbeat ??= setInterval(() => {
        for (const listener of listeners) deliver(listener, ': alive\n\n')
      }, HEARTBEAT_MS).unref()
      res.once('close', () => stop(res))
    },
    close() {
      clearInterval(heartbeat)
      served.stop()
      for (const res of [...listeners]) {
        stop(res)
        res.end()
      }
    },
  }
}

// Asks the store's holder, while started, for what it answered for other processes, and
// sends each operation on (those of this process, a client too, are left out: the
// diagnostics channel has them). The first answer only says where the log is: the holder
// logs nothing until asked. Stops asking for good when the store has no holder's log
// (memory, Redis).
function servedPoller(namespaces, send) {
  let running = false
  let asking = false
  let timer = null
  let shared = true
  // The log's position: null until the first answer of each start.
  let after = null
  const ask = async () => {
    asking = true
    try {
      const page = await namespaces.served(after ?? 0)
      if (page === null) shared = false
      else if (after !== null && page.last >= after) {
        for (const { seq, client, ...operation } of page.operations) {
          if (seq <= after || client === process.pid) continue
          send({ ...operation, process: client, here: false, cacheStatus: null, location: null })
        }
      }
      // A log behind the position asked for is a new holder's: read from where it is.
      if (page !== null) after = page.last
    } catch {
      // The holder went away: its successor is asked next time.
    } finally {
      asking = false
    }
    if (running && shared) {
      timer = setTimeout(() => {
        timer = null
        ask()
      }, SERVED_POLL_MS).unref()
    }
  }
  return {
    start() {
      running = true
      after = null
      if (shared && !asking && timer === null) ask()
    },
    stop() {
      running = false
      clearTimeout(timer)
      timer = null
    },
  }
}

module.exports = { browserFor }
