'use strict'

// env.KV through kv-binding/platform's getPlatformProxy() against wrangler's own, which
// starts workerd and answers each call across a process boundary: how long each takes to
// give env (in a fresh process: loading the module, reading the configuration, opening the
// store or starting workerd), then awaited gets and puts and gets 64 in flight. Each proxy
// runs in its own process, in alternating rounds; the figure kept is the median round.
//
//   node bench/platform.js [--rounds 3] [--quick]   (also run by `npm run bench`)

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { parseArgs } = require('node:util')

const ROOT = path.resolve(__dirname, '..')
const VALUE = 'v'.repeat(100)
const key = (i) => `user:${String(i).padStart(6, '0')}`

// The two proxies, each loaded from where a project would have it.
const PROXIES = {
  'kv-binding': {
    name: 'kv-binding/platform',
    load: () => require(path.join(ROOT, 'lib', 'platform', 'index.js')).getPlatformProxy,
    // In-process: tens of thousands of calls take well under a second.
    operations: 20_000,
  },
  wrangler: {
    name: "wrangler's getPlatformProxy",
    load: () => require(require.resolve('wrangler', { paths: [__dirname] })).getPlatformProxy,
    // About a millisecond a call.
    operations: 1_000,
  },
}

/** In a worker process: times one proxy, printing one line of JSON. */
async function worker(lib, dir, quick) {
  const started = process.hrtime.bigint()
  const getPlatformProxy = PROXIES[lib].load()
  const { env, dispose } = await getPlatformProxy({ configPath: path.join(dir, 'wrangler.toml') })
  const kv = env.KV
  await kv.get('warm-up')
  const startupMs = Number(process.hrtime.bigint() - started) / 1e6
  const n = quick ? Math.ceil(PROXIES[lib].operations / 4) : PROXIES[lib].operations
  const rate = async (fn, depth = 1) => {
    let next = 0
    const t = process.hrtime.bigint()
    const lane = async () => {
      while (next < n) await fn(next++)
    }
    await Promise.all(Array.from({ length: depth }, lane))
    return n / (Number(process.hrtime.bigint() - t) / 1e9)
  }
  const put = await rate((i) => kv.put(key(i), VALUE))
  const get = await rate(async (i) => {
    if ((await kv.get(key(i))) !== VALUE) throw new Error(`lost ${key(i)}`)
  })
  const get64 = await rate((i) => kv.get(key(i)), 64)
  await dispose()
  console.log(JSON.stringify({ startupMs, put, get, get64 }))
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** Runs every proxy in alternating rounds and prints the table. */
async function benchPlatform({ quick = false, rounds = 3, table, markdown }) {
  let wranglerFound = true
  try {
    PROXIES.wrangler.load()
  } catch {
    wranglerFound = false
  }
  const libs = wranglerFound ? ['kv-binding', 'wrangler'] : ['kv-binding']
  if (!wranglerFound) console.log('\nwrangler is not installed in bench/: its proxy is left out.')
  const results = Object.fromEntries(libs.map((lib) => [lib, []]))
  for (let round = 0; round < rounds; round++) {
    for (const lib of round % 2 === 0 ? libs : [...libs].reverse()) {
      // A fresh project each time: a first start, as a dev server's.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kv-bench-platform-${lib}-`))
      fs.writeFileSync(
        path.join(dir, 'wrangler.toml'),
        'name = "bench"\ncompatibility_date = "2026-11-01"\n\n[[kv_namespaces]]\nbinding = "KV"\nid = "bench"\n',
      )
      try {
        const out = execFileSync(
          process.execPath,
          [__filename, '--worker', lib, '--dir', dir, ...(quick ? ['--quick'] : [])],
          {
            cwd: dir,
            encoding: 'utf8',
            // A proxy that hangs (workerd that never starts) fails the bench, not stalls it.
            timeout: 300_000,
            env: {
              ...process.env,
              CLOUDFLARE_CF_FETCH_ENABLED: 'false',
              WRANGLER_SEND_METRICS: 'false',
            },
          },
        )
        results[lib].push(JSON.parse(out.trim().split('\n').pop()))
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  const fmtRate = (value) =>
    value >= 1e6
      ? `${(value / 1e6).toFixed(2)}M/s`
      : value >= 1e3
        ? `${(value / 1e3).toFixed(1)}k/s`
        : `${value.toFixed(0)}/s`
  const phases = [
    ['startup (module, config, store or workerd)', 'startupMs', (v) => `${v.toFixed(0)} ms`, -1],
    ['put, awaited', 'put', fmtRate, 1],
    ['get, awaited', 'get', fmtRate, 1],
    ['get, 64 in flight', 'get64', fmtRate, 1],
  ]
  const rows = [['phase', ...libs.map((lib) => PROXIES[lib].name), 'kv-binding ÷ wrangler']]
  for (const [label, field, format, better] of phases) {
    const values = libs.map((lib) => median(results[lib].map((r) => r[field])))
    const ratio =
      values.length === 2
        ? `${(better > 0 ? values[0] / values[1] : values[1] / values[0]).toFixed(1)}x`
        : '-'
    rows.push([label, ...values.map(format), ratio])
  }
  console.log(
    `\nenv.KV through getPlatformProxy() (median of ${rounds} rounds, a fresh process each)\n`,
  )
  console.log(table(rows, markdown))
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      dir: { type: 'string' },
      rounds: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      markdown: { type: 'boolean', default: false },
    },
  })
  const run = values.worker
    ? worker(values.worker, values.dir, values.quick)
    : benchPlatform({
        quick: values.quick,
        rounds: Number(values.rounds),
        markdown: values.markdown,
        table: (rows) => rows.map((row) => row.join(' | ')).join('\n'),
      })
  run.catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

module.exports = { benchPlatform }
