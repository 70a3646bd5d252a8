/* global env */

// Under kvConsistency: 'eventual' and kvLimits: true, on Vitest's fake clock.
import { test, expect, vi, afterEach } from 'vitest'

afterEach(() => vi.useRealTimers())

test('a location keeps what it read until fake time passes the cache TTL', async () => {
  vi.useFakeTimers({ now: new Date('2031-01-01T00:00:00Z') })
  const tokyo = env.KV.location('NRT')
  expect(await tokyo.get('feature-flags', 'json')).toEqual({ newCheckout: true })
  await env.KV.put('feature-flags', '{"newCheckout":false}')
  expect(await tokyo.get('feature-flags', 'json')).toEqual({ newCheckout: true })
  vi.advanceTimersByTime(60_000)
  expect(await tokyo.get('feature-flags', 'json')).toEqual({ newCheckout: false })
  // Cached as missing in Tokyo: the next test must not see that.
  expect(await tokyo.get('added')).toBeNull()
})

test('each test starts from the seed with every location cache empty', async () => {
  await env.KV.put('added', 'yes')
  expect(await env.KV.location('NRT').get('added')).toBe('yes')
  expect(await env.KV.location('NRT').get('feature-flags', 'json')).toEqual({ newCheckout: true })
  await expect(env.KV.put('added', 'again')).rejects.toThrow('KV PUT failed: 429 Too Many Requests')
})
