/* global env */

// The fixture's tests, which kv.spec.mjs and other.spec.mjs both run: files sharing a worker
// (--no-isolate) are covered too.
import fs from 'node:fs'
import path from 'node:path'
import { test, expect, vi, beforeEach } from 'vitest'

export function kvTests() {
  beforeEach(async () => {
    // A beforeEach runs after the restore: what it writes is there for its test.
    await env.SESSIONS.put('from-before-each', 'yes')
  })

  test('env holds the namespaces that wrangler.toml binds, seeded', async () => {
    expect(Object.keys(env)).toEqual(['KV', 'SESSIONS'])
    expect(await env.KV.get('feature-flags', 'json')).toEqual({ newCheckout: true })
    expect(await env.SESSIONS.get('from-before-each')).toBe('yes')
    await env.KV.put('feature-flags', '{}')
    // Left running on purpose: the next test must not see it.
    env.SESSIONS.put('forgotten', 'write')
  })

  test('each test starts from the seed', async () => {
    expect(await env.KV.get('feature-flags', 'json')).toEqual(
      process.env.KV_FIXTURE_EXPECT_FAILURE ? { newCheckout: false } : { newCheckout: true },
    )
    expect(await env.SESSIONS.get('forgotten')).toBeNull()
    expect((await env.SESSIONS.list()).keys.map((key) => key.name)).toEqual(['from-before-each'])
  })

  test('vi.useFakeTimers() and vi.setSystemTime() move KV time', async () => {
    vi.useFakeTimers()
    try {
      vi.setSystemTime(new Date('2031-01-01T00:00:00Z'))
      await env.KV.put('short', 'lived', { expirationTtl: 60 })
      expect((await env.KV.list({ prefix: 'short' })).keys[0].expiration).toBe(
        Date.UTC(2031, 0, 1) / 1000 + 60,
      )
      vi.advanceTimersByTime(61_000)
      expect(await env.KV.get('short')).toBeNull()
    } finally {
      vi.useRealTimers()
    }
  })

  test('values, Maps and errors belong to the test realm', async () => {
    await env.KV.put('bytes', new Uint8Array([1, 2]))
    expect(await env.KV.get('bytes', 'arrayBuffer')).toBeInstanceOf(ArrayBuffer)
    expect(await env.KV.get(['feature-flags'])).toBeInstanceOf(Map)
    await expect(env.KV.get('')).rejects.toThrow(TypeError)
  })

  let attempts = 0
  test('a retry starts from the seed too', { retry: 1 }, async () => {
    attempts++
    expect(await env.KV.get('retried')).toBeNull()
    await env.KV.put('retried', 'by the first attempt')
    // The first attempt fails on purpose; the retry must not see what it wrote.
    expect(attempts).toBe(2)
  })

  // Run only when the run persists (KV_FIXTURE_PERSIST); skipped, and counted so, otherwise.
  const persist = process.env.KV_FIXTURE_PERSIST
  test.skipIf(!persist)('kvPersist gives each worker a sled store of its own', () => {
    const own = path.resolve(persist, `worker-${process.env.VITEST_POOL_ID ?? '1'}`)
    expect(fs.existsSync(path.join(own, 'kv.lock'))).toBe(true)
  })
}
