'use strict'

// Simulated eventual consistency (`consistency: 'eventual'`, `location()`), on every backend.

const { NOW_MS, NOW, backends, rejection } = require('./helpers')
const { KV } = require('..')

const MINUTE = 60_000

describe.each(backends)('%s backend', (_name, open) => {
  let now
  let here
  let there
  beforeEach(() => {
    now = NOW_MS
    here = open({ consistency: 'eventual', clock: () => now })
    there = here.location('there')
  })

  test('a location keeps serving what it read for 60 s after another location changed it', async () => {
    await here.put('flag', 'off')
    await expect(there.get('flag')).resolves.toBe('off')
    await here.put('flag', 'on')
    // The writing location sees its write at once; the other keeps its cached answer.
    await expect(here.get('flag')).resolves.toBe('on')
    now += MINUTE - 1
    await expect(there.get('flag')).resolves.toBe('off')
    now += 1
    await expect(there.get('flag')).resolves.toBe('on')
  })

  test('a missing key is cached too: a key created elsewhere stays missing for a while', async () => {
    await expect(there.get('session')).resolves.toBeNull()
    await here.put('session', 'alive')
    await expect(there.get('session')).resolves.toBeNull()
    await expect(there.getWithMetadata('session')).resolves.toMatchObject({ value: null })
    now += MINUTE
    await expect(there.get('session')).resolves.toBe('alive')
  })

  test('a delete elsewhere is not seen until the cached value runs out', async () => {
    await here.put('session', 'alive', { metadata: { user: 1 } })
    await expect(there.getWithMetadata('session')).resolves.toMatchObject({
      value: 'alive',
      metadata: { user: 1 },
    })
    await here.delete('session')
    await expect(here.get('session')).resolves.toBeNull()
    await expect(there.get('session', 'json').catch((error) => error.name)).resolves.toBe(
      'SyntaxError',
    )
    await expect(there.getWithMetadata('session')).resolves.toMatchObject({
      value: 'alive',
      metadata: { user: 1 },
    })
    now += MINUTE
    await expect(there.get('session')).resolves.toBeNull()
  })

  test("the read's cacheTtl sets how long it is cached, and a shorter one shortens it", async () => {
    await here.put('k', 'v1')
    await there.get('k', { cacheTtl: 300 })
    await here.put('k', 'v2')
    now += 2 * MINUTE
    await expect(there.get('k')).resolves.toBe('v1')
    // Read with 30 s: what is cached now runs out 30 s from here.
    await expect(there.get('k', { cacheTtl: 30 })).resolves.toBe('v1')
    now += 29_999
    await expect(there.get('k')).resolves.toBe('v1')
    now += 1
    await expect(there.get('k')).resolves.toBe('v2')
  })

  test('an expiration wins over the cache', async () => {
    await here.put('k', 'v', { expiration: NOW + 90 })
    now += 50_000
    // Both cached past the expiration: the read for 300 s, the page for 60 s.
    await expect(there.get('k', { cacheTtl: 300 })).resolves.toBe('v')
    await expect(there.list()).resolves.toMatchObject({ keys: [{ name: 'k' }] })
    now = (NOW + 90) * 1000
    await expect(there.get('k')).resolves.toBeNull()
    await expect(there.list()).resolves.toMatchObject({ keys: [] })
  })

  test('a location reads its own writes at once, whatever it cached', async () => {
    await expect(there.get('k')).resolves.toBeNull()
    await there.put('k', 'mine')
    await expect(there.get('k')).resolves.toBe('mine')
    await there.delete('k')
    await expect(there.get('k')).resolves.toBeNull()
  })

  test('bulk reads go through the same cache, key by key', async () => {
    await here.put('a', 'a1')
    await expect(there.get(['a', 'b'])).resolves.toEqual(
      new Map([
        ['a', 'a1'],
        ['b', null],
      ]),
    )
    await here.put('a', 'a2')
    await here.put('b', 'b2')
    await here.put('c', 'c2')
    // a and b were cached by the bulk read; c was not read before.
    await expect(there.get(['a', 'b', 'c'])).resolves.toEqual(
      new Map([
        ['a', 'a1'],
        ['b', null],
        ['c', 'c2'],
      ]),
    )
    await expect(there.get('a')).resolves.toBe('a1')
    now += MINUTE
    await expect(there.getWithMetadata(['a', 'b'])).resolves.toEqual(
      new Map([
        ['a', { value: 'a2', metadata: null }],
        ['b', { value: 'b2', metadata: null }],
      ]),
    )
  })

  test('a long value is cached like a short one', async () => {
    const old = 'o'.repeat(300 * 1024)
    await here.put('long', old)
    await expect(there.get('long')).resolves.toBe(old)
    await here.put('long', 'n'.repeat(300 * 1024))
    await expect(there.get('long')).resolves.toBe(old)
    await expect(there.get(['long'])).resolves.toEqual(new Map([['long', old]]))
    expect(Buffer.from(await there.get('long', 'arrayBuffer')).toString()).toBe(old)
  })

  test('a list page is cached for 60 s; a write at the same location refreshes it', async () => {
    await here.put('user:1', '')
    const names = async (kv, options) => (await kv.list(options)).keys.map((key) => key.name)
    await expect(names(there, { prefix: 'user:' })).resolves.toEqual(['user:1'])
    await here.put('user:2', '')
    await expect(names(there, { prefix: 'user:' })).resolves.toEqual(['user:1'])
    await expect(names(here, { prefix: 'user:' })).resolves.toEqual(['user:1', 'user:2'])
    // Another query is another cached answer.
    await expect(names(there, { prefix: 'user' })).resolves.toEqual(['user:1', 'user:2'])
    await there.put('user:3', '')
    await expect(names(there, { prefix: 'user:' })).resolves.toEqual(['user:1', 'user:2', 'user:3'])
    await here.delete('user:1')
    await expect(names(there, { prefix: 'user:' })).resolves.toHaveLength(3)
    now += MINUTE
    await expect(names(there, { prefix: 'user:' })).resolves.toEqual(['user:2', 'user:3'])
  })

  test("cacheStatus says whether the location's cache answered: MISS, then HIT", async () => {
    await here.put('k', 'v', { metadata: 1 })
    await expect(there.getWithMetadata('k')).resolves.toEqual({
      value: 'v',
      metadata: 1,
      cacheStatus: 'MISS',
    })
    await expect(there.getWithMetadata('k', 'arrayBuffer')).resolves.toMatchObject({
      cacheStatus: 'HIT',
    })
    // A missing key has no cacheStatus, as in production.
    await expect(there.getWithMetadata('gone')).resolves.toEqual({
      value: null,
      metadata: null,
      cacheStatus: null,
    })
    await expect(there.list()).resolves.toMatchObject({ cacheStatus: 'MISS' })
    await expect(there.list()).resolves.toMatchObject({ cacheStatus: 'HIT' })
    await expect(there.list({ prefix: 'k' })).resolves.toMatchObject({ cacheStatus: 'MISS' })
    // A value read off the JS thread reports it too.
    await here.put('long', 'l'.repeat(300 * 1024))
    await expect(there.getWithMetadata('long')).resolves.toMatchObject({ cacheStatus: 'MISS' })
    await expect(there.getWithMetadata('long')).resolves.toMatchObject({ cacheStatus: 'HIT' })
  })

  test('clear() and restore() empty the cache of every location', async () => {
    await here.put('k', 'seed')
    const seeded = await here.snapshot()
    await expect(there.get('k')).resolves.toBe('seed')
    await here.clear()
    await expect(there.get('k')).resolves.toBeNull()
    await there.restore(seeded)
    await expect(here.get('k')).resolves.toBe('seed')
    await expect(there.get('k')).resolves.toBe('seed')
  })

  test('a validation error is the same as under strong consistency', async () => {
    await expect(there.get('k', { cacheTtl: 10 })).rejects.toThrow(
      'KV GET failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.',
    )
    await expect(there.get('')).rejects.toThrow(new TypeError('Key name cannot be empty.'))
    await expect(there.get(['k'], { cacheTtl: 10 })).rejects.toThrow('Invalid cache_ttl of 10')
  })

  test('under strong consistency (the default) every location sees every write at once', async () => {
    const strong = open({ clock: () => now })
    const elsewhere = strong.location('elsewhere')
    await expect(elsewhere.get('k')).resolves.toBeNull()
    await strong.put('k', 'v')
    await expect(elsewhere.get('k')).resolves.toBe('v')
    await expect(elsewhere.list()).resolves.toMatchObject({
      keys: [{ name: 'k' }],
      cacheStatus: null,
    })
    await expect(elsewhere.getWithMetadata('k')).resolves.toHaveProperty('cacheStatus', null)
  })
})

