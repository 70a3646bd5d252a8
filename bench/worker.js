'use strict'

// Runs the benchmark phases for one library in this process and prints one JSON line per
// result on stdout. Progress goes to stderr. Started by bench/run.js; see there for options.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { parseArgs } = require('node:util')
const { ADAPTERS } = require('./adapters')

const MiB = 1024 * 1024

const { values: args } = parseArgs({
  options: {
    lib: { type: 'string' },
    keys: { type: 'string' },
    phases: { type: 'string' },
    'large-list-keys': { type: 'string' },
  },
})
const KEYS = Number(args.keys)
const LARGE_LIST_KEYS = Number(args['large-list-keys'])
const PHASES = new Set(args.phases.split(','))
const adapter = ADAPTERS[args.lib]

const now = () => Number(process.hrtime.bigint()) / 1e3 // µs
const key = (i) => `user:${String(i).padStart(6, '0')}`
const smallValue = (i) => `${'v'.repeat(90)}${String(i).padStart(10, '0')}` // 100 bytes
const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve))

// A fixed permutation, so every library reads the same keys in the same random-looking order.
function shuffled(n) {
  const order = Uint32Array.from({ length: n }, (_, i) => i)
  let seed = 0x9e3779b9
  for (let i = n - 1; i > 0; i--) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
    const j = seed % (i + 1)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

function emit(result) {
  process.stdout.write(`${JSON.stringify({ lib: args.lib, ...result })}\n`)
}

function progress(text) {
  process.stderr.write(`\r\x1b[K  ${adapter.name}: ${text}`)
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

/**
 * Times `count` calls of `op(i)`, `depth` at a time, and emits ops/s, p50, p99 (µs) and the
 * longest event-loop stall seen (ms). The loop yields to the event loop every `yieldEvery`
 * operations, so a stall is what the calls themselves block, not the benchmark's own loop.
 */
async function measure(phase, count, op, { depth = 1, yieldEvery = 64 } = {}) {
  const latencies = new Float64Array(count)
  const stalls = monitorEventLoopDelay({ resolution: 1 })
  let next = 0
  async function lane() {
    while (next < count) {
      const i = next++
      const start = now()
      await op(i)
      latencies[i] = now() - start
      if (i % yieldEvery === yieldEvery - 1) {
        progress(`${phase} ${i + 1}/${count}`)
        await yieldToLoop()
      }
    }
  }
  await yieldToLoop()
  stalls.enable()
  const start = now()
  await Promise.all(Array.from({ length: depth }, lane))
  const elapsed = now() - start
  stalls.disable()
  latencies.sort()
  emit({
    phase,
    count,
    opsPerSec: (count / elapsed) * 1e6,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    stallMs: stalls.max / 1e6,
  })
}

async function inFlight(count, depth, op) {
  let next = 0
  const lane = async () => {
    while (next < count) await op(next++)
  }
  await Promise.all(Array.from({ length: depth }, lane))
}

// Bytes on disk under `dir`. A store may remove a file between the listing and the stat (a
// compaction running in the background): such a file counts as gone.
function du(dir) {
  let total = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) total += du(full)
    else if (entry.isFile())
      total += (fs.statSync(full, { throwIfNoEntry: false })?.blocks ?? 0) * 512
  }
  return total
}

function rss() {
  globalThis.gc?.()
  return process.memoryUsage().rss
}

// A line of JSON, repeated to make the large text values.
const JSON_LINE = '{"id":12345,"name":"a value people store","tags":["kv","json"],"ok":true},'

