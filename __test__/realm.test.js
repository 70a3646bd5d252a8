'use strict'

// Results and errors belong to the caller's realm, and the default clock follows Jest's fake
// timers.

const vm = require('node:vm')
const { KV, forRealm } = require('..')

describe('with Jest fake timers', () => {
  afterEach(() => jest.useRealTimers())

  test('setSystemTime and advanceTimersByTime move KV time', async () => {
    jest.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z') })
    const kv = new KV()
    await kv.put('session', 'alive', { expirationTtl: 60 })
    jest.advanceTimersByTime(59_999)
    await expect(kv.get('session')).resolves.toBe('alive')
    jest.advanceTimersByTime(1)
    await expect(kv.get('session')).resolves.toBeNull()

    jest.setSystemTime(new Date('2030-01-01T00:00:00Z'))
    const now = Math.floor(Date.now() / 1000)
    await expect(kv.put('k', 'v', { expiration: now + 59 })).rejects.toThrow(
      `Invalid expiration of ${now + 59}. Expiration times must be at least 60 seconds in the future.`,
    )
  })
})

describe('forRealm', () => {
  const context = vm.createContext({})
  const realm = vm.runInContext('globalThis', context)
  const RealmKV = forRealm(realm)

  test('returns one class per realm', () => {
    expect(forRealm(realm)).toBe(RealmKV)
    expect(forRealm(globalThis)).toBe(KV)
  })

  test('builds results, promises and errors with the realm constructors', async () => {
    const kv = new RealmKV()
    await kv.put('json', '{"a":1}')
    const promise = kv.get('json', 'arrayBuffer')
    expect(promise).toBeInstanceOf(realm.Promise)
    const buffer = await promise
    expect(buffer).toBeInstanceOf(realm.ArrayBuffer)
    expect(buffer).not.toBeInstanceOf(ArrayBuffer)
    expect(await kv.get('json', 'json')).toBeInstanceOf(realm.Object)

    const typeError = await kv.put('', 'v').catch((e) => e)
    expect(typeError).toBeInstanceOf(realm.TypeError)
    const error = await kv.put('k'.repeat(513), 'v').catch((e) => e)
    expect(error).toBeInstanceOf(realm.Error)
    expect(error).not.toBeInstanceOf(Error)
    expect(() => kv.get()).toThrow(realm.TypeError)
  })

  test('reads the realm clock, so a fake Date in the realm moves KV time', async () => {
    const kv = new RealmKV()
    realm.Date = { now: () => 2_000_000_000_000 }
    await kv.put('k', 'v', { expirationTtl: 60 })
    realm.Date = { now: () => 2_000_000_060_000 }
    await expect(kv.get('k')).resolves.toBeNull()
  })
})