describe('location views', () => {
  test('the same name gives the same KV, a KV of the same class', async () => {
    const kv = new KV({ consistency: 'eventual' })
    const tokyo = kv.location('tokyo')
    expect(tokyo).toBeInstanceOf(KV)
    expect(kv.location('tokyo')).toBe(tokyo)
    expect(tokyo.location('tokyo')).toBe(tokyo)
    expect(kv.location('paris')).not.toBe(tokyo)
    expect(tokyo.location('paris')).toBe(kv.location('paris'))
    class Subclass extends KV {}
    expect(new Subclass().location('x')).toBeInstanceOf(Subclass)
    await kv.close()
  })

  test('closing any view closes them all, and the store', async () => {
    const kv = new KV({ consistency: 'eventual' })
    const tokyo = kv.location('tokyo')
    const paris = kv.location('paris')
    await tokyo.close()
    for (const view of [kv, tokyo, paris, kv.invocation()]) {
      expect((await rejection(view.get('k'))).code).toBe('ERR_KV_CLOSED')
    }
    await expect(kv.close()).resolves.toBeUndefined()
    expect(() => kv.location('berlin')).toThrow(expect.objectContaining({ code: 'ERR_KV_CLOSED' }))
  })

  test('thousands of views: each made and dropped cheaply, all closed by one close()', async () => {
    const kv = new KV({ consistency: 'eventual' })
    await kv.put('k', 'v')
    const first = kv.location('L0')
    for (let i = 1; i < 3000; i++) await kv.location(`L${i}`).get('k')
    // Only the 1,024 names used last are kept: an older name gives a new view.
    expect(kv.location('L2999')).toBe(kv.location('L2999'))
    expect(kv.location('L0')).not.toBe(first)
    // close() was quadratic in the number of views (3,000: about 8 s and 1 GB).
    await kv.close()
    // A view let go of by name but still held is closed with the rest.
    expect((await rejection(first.get('k'))).code).toBe('ERR_KV_CLOSED')
  })

  test('the locations of a namespace cache within locationCacheBytes together', async () => {
    const kv = new KV({ consistency: 'eventual', locationCacheBytes: 10_000 })
    const value = 'v'.repeat(4000)
    await kv.bulkPut(['a', 'b', 'c'].map((key) => ({ key, value })))
    const status = async (view, key) => (await view.getWithMetadata(key)).cacheStatus
    const there = kv.location('there')
    expect(await status(there, 'a')).toBe('MISS')
    expect(await status(there, 'b')).toBe('MISS')
    expect(await status(there, 'a')).toBe('HIT')
    // A third would pass the budget: the location drops what it holds, and keeps the third.
    expect(await status(there, 'c')).toBe('MISS')
    expect(await status(there, 'a')).toBe('MISS')
    expect(await status(there, 'c')).toBe('HIT')
    // Another location finds the budget held by "there": room is made there.
    const elsewhere = kv.location('elsewhere')
    expect(await status(elsewhere, 'b')).toBe('MISS')
    expect(await status(elsewhere, 'b')).toBe('HIT')
    expect(await status(there, 'c')).toBe('MISS')
    await kv.close()
    for (const bad of [-1, 1.5, '64MB', Infinity]) {
      expect(() => new KV({ consistency: 'eventual', locationCacheBytes: bad })).toThrow(
        new TypeError(
          'The locationCacheBytes option must be a whole number of bytes (0 caches nothing).',
        ),
      )
    }
    // Nothing cached at all with 0.
    const none = new KV({ consistency: 'eventual', locationCacheBytes: 0 })
    await none.put('k', 'v')
    expect(await status(none.location('x'), 'k')).toBe('MISS')
    expect(await status(none.location('x'), 'k')).toBe('MISS')
    await none.close()
  })

  test('refuses an unknown consistency and a location without a name', () => {
    expect(() => new KV({ consistency: 'weak' })).toThrow(
      new TypeError('The consistency option must be "strong" or "eventual".'),
    )
    const kv = new KV()
    for (const name of ['', undefined, 1]) {
      expect(() => kv.location(name)).toThrow(
        new TypeError('location() takes the name of a location, a non-empty string.'),
      )
    }
  })
})