async function main() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `kv-bench-${args.lib}-`))
  const dir = path.join(root, 'main')
  fs.mkdirSync(dir)
  const store = await adapter.open(dir)
  const order = shuffled(KEYS)
  const missing = (i) => `none:${String(i).padStart(6, '0')}`
  try {
    await measure('put', KEYS, (i) => store.put(key(i), smallValue(i)))
    await store.sync()
    emit({ phase: 'rss-after-load', bytes: rss() })
    emit({ phase: 'disk-after-load', bytes: du(root) })
    if (PHASES.has('get')) {
      await measure('get', KEYS, async (i) => {
        if ((await store.get(key(order[i]))) === null) throw new Error(`lost ${key(order[i])}`)
      })
      await measure('get-miss', KEYS, (i) => store.get(missing(i)))
      await measure('get-64', KEYS, (i) => store.get(key(order[i])), { depth: 64 })
      await measure('get-256', KEYS, (i) => store.get(key(order[i])), { depth: 256 })
    }
    if (PHASES.has('put')) {
      await measure('put-256', KEYS, (i) => store.put(key(order[i]), smallValue(i)), {
        depth: 256,
      })
    }
    if (PHASES.has('list')) {
      // Prefixes that each match at least 1000 keys, walking through the key space.
      const prefixes = Array.from({ length: Math.max(1, Math.floor(KEYS / 10000)) }, (_, p) =>
        KEYS >= 10000 ? `user:0${p}` : 'user:',
      )
      await measure(
        'list',
        200,
        async (i) => {
          const keys = await store.list(prefixes[i % prefixes.length], 1000)
          if (keys.length !== Math.min(1000, KEYS)) throw new Error(`listed ${keys.length}`)
        },
        { yieldEvery: 1 },
      )
    }
    if (PHASES.has('large')) {
      const oneMiB = new Uint8Array(MiB).fill(7)
      await measure('put-1mib', 50, (i) => store.put(`large:${i}`, oneMiB), { yieldEvery: 1 })
      await measure('get-1mib', 50, (i) => store.getBytes(`large:${i}`), { yieldEvery: 1 })
      const big = new Uint8Array(25 * MiB).fill(9)
      await measure('put-25mib', 8, (i) => store.put(`huge:${i}`, big), { yieldEvery: 1 })
      await measure('get-25mib', 8, (i) => store.getBytes(`huge:${i}`), { yieldEvery: 1 })
      // The same sizes as text, as JSON and HTML are stored and read: ASCII, read as strings.
      const text = (bytes) => JSON_LINE.repeat(Math.ceil(bytes / JSON_LINE.length)).slice(0, bytes)
      const [oneMiBText, bigText] = [text(MiB), text(25 * MiB - 1024)]
      for (let i = 0; i < 50; i++) await store.put(`large:${i}`, oneMiBText)
      const textOf = (expected) => async (name) => {
        if ((await store.get(name))?.length !== expected.length) throw new Error(`lost ${name}`)
      }
      await measure('get-1mib-text', 50, (i) => textOf(oneMiBText)(`large:${i}`), {
        yieldEvery: 1,
      })
      for (let i = 0; i < 8; i++) await store.put(`huge:${i}`, bigText)
      await measure('get-25mib-text', 8, (i) => textOf(bigText)(`huge:${i}`), { yieldEvery: 1 })
      for (let i = 0; i < 50; i++) await store.delete(`large:${i}`)
      for (let i = 0; i < 8; i++) await store.delete(`huge:${i}`)
    }
    if (PHASES.has('delete')) {
      await measure('delete', KEYS, (i) => store.delete(key(order[i])))
      await store.sync()
      emit({ phase: 'disk-after-delete', bytes: du(root) })
    }
    if (PHASES.has('churn')) {
      // Load and delete everything again, 256 writes in flight: the store should reuse its
      // space rather than grow with every round.
      const sizes = []
      for (let round = 0; round < 3; round++) {
        progress(`churn round ${round + 1}/3`)
        await inFlight(KEYS, 256, (i) => store.put(key(i), smallValue(i)))
        await inFlight(KEYS, 256, (i) => store.delete(key(i)))
        await store.sync()
        sizes.push(du(root))
      }
      emit({ phase: 'disk-churn', sizes })
    }
  } finally {
    await store.close()
  }
  if (PHASES.has('reset')) {
    // What a test environment does before every test, on a namespace of its own holding a
    // 1,000-key seed: restore a snapshot of it, against clearing it and putting the seed
    // back.
    const resetDir = path.join(root, 'reset')
    fs.mkdirSync(resetDir)
    const fresh = await adapter.open(resetDir)
    try {
      if (fresh.reset) {
        const entries = Array.from({ length: 1000 }, (_, i) => ({
          key: key(i),
          value: smallValue(i),
        }))
        const snapshot = await fresh.reset.seed(entries)
        await measure('reset-restore', 2000, () => fresh.reset.restore(snapshot))
        await measure('reset-reput', 100, () => fresh.reset.reput(entries), { yieldEvery: 1 })
      }
    } finally {
      await fresh.close()
    }
  }
  if (PHASES.has('list-large')) {
    // The same list over keys whose values are 1 MiB: a store that reads values while listing
    // slows down by orders of magnitude.
    const largeDir = path.join(root, 'large')
    fs.mkdirSync(largeDir)
    const large = await adapter.open(largeDir)
    try {
      const oneMiB = new Uint8Array(MiB).fill(5)
      for (let i = 0; i < LARGE_LIST_KEYS; i++) {
        if (i % 50 === 0) progress(`list-large load ${i}/${LARGE_LIST_KEYS}`)
        await large.put(key(i), oneMiB)
      }
      await measure(
        'list-1mib-values',
        200,
        async () => {
          const keys = await large.list('user:', 1000)
          if (keys.length !== Math.min(1000, LARGE_LIST_KEYS))
            throw new Error(`listed ${keys.length}`)
        },
        { yieldEvery: 1 },
      )
    } finally {
      await large.close()
    }
  }
  fs.rmSync(root, { recursive: true, force: true })
  process.stderr.write('\r\x1b[K')
}

main().catch((error) => {
  process.stderr.write(`\n${adapter.name} failed: ${error.stack}\n`)
  process.exit(1)
})
