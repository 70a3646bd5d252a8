'use strict'

// npm run bench:processes -- [--processes 4] [--seconds 3] [--libs kv-binding-redis,ioredis]
//
// Throughput of one namespace on Redis shared by several processes, against one process alone:
// each process runs awaited gets and puts (16 in flight, 9 gets to 1 put) on the same keys for
// a fixed time. Prints ops/s for 1 and for N processes and their ratio, per library, all
// against one private redis-server started here.

const { spawn } = require('node:child_process')
const { parseArgs } = require('node:util')
const servers = require('../__test__/redis/servers')

const { values: options } = parseArgs({
  options: {
    processes: { type: 'string', default: '4' },
    seconds: { type: 'string', default: '3' },
    libs: { type: 'string', default: 'kv-binding-redis,ioredis' },
    child: { type: 'string' },
  },
})
const KEYS = 10_000
const key = (i) => `user:${String(i).padStart(6, '0')}`

/** In a child: runs the mix until the deadline and prints how many operations it did. */
async function child(lib) {
  const { ADAPTERS } = require('./adapters')
  const store = await ADAPTERS[lib].open()
  const deadline = Date.now() + Number(options.seconds) * 1000
  let done = 0
  let i = Math.floor(Math.random() * KEYS)
  const lane = async () => {
    while (Date.now() < deadline) {
      const k = key(i++ % KEYS)
      if (i % 10 === 0) await store.put(k, `value-${i}`.padEnd(100, 'v'))
      else await store.get(k)
      done++
    }
  }
  await Promise.all(Array.from({ length: 16 }, lane))
  await store.close()
  process.stdout.write(`${done}\n`)
}

function run(lib, count, prefix) {
  const children = Array.from(
    { length: count },
    () =>
      new Promise((resolve, reject) => {
        const proc = spawn(
          process.execPath,
          [__filename, '--child', lib, ...process.argv.slice(2)],
          {
            env: { ...process.env, KV_BENCH_PREFIX: prefix },
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        )
        let out = ''
        proc.stdout.on('data', (chunk) => (out += chunk))
        proc.on('exit', (code) =>
          code === 0 ? resolve(Number(out.trim())) : reject(new Error(`${lib} exited ${code}`)),
        )
      }),
  )
  return Promise.all(children).then((counts) => counts.reduce((a, b) => a + b, 0))
}

async function main() {
  if (options.child) return child(options.child)
  const server = await servers.startServer(['--appendonly', 'no'])
  process.env.KV_BENCH_REDIS_URL = `redis://127.0.0.1:${server.port}`
  const seconds = Number(options.seconds)
  const n = Number(options.processes)
  console.log(`One namespace on Redis, ${n} processes against 1, ${seconds} s each`)
  try {
    for (const lib of options.libs.split(',')) {
      const prefix = `shared-${lib}:`
      // Load the keys once, so every get finds its key.
      const { ADAPTERS } = require('./adapters')
      process.env.KV_BENCH_PREFIX = prefix
      const loader = await ADAPTERS[lib].open()
      for (let i = 0; i < KEYS; i += 100) {
        await Promise.all(
          Array.from({ length: 100 }, (_, j) => loader.put(key(i + j), 'v'.repeat(100))),
        )
      }
      await loader.close()
      const one = (await run(lib, 1, prefix)) / seconds
      const many = (await run(lib, n, prefix)) / seconds
      console.log(
        `${ADAPTERS[lib].name}: 1 process ${Math.round(one)} ops/s, ${n} processes ${Math.round(many)} ops/s, ${(many / one).toFixed(2)}x`,
      )
    }
  } finally {
    await servers.stop([server])
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
