'use strict'

// Runs under kv-binding/jest-environment (see the Jest projects in package.json), once with
// memory namespaces and once with sled stores: `env` is there without any setup code.

/* global env */

test('every configured namespace is on the global env', () => {
  expect(Object.keys(env)).toEqual(['KV', 'SESSIONS'])
  expect(Object.prototype.toString.call(env.KV)).toBe('[object KvNamespace]')
})

test('each test starts from the seed', async () => {
  await expect(env.KV.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: true })
  await expect(env.KV.getWithMetadata('user:1', 'json')).resolves.toEqual({
    value: { name: 'Ada' },
    metadata: { role: 'admin' },
    cacheStatus: null,
  })
  expect([...new Uint8Array(await env.KV.get('logo', 'arrayBuffer'))]).toEqual([0, 1, 2, 255])
  await expect(env.SESSIONS.list()).resolves.toEqual({
    keys: [],
    list_complete: true,
    cacheStatus: null,
  })
  // Written here, gone in the next test.
  await env.KV.put('feature-flags', '{}')
  await env.KV.delete('user:1')
  await env.SESSIONS.put('session:new', 'bob')
})

test('writes of the previous test are gone', async () => {
  await expect(env.KV.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: true })
  await expect(env.KV.get('user:1')).resolves.not.toBeNull()
  await expect(env.SESSIONS.get('session:new')).resolves.toBeNull()
})

test('a promise a test forgot to await cannot leak into the next test', () => {
  env.KV.put('leak', 'x'.repeat(1 << 20)) // large: runs on the thread pool, after this test
})

test('so the forgotten write is not visible here', async () => {
  await expect(env.KV.get('leak')).resolves.toBeNull()
})

describe('with fake timers', () => {
  afterEach(() => jest.useRealTimers())

  test('KV time follows jest.setSystemTime and advanceTimersByTime', async () => {
    jest.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z') })
    // The seeded session expires at 2000000000 s (2033-05-18).
    await expect(env.KV.get('session:seeded')).resolves.toBe('alice')
    jest.setSystemTime(2_000_000_000 * 1000)
    await expect(env.KV.get('session:seeded')).resolves.toBeNull()

    jest.setSystemTime(new Date('2030-01-01T00:00:00Z'))
    await env.SESSIONS.put('short', 'lived', { expirationTtl: 60 })
    jest.advanceTimersByTime(60_000)
    await expect(env.SESSIONS.get('short')).resolves.toBeNull()
  })
})

test('values and errors belong to the test realm', async () => {
  expect(await env.KV.get('logo', 'arrayBuffer')).toBeInstanceOf(ArrayBuffer)
  expect(await env.KV.get(['user:1'])).toBeInstanceOf(Map)
  expect(await env.KV.get('logo', 'stream')).toBeInstanceOf(ReadableStream)
  expect(env.KV.get('user:1')).toBeInstanceOf(Promise)
  await expect(env.KV.put('', 'v')).rejects.toThrow(TypeError)
  const list = await env.KV.list()
  expect(list).toStrictEqual({
    keys: [
      { name: 'feature-flags' },
      { name: 'logo' },
      { name: 'session:seeded', expiration: 2000000000 },
      { name: 'user:1', metadata: { role: 'admin' } },
    ],
    list_complete: true,
    cacheStatus: null,
  })
  expect(list.keys).toBeInstanceOf(Array)
})
