'use strict'

// The KV REST API served by `serve()` against the floor for any HTTP API in Node: a plain
// node:http server answering the same routes and envelopes from a Map. Both are driven by
// the same client (node:http, keep-alive) in one process, in alternating rounds; the figure
// kept per phase is the median round. Then the data browser's first page of 100,000 keys in
// Chromium (when Debian's chromium is installed), from navigation to keys shown.
//
//   node bench/serve.js [--keys 10000] [--rounds 3] [--quick]   (also run by `npm run bench`)

const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { KV, serve } = require('..')

const ROUTE = '/client/v4/accounts/local/storage/kv/namespaces/KV'
const VALUE = 'v'.repeat(100)
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const key = (i) => `user:${String(i).padStart(6, '0')}`

/** The floor: the same routes, answered from a Map and a sorted array of its keys. */
function floorServer(keys) {
  const values = new Map(keys.map((name) => [name, Buffer.from(VALUE)]))
  const sorted = [...keys].sort()
  const envelope = (result, info) =>
    JSON.stringify({ success: true, errors: [], messages: [], result, result_info: info })
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://floor')
    const rest = url.pathname.slice(ROUTE.length)
    if (rest.startsWith('/values/')) {
      const name = decodeURIComponent(rest.slice('/values/'.length))
      if (req.method === 'GET') {
        const value = values.get(name)
        res.writeHead(value ? 200 : 404, { 'content-type': 'application/octet-stream' })
        return res.end(value)
      }
      const chunks = []
      req.on('data', (chunk) => chunks.push(chunk))
      req.on('end', () => {
        values.set(name, Buffer.concat(chunks))
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(envelope({}))
      })
      return
    }
    const prefix = url.searchParams.get('prefix') ?? ''
    const limit = Number(url.searchParams.get('limit') ?? 1000)
    let low = 0
    let high = sorted.length
    while (low < high) {
      const mid = (low + high) >> 1
      if (sorted[mid] < prefix) low = mid + 1
      else high = mid
    }
    const page = sorted.slice(low, low + limit).filter((name) => name.startsWith(prefix))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(
      envelope(
        page.map((name) => ({ name })),
        { count: page.length, cursor: '' },
      ),
    )
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

/** A client of one server: `request(method, path, body)` resolves the status once read. */
function clientOf(port, token) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
  const headers = { authorization: `Bearer ${token}` }
  return (method, route, body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, method, path: `${ROUTE}${route}`, agent, headers },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode))
        },
      )
      req.on('error', reject)
      req.end(body)
    })
}

// The phases: each a count of requests and what one request is; `inFlight` at once.
function phases(count, keys) {
  let i = 0
  const next = () => key(i++ % keys)
  return [
    ['get', count, 1, (call) => call('GET', `/values/${next()}`)],
    ['get ×16 in flight', count * 4, 16, (call) => call('GET', `/values/${next()}`)],
    ['put', count / 2, 1, (call) => call('PUT', `/values/${next()}`, VALUE)],
    ['list 100 keys', count / 5, 1, (call) => call('GET', `/keys?limit=100&prefix=user:00`)],
  ]
}

async function timed(call, count, inFlight, one) {
  let done = 0
  const lane = async () => {
    while (done < count) {
      done++
      const status = await one(call)
      if (status !== 200) throw new Error(`a request answered ${status}`)
    }
  }
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: inFlight }, lane))
  return count / (Number(process.hrtime.bigint() - started) / 1e9)
}

const median = (numbers) => [...numbers].sort((a, b) => a - b)[Math.floor(numbers.length / 2)]

