'use strict'

// npm run bench -- [--keys 100000] [--libs a,b] [--phases get,put,...] [--miniflare-keys 10000]
//                  [--large-list-keys 1000] [--quick] [--markdown] [--baseline DIR]
//                  [--rounds 3] [--skip-serve] [--skip-platform]
//
// --baseline DIR adds the libraries `baseline` and `baseline-memory`: kv-binding as built in
// another checkout (e.g. a git worktree of main), to measure a change against what it changes.
//
// Runs the same workload through each library's own async API, one process per library, in
// `--rounds` rounds (the libraries in another order each round), and prints per phase the
// median round's ops/s, p50 and p99, the spread of the rounds, and each peer's ratio to
// kv-binding (sled): on a shared machine a single run of each cannot tell 20% apart.
// `--quick` (10k keys, 100 large-list keys) takes a few minutes. A last summary gives, for
// each backend run beside its peer (lmdb-js, the socket floor, ioredis), every phase's ratio
// and the phases below target.
// Then (unless --skip-serve) the REST API through serve() against a node:http + Map floor,
// and the data browser's first page of 100,000 keys in Chromium (see serve.js); and (unless
// --skip-platform) env.KV through kv-binding/platform against wrangler's getPlatformProxy()
// (see platform.js).

const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { parseArgs } = require('node:util')

const ALL_PHASES = ['get', 'put', 'list', 'large', 'delete', 'churn', 'list-large', 'reset']
const { values: options } = parseArgs({
  options: {
    keys: { type: 'string' },
    libs: { type: 'string' },
    phases: { type: 'string', default: ALL_PHASES.join(',') },
    'miniflare-keys': { type: 'string' },
    'large-list-keys': { type: 'string' },
    quick: { type: 'boolean', default: false },
    markdown: { type: 'boolean', default: false },
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    'skip-serve': { type: 'boolean', default: false },
    'skip-platform': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
})
if (options.help) {
  console.log(require('node:fs').readFileSync(__filename, 'utf8').split('\n\n')[1])
  process.exit(0)
}

// The adapters read the baseline from the environment, in this process and in each worker.
if (options.baseline) process.env.KV_BENCH_BASELINE = options.baseline
const { ADAPTERS } = require('./adapters')

const keys = Number(options.keys ?? (options.quick ? 10_000 : 100_000))
const miniflareKeys = Number(options['miniflare-keys'] ?? Math.min(keys, 10_000))
const largeListKeys = Number(options['large-list-keys'] ?? (options.quick ? 100 : 1000))
let libs = options.libs?.split(',') ?? Object.keys(ADAPTERS)
for (const lib of libs) {
  if (!ADAPTERS[lib]) throw new Error(`unknown library ${lib}; known: ${Object.keys(ADAPTERS)}`)
}
const servers = require('../__test__/redis/servers')
if (libs.some((lib) => ADAPTERS[lib].redis) && !servers.has('redis-server')) {
  console.log('redis-server is not installed: the Redis libraries are left out.')
  libs = libs.filter((lib) => !ADAPTERS[lib].redis)
}
// What the others are measured against: kv-binding on sled, or the first library named.
const BASE = libs.includes('kv-binding') ? 'kv-binding' : libs[0]

function runLib(lib) {
  // Miniflare manages a few hundred operations a second: it gets fewer keys and no churn.
  const isMiniflare = lib === 'miniflare'
  const phases = isMiniflare
    ? options.phases.split(',').filter((p) => !['churn', 'list-large'].includes(p))
    : options.phases.split(',')
  const argv = [
    '--expose-gc',
    path.join(__dirname, 'worker.js'),
    '--lib',
    lib,
    '--keys',
    String(isMiniflare ? miniflareKeys : keys),
    '--phases',
    phases.join(','),
    '--large-list-keys',
    String(largeListKeys),
  ]
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk) => (out += chunk))
    child.on('error', reject)
    child.on('exit', (code) => {
      const results = out
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
      if (code !== 0) process.stderr.write(`${ADAPTERS[lib].name} exited with ${code}\n`)
      resolve(results)
    })
  })
}

const fmt = {
  ops: (n) =>
    n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1),
  us: (n) => (n >= 1000 ? `${(n / 1000).toFixed(2)} ms` : `${n.toFixed(2)} µs`),
  mib: (n) => `${(n / MiB).toFixed(1)} MiB`,
  ratio: (n) => (n >= 100 ? `${n.toFixed(0)}x` : n >= 10 ? `${n.toFixed(1)}x` : `${n.toFixed(2)}x`),
}
const MiB = 1024 * 1024

function table(rows, markdown) {
  if (markdown) {
    const line = (cells) => `| ${cells.join(' | ')} |`
    return [line(rows[0]), line(rows[0].map(() => '---')), ...rows.slice(1).map(line)].join('\n')
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)))
  return rows.map((r) => r.map((cell, c) => String(cell).padEnd(widths[c])).join('  ')).join('\n')
}

/**
 * One result per library and phase from the rounds': the median round's (by ops/s, or by
 * bytes for sizes), with the rounds' ops/s in order as `spread`.
 */
function medianRounds(results) {
  const groups = new Map()
  for (const result of results) {
    const id = `${result.lib}\0${result.phase}`
    if (!groups.has(id)) groups.set(id, [])
    groups.get(id).push(result)
  }
  return [...groups.values()].map((group) => {
    const by = (r) => r.opsPerSec ?? r.bytes ?? r.sizes?.at(-1) ?? 0
    const sorted = [...group].sort((a, b) => by(a) - by(b))
    const median = sorted[(sorted.length - 1) >> 1]
    return { ...median, spread: sorted.map((r) => r.opsPerSec).filter(Boolean) }
  })
}

