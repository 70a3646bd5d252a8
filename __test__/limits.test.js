'use strict'

// Production's limits, enforced with the `limits` option: one write a second per key, and a
// budget of operations per worker invocation.

const { NOW_MS, backends, rejection, streamOf } = require('./helpers')
const { KV } = require('..')

const TOO_MANY_WRITES = 'KV PUT failed: 429 Too Many Requests'
const TOO_MANY_OPERATIONS = 'Too many API requests by single worker invocation.'

describe.each(backends)('%s backend', (_name, open) => {
  let now
  let kv
  beforeEach(() => {
    now = NOW_MS
    kv = open({ limits: true, clock: () => now })
  })

  test('a second put to one key within a second rejects with 429 and leaves the first', async () => {
    await kv.put('counter', '1')
    const error = await rejection(kv.put('counter', '2'))
    expect(error).toStrictEqual(new Error(TOO_MANY_WRITES))
    await expect(kv.get('counter')).resolves.toBe('1')
    // Other keys are not limited, nor is the key a second later.
    await kv.put('other', 'x')
    now += 999
    await expect(kv.put('counter', '3')).rejects.toThrow(TOO_MANY_WRITES)
    now += 1
    await kv.put('counter', '4')
    await expect(kv.get('counter')).resolves.toBe('4')
  })

  test('writes from every location and invocation count, streams and buffers too', async () => {
    await kv.location('elsewhere').put('k', new Uint8Array([1]))
    await expect(kv.invocation().put('k', streamOf(new Uint8Array([2])))).rejects.toThrow(
      TOO_MANY_WRITES,
    )
    await expect(kv.put('k\ud800', 'a')).resolves.toBeUndefined()
    // A lone surrogate and its U+FFFD form are one key.
    await expect(kv.put('k\ufffd', 'b')).rejects.toThrow(TOO_MANY_WRITES)
  })

  test('a put that fails its own checks gets its own error, and is not counted', async () => {
    await kv.put('k', 'v')
    await expect(kv.put('k', 'v', { expirationTtl: 10 })).rejects.toThrow(
      'KV PUT failed: 400 Invalid expiration_ttl of 10.',
    )
    await expect(kv.put('x', 'v', { metadata: 'm'.repeat(1100) })).rejects.toThrow('413')
    await expect(kv.put('x', 'v')).resolves.toBeUndefined()
  })

  test('an invocation may start 1000 operations; the next rejects, and a bulk read is one', async () => {
    const invocation = kv.invocation()
    await invocation.put('k', 'v')
    const keys = Array.from({ length: 100 }, (_, i) => `key${i}`)
    for (let i = 0; i < 998; i++) await invocation.get(i % 2 ? keys : 'k')
    await expect(invocation.list()).resolves.toMatchObject({ list_complete: true })
    for (const operation of [
      () => invocation.get('k'),
      () => invocation.getWithMetadata(['k']),
      () => invocation.put('z', 'v'),
      () => invocation.delete('k'),
      () => invocation.list(),
    ]) {
      const error = await rejection(operation())
      expect(error).toStrictEqual(new Error(TOO_MANY_OPERATIONS))
    }
    // Nothing past the budget was done; another invocation has a budget of its own.
    await expect(kv.invocation().get('z')).resolves.toBeNull()
    await expect(kv.get('k')).resolves.toBe('v')
  })
})

describe('the limits option', () => {
  test('off by default: puts are not rate limited and invocations have no budget', async () => {
    const kv = new KV()
    await kv.put('k', '1')
    await kv.put('k', '2')
    const invocation = kv.invocation()
    for (let i = 0; i < 1001; i++) await invocation.get('k')
    await expect(invocation.get('k')).resolves.toBe('2')
  })

  test('each limit can be chosen', async () => {
    const budgetOnly = new KV({ limits: { writeRate: false, operationsPerInvocation: 2 } })
    const invocation = budgetOnly.invocation()
    await invocation.put('k', '1')
    await invocation.put('k', '2')
    await expect(invocation.get('k')).rejects.toThrow(TOO_MANY_OPERATIONS)
    const rateOnly = new KV({ limits: { operationsPerInvocation: 0 } })
    await rateOnly.put('k', '1')
    await expect(rateOnly.put('k', '2')).rejects.toThrow(TOO_MANY_WRITES)
  })

  test('refuses a limits option it cannot read', () => {
    for (const limits of ['yes', 1, { writeRate: 'yes' }, { operationsPerInvocation: -1 }]) {
      expect(() => new KV({ limits })).toThrow(
        new TypeError(
          'The limits option must be true, false, or { writeRate?: boolean, operationsPerInvocation?: number }.',
        ),
      )
    }
  })
})