/** REST through serve() against the floor: rows of [phase, floor ops/s, serve ops/s, ratio]. */
async function restRows({ keys, rounds, count }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-bench-serve-'))
  const names = Array.from({ length: keys }, (_, i) => key(i))
  const seed = new KV({ path: dir, namespace: 'KV' })
  for (let at = 0; at < keys; at += 10_000) {
    await seed.bulkPut(names.slice(at, at + 10_000).map((name) => ({ key: name, value: VALUE })))
  }
  const served = await serve({ path: dir, port: 0 })
  const floor = await floorServer(names)
  const callServed = clientOf(served.port, served.token)
  const callFloor = clientOf(floor.address().port, 'none')
  const figures = new Map()
  try {
    for (let round = 0; round < rounds; round++) {
      // Alternating which goes first, so that neither always runs on a warmer machine.
      const order = round % 2 === 0 ? ['floor', 'serve'] : ['serve', 'floor']
      for (const [phase, n, inFlight, one] of phases(count, keys)) {
        for (const who of order) {
          const call = who === 'floor' ? callFloor : callServed
          const rate = await timed(call, n, inFlight, one)
          const list = figures.get(phase) ?? { floor: [], serve: [] }
          list[who].push(rate)
          figures.set(phase, list)
        }
      }
    }
  } finally {
    await served.close()
    await new Promise((resolve) => floor.close(resolve))
    await seed.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return [...figures].map(([phase, { floor: f, serve: s }]) => {
    const [floorRate, serveRate] = [median(f), median(s)]
    return [phase, floorRate, serveRate, serveRate / floorRate]
  })
}

/**
 * The data browser's first page of `keys` keys in Chromium: the time from navigation to the
 * page's `kv:first-page` mark (scripts loaded, namespaces and the first 100 keys fetched and
 * shown), median of `times` loads; and a next page, from click to rows shown. Null without
 * Chromium.
 */
async function browserFigures({ keys, times }) {
  if (!fs.existsSync(CHROMIUM)) return null
  const { chromium } = require('playwright-core')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-bench-browser-'))
  const seed = new KV({ path: dir, namespace: 'KV' })
  for (let at = 0; at < keys; at += 10_000) {
    const part = Array.from({ length: Math.min(10_000, keys - at) }, (_, i) => ({
      key: key(at + i),
      value: VALUE,
      metadata: { n: at + i },
    }))
    await seed.bulkPut(part)
  }
  const served = await serve({ path: dir, port: 0 })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  try {
    const page = await browser.newPage()
    await page.goto(served.browserUrl)
    await page.waitForSelector('body[data-ready="true"]')
    const firsts = []
    const nexts = []
    for (let i = 0; i < times; i++) {
      await page.reload()
      await page.waitForSelector('body[data-ready="true"]')
      firsts.push(
        await page.evaluate(() => performance.getEntriesByName('kv:first-page')[0].startTime),
      )
      const clicked = await page.evaluate(() => {
        const started = performance.now()
        document.getElementById('next').click()
        return started
      })
      await page.waitForSelector('#key-rows tr[data-key="user:000100"]')
      nexts.push((await page.evaluate(() => performance.now())) - clicked)
    }
    const rows = await page.locator('#key-rows tr').count()
    return { first: median(firsts), next: median(nexts), rows }
  } finally {
    await browser.close()
    await served.close()
    await seed.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs both and prints their tables through `table` (see run.js). */
async function benchServe({ quick = false, rounds = 3, keys, table, markdown = false }) {
  const restKeys = keys ?? (quick ? 10_000 : 100_000)
  const count = quick ? 2000 : 5000
  console.log(
    `\nREST API through serve() (sled, ${restKeys} keys of 100 bytes) against node:http + Map,` +
      ` median of ${rounds} alternating rounds:\n`,
  )
  const rest = await restRows({ keys: restKeys, rounds, count })
  const rows = [['phase', 'node:http + Map', 'serve()', 'serve ÷ floor']]
  for (const [phase, floorRate, serveRate, ratio] of rest) {
    rows.push([
      phase,
      `${Math.round(floorRate)} ops/s`,
      `${Math.round(serveRate)} ops/s`,
      `${ratio.toFixed(2)}x`,
    ])
  }
  console.log(table(rows, markdown))
  const browser = await browserFigures({ keys: 100_000, times: quick ? 3 : 5 })
  if (browser === null) {
    console.log(`\nThe data browser's figures need Chromium at ${CHROMIUM}: left out.`)
  } else {
    console.log(
      `\nData browser, 100000 keys, Chromium: first page shown ${browser.first.toFixed(0)} ms ` +
        `after navigation (${browser.rows} rows in the DOM), next page ${browser.next.toFixed(0)} ms ` +
        `after the click (medians).`,
    )
  }
}

module.exports = { benchServe }

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      keys: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
    },
  })
  const table = (rows) => rows.map((row) => row.join('  ')).join('\n')
  benchServe({
    quick: values.quick,
    rounds: Number(values.rounds),
    keys: values.keys === undefined ? undefined : Number(values.keys),
    table,
    markdown: values.markdown,
  }).catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