// What each backend is measured against, and the ratio it should reach on every phase
// (its speed ÷ the peer's): lmdb-js in-process, the Unix-socket floor through a holder
// (within 1.3x of its cost), ioredis on Redis.
const TARGETS = [
  ['kv-binding', 'lmdb', 1],
  ['kv-binding-shared', 'socket-floor', 1 / 1.3],
  ['kv-binding-redis', 'ioredis', 1],
  ['kv-binding-redis-cluster', 'ioredis-cluster', 1],
]

/** One line per pair of libraries run: the ratio of each phase, and the phases below target. */
function targets(find, phases) {
  return TARGETS.filter(([ours, peer]) => libs.includes(ours) && libs.includes(peer)).map(
    ([ours, peer, target]) => {
      const ratios = phases.flatMap((phase) => {
        const [a, b] = [find(ours, phase), find(peer, phase)]
        return a && b ? [[phase, a.opsPerSec / b.opsPerSec]] : []
      })
      const below = ratios.filter(([, ratio]) => ratio < target).map(([phase]) => phase)
      return (
        `${ours} ÷ ${peer} (target ${fmt.ratio(target)}): ` +
        ratios.map(([phase, ratio]) => `${phase} ${fmt.ratio(ratio)}`).join(', ') +
        (below.length > 0 ? `; below target: ${below.join(', ')}` : '; every phase on target')
      )
    },
  )
}

async function main() {
  console.log(
    `kv-binding benchmark: ${keys} keys of 100 bytes (Miniflare 4: ${miniflareKeys}), ` +
      `${os.cpus().length} × ${os.cpus()[0].model}, Node ${process.version}, ${os.platform()} ${os.arch()}, ` +
      `median of ${options.rounds} rounds`,
  )
  const results = []
  // One private Redis server, and one 3-shard cluster, for the Redis libraries that need
  // them, emptied before each library.
  const started = []
  const uses = (kind) => libs.some((lib) => ADAPTERS[lib].redis === kind)
  if (uses('single')) {
    started.push(await servers.startServer(['--appendonly', 'no']))
    process.env.KV_BENCH_REDIS_URL = `redis://127.0.0.1:${started[0].port}`
  }
  if (uses('cluster')) {
    const cluster = await servers.startCluster()
    started.push(...cluster)
    process.env.KV_BENCH_REDIS_CLUSTER_URL = `redis://127.0.0.1:${cluster[0].port}`
  }
  const rounds = Number(options.rounds)
  try {
    for (let round = 0; round < rounds; round++) {
      // Each round starts from another library, so that none always runs first or last.
      const order = libs.map((_, i) => libs[(i + round) % libs.length])
      for (const lib of order) {
        if (ADAPTERS[lib].redis) {
          for (const { port } of started) {
            require('node:child_process').spawnSync('redis-cli', ['-p', String(port), 'flushall'])
          }
        }
        results.push(...(await runLib(lib)))
      }
    }
  } finally {
    await servers.stop(started)
  }
  const medians = medianRounds(results)
  const find = (lib, phase) => medians.find((r) => r.lib === lib && r.phase === phase)

  const timed = [...new Set(medians.filter((r) => r.opsPerSec).map((r) => r.phase))]
  const rows = [
    ['phase', 'library', 'ops/s', 'rounds', 'p50', 'p99', 'max stall', `${BASE} ÷ library`],
  ]
  for (const phase of timed) {
    const base = find(BASE, phase)
    for (const lib of libs) {
      const r = find(lib, phase)
      if (!r) continue
      const label =
        lib === 'miniflare' ? `${ADAPTERS[lib].name} (${miniflareKeys} keys)` : ADAPTERS[lib].name
      rows.push([
        phase,
        label,
        fmt.ops(r.opsPerSec),
        r.spread.length > 1 ? `${fmt.ops(r.spread[0])}–${fmt.ops(r.spread.at(-1))}` : '-',
        fmt.us(r.p50),
        fmt.us(r.p99),
        `${r.stallMs.toFixed(1)} ms`,
        base ? fmt.ratio(base.opsPerSec / r.opsPerSec) : '-',
      ])
    }
  }
  console.log(`\n${table(rows, options.markdown)}\n`)

  const sizes = [
    [
      'library',
      'RSS after load',
      'disk after load',
      'disk after delete',
      'disk after 3 load/delete rounds',
    ],
  ]
  for (const lib of libs) {
    const bytes = (phase) => (find(lib, phase) ? fmt.mib(find(lib, phase).bytes) : '-')
    const churn = find(lib, 'disk-churn')
    sizes.push([
      ADAPTERS[lib].name,
      bytes('rss-after-load'),
      bytes('disk-after-load'),
      bytes('disk-after-delete'),
      churn ? churn.sizes.map(fmt.mib).join(' → ') : '-',
    ])
  }
  console.log(table(sizes, options.markdown))
  const summary = targets(find, timed)
  if (summary.length > 0) console.log(`\n${summary.join('\n')}`)

  if (!options['skip-serve']) {
    const { benchServe } = require('./serve')
    await benchServe({ quick: options.quick, table, markdown: options.markdown })
  }
  if (!options['skip-platform']) {
    const { benchPlatform } = require('./platform')
    await benchPlatform({
      quick: options.quick,
      rounds: Number(options.rounds),
      table,
      markdown: options.markdown,
    })
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
