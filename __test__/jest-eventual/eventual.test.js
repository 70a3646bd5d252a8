'use strict'

// Runs under kv-binding/jest-environment with kvConsistency: 'eventual' and kvLimits: true
// (see the Jest projects in package.json): production's caching and limits, on Jest's clock.

/* global env */

afterEach(() => jest.useRealTimers())

test('a location keeps its cached answer until fake time moves past the cache TTL', async () => {
  jest.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z') })
  const tokyo = env.KV.location('tokyo')
  await expect(tokyo.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: true })
  await env.KV.put('feature-flags', '{"newCheckout":false}')
  await expect(env.KV.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: false })
  jest.advanceTimersByTime(59_999)
  await expect(tokyo.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: true })
  jest.advanceTimersByTime(1)
  await expect(tokyo.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: false })
  // Cache the absence of a key in Tokyo, for the next test.
  await expect(tokyo.get('user:2')).resolves.toBeNull()
})

test('each test starts from the seed with every location cache empty', async () => {
  await env.KV.put('user:2', '{"name":"Grace"}')
  // The absence cached by the previous test is gone with the restore.
  await expect(env.KV.location('tokyo').get('feature-flags', 'json')).resolves.toEqual({
    newCheckout: true,
  })
  await expect(env.KV.location('tokyo').get('user:2', 'json')).resolves.toEqual({ name: 'Grace' })
})

test('kvLimits: a second write to one key within a second of fake time is refused', async () => {
  jest.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z') })
  await env.SESSIONS.put('counter', '1')
  await expect(env.SESSIONS.put('counter', '2')).rejects.toThrow(
    new Error('KV PUT failed: 429 Too Many Requests'),
  )
  jest.advanceTimersByTime(1000)
  await expect(env.SESSIONS.put('counter', '3')).resolves.toBeUndefined()
})

test('kvLimits: the writes of the previous test do not count against this one', async () => {
  // The instant of the previous test's last write to the key.
  jest.useFakeTimers({ now: new Date('2030-01-01T00:00:01Z') })
  await expect(env.SESSIONS.put('counter', '1')).resolves.toBeUndefined()
})
