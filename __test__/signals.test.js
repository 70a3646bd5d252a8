'use strict'

// Ctrl-C is not a crash: with flushOnSignals(), SIGINT and SIGTERM flush every store before
// the process ends, and the process ends as it would have.

const path = require('node:path')
const { spawn } = require('node:child_process')
const { KV } = require('..')
const { tempDir } = require('./helpers')

const ROOT = JSON.stringify(path.resolve(__dirname, '..'))

// Runs a writer that puts 100 keys with flushes an hour apart, then waits for a signal.
// Resolves how it ended.
function writer(dir, { optIn, ownHandler, signal }) {
  const child = spawn(process.execPath, [
    '-e',
    `const { KV, flushOnSignals } = require(${ROOT})
     ${ownHandler ? "process.on('SIGINT', () => setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50))" : ''}
     ${optIn ? 'flushOnSignals(); flushOnSignals()' : ''}
     const kv = new KV({ path: ${JSON.stringify(dir)}, flushEveryMs: 3600000 })
     ;(async () => {
       for (let i = 0; i < 100; i++) await kv.put('k' + i, 'v' + i)
       console.log('written')
       setInterval(() => {}, 1000)
     })()`,
  ])
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => child.kill(signal))
    child.once('exit', (code, signalled) => resolve({ code, signal: signalled }))
    child.once('error', reject)
  })
}

async function keysIn(dir) {
  const kv = new KV({ path: dir })
  const { keys } = await kv.list()
  await kv.close()
  return keys.length
}

test.each(['SIGINT', 'SIGTERM'])(
  'with flushOnSignals, %s flushes every write and the process still ends by it',
  async (signal) => {
    const dir = tempDir()
    await expect(writer(dir, { optIn: true, signal })).resolves.toEqual({ code: null, signal })
    expect(await keysIn(dir)).toBe(100)
  },
)

test('a program with its own SIGINT handler keeps its exit, and gets the flush', async () => {
  // The handler ends the process its own way, by SIGKILL, which runs no exit handler: the
  // writes are there only if flushOnSignals flushed, and the end is SIGKILL only if it did
  // not raise SIGINT again itself.
  const dir = tempDir()
  const ended = await writer(dir, { optIn: true, ownHandler: true, signal: 'SIGINT' })
  expect(ended).toEqual({ code: null, signal: 'SIGKILL' })
  expect(await keysIn(dir)).toBe(100)
})

test('without it, Ctrl-C loses the writes of the last flush window (what it is for)', async () => {
  const dir = tempDir()
  const ended = await writer(dir, { optIn: false, signal: 'SIGINT' })
  expect(ended).toEqual({ code: null, signal: 'SIGINT' })
  expect(await keysIn(dir)).toBeLessThan(100)
})
