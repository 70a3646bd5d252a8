'use strict'

// SIGKILL a process that is writing, many times over, and reopen the store after each kill:
// it always opens, every acknowledged write is there, and no entry is torn or paired with
// another write's metadata or expiration. KV_CRASH_ROUNDS raises the number of kills.

const path = require('node:path')
const { spawn } = require('node:child_process')
const { KV } = require('..')
const { tempDir } = require('./helpers')

const WRITER = path.join(__dirname, 'fixtures', 'crash-writer.js')
const EXPIRATION_BASE = 2_000_000_000
const ROUNDS = Number(process.env.KV_CRASH_ROUNDS ?? 6)

// Starts a writer and kills it at a random moment after its first acknowledgements.
function writeUntilKilled(dir, mode, round) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, dir, mode, String(round * 1000)])
    let out = ''
    let killing = false
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (!killing && out.split('\n').length > 40) {
        killing = true
        setTimeout(() => child.kill('SIGKILL'), Math.random() * 60)
      }
    })
    child.stderr.on('data', (chunk) => reject(new Error(`writer failed: ${chunk}`)))
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer exited with ${code}`))
      // Only complete lines: the last one may have been cut by the kill.
      const acks = out
        .split('\n')
        .slice(0, -1)
        .map((line) => line.split(' '))
      resolve(acks.map(([, key, i]) => ({ key, i: Number(i) })))
    })
  })
}

describe.each(['durable', 'flush'])('killed while writing (%s)', (mode) => {
  test(`the store reopens with every acknowledged write, untorn, ${ROUNDS} times`, async () => {
    const dir = tempDir()
    const acked = new Map() // key -> highest acknowledged write number
    for (let round = 0; round < ROUNDS; round++) {
      for (const { key, i } of await writeUntilKilled(dir, mode, round)) {
        acked.set(key, Math.max(acked.get(key) ?? -1, i))
      }
      const kv = new KV({ path: dir, namespace: 'crash', clock: () => 1_900_000_000_000 })
      try {
        const { keys } = await kv.list()
        const stored = new Map(keys.map((k) => [k.name, k]))
        for (const [key, i] of acked) {
          const entry = stored.get(key)
          expect(entry).toBeDefined()
          // A later write may have landed too, but never an earlier one.
          expect(entry.metadata.i).toBeGreaterThanOrEqual(i)
        }
        for (const entry of keys) {
          const value = await kv.get(entry.name, 'json')
          expect(value.i).toBe(entry.metadata.i)
          expect(entry.expiration).toBe(EXPIRATION_BASE + value.i)
          const size = value.i % 7 === 0 ? 300_000 : value.i % 3 === 0 ? 5_000 : 50
          expect(value.pad).toHaveLength(size)
        }
      } finally {
        await kv.close()
      }
    }
    expect(acked.size).toBeGreaterThan(0)
  }, 60_000)
})

// A bulkPut larger than one sled batch (1,024 entries) goes in several, with an undo record,
// and one of an async iterable in parts, each with its undo entry: killed at any moment, the
// store reopens with the whole of each write or none of it.
test.each([
  ['an array', 'Array.from({ length: KEYS }, (_, i) => ({ key: "k" + i, value }))'],
  [
    'an async iterable',
    '(async function* () { for (let i = 0; i < KEYS; i++) yield { key: "k" + i, value } })()',
  ],
])(
  `a large bulkPut of %s killed part-way is all or nothing, ${ROUNDS} times`,
  async (_, entries) => {
    const dir = tempDir()
    const KEYS = 5000
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, [
        '-e',
        `const { KV } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
       const kv = new KV({ path: ${JSON.stringify(dir)}, namespace: 'bulk', durable: true })
       const KEYS = ${KEYS}
       ;(async () => {
         for (let n = 0; ; n++) {
           const value = 'write-' + ${round} + '-' + n + '-'.padEnd(1500, 'x')
           await kv.bulkPut(${entries})
           console.log(n)
         }
       })()`,
      ])
      let acked = -1
      await new Promise((resolve, reject) => {
        child.stdout.on('data', (chunk) => {
          const lines = String(chunk).trim().split('\n')
          acked = Math.max(acked, ...lines.map(Number))
          if (acked === 0) setTimeout(() => child.kill('SIGKILL'), Math.random() * 150)
        })
        child.stderr.on('data', (chunk) => reject(new Error(`writer failed: ${chunk}`)))
        child.on('exit', resolve)
      })
      const kv = new KV({ path: dir, namespace: 'bulk' })
      try {
        const entries = await kv.dump()
        expect(entries).toHaveLength(KEYS)
        // One write's value everywhere: the last acknowledged one, or the one after it.
        const values = new Set(entries.map((entry) => entry.value))
        expect(values.size).toBe(1)
        const [n] = /^write-\d+-(\d+)-/
          .exec([...values][0])
          .slice(1)
          .map(Number)
        expect([...values][0].startsWith(`write-${round}-`)).toBe(true)
        expect(n === acked || n === acked + 1).toBe(true)
      } finally {
        await kv.close()
      }
    }
  },
)
