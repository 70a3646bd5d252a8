'use strict'

// Random hostile arguments at every public method: each call resolves, or fails with an Error
// (thrown synchronously only where production throws: get and getWithMetadata), the process
// survives, and data stored beforehand is unchanged.

const fc = require('fast-check')
const { backends } = require('./helpers')

const RUNS = Number(process.env.KV_FUZZ_RUNS ?? 300)
// A fixed seed keeps CI repeatable; KV_FUZZ_SEED=random (or a number) explores further.
const SEED = process.env.KV_FUZZ_SEED
const seed = SEED === 'random' ? {} : { seed: Number(SEED ?? 20261125) }
const METHODS = [
  'get',
  'getWithMetadata',
  'put',
  'delete',
  'list',
  'bulkPut',
  'dump',
  'snapshot',
  'restore',
]
const SYNC_THROWERS = new Set(['get', 'getWithMetadata'])

const throwingGetter = Object.defineProperty({}, 'type', {
  get() {
    throw new Error('getter says no')
  },
  enumerable: true,
})
const throwingProxy = new Proxy(
  {},
  {
    get() {
      throw new Error('proxy says no')
    },
    has() {
      throw new Error('proxy says no')
    },
    ownKeys() {
      throw new Error('proxy says no')
    },
  },
)
const circular = {}
circular.self = circular

// Values production code would never pass, and a few it would. They are built inside the
// property (from an index), since some of them throw at anyone who inspects them.
const SPECIAL = [
  NaN,
  Infinity,
  -Infinity,
  -0,
  2 ** 31,
  -(2 ** 31) - 1,
  '',
  '.',
  '..',
  'a\ud800',
  'k'.repeat(513),
  Symbol('s'),
  () => 'f',
  throwingGetter,
  throwingProxy,
  { metadata: circular },
  { metadata: 1n },
  { expirationTtl: NaN },
  { expiration: Infinity },
  { limit: -1, prefix: 'p'.repeat(600) },
  { cursor: {} },
  { type: 'json', cacheTtl: 'x' },
  [{ key: 'k', value: 1 }],
  new Uint8Array(0),
  new ArrayBuffer(300_000),
].map((value) => () => value)
SPECIAL.push(() => new ReadableStream({ pull: (c) => c.error(new Error('stream says no')) }))

const MARK = Symbol('special')
const hostile = fc.oneof(
  fc.anything({
    withBigInt: true,
    withBoxedValues: true,
    withMap: true,
    withSet: true,
    withTypedArray: true,
    withSparseArray: true,
    withNullPrototype: true,
    withDate: true,
  }),
  fc.integer({ min: 0, max: SPECIAL.length - 1 }).map((index) => ({ [MARK]: index })),
)
const build = (args) =>
  args.map((arg) => (arg && arg[MARK] !== undefined ? SPECIAL[arg[MARK]]() : arg))

/**
 * Calls `kv[method](...args)` and returns how it failed: `{ threw }` for a synchronous throw,
 * `{ rejected }` for a rejection (null when it resolved).
 */
async function settle(kv, method, args) {
  let pending
  try {
    pending = kv[method](...build(args))
  } catch (error) {
    return { threw: error }
  }
  expect(pending).toBeInstanceOf(Promise)
  return {
    rejected: await pending.then(
      () => null,
      (error) => error,
    ),
  }
}

describe.each(backends)('%s backend', (_name, open) => {
  test('every method survives hostile arguments and leaves stored data alone', async () => {
    const kv = open()
    const kept = Array.from({ length: 10 }, (_, i) => ({ key: `keep:${i}`, value: `value ${i}` }))
    await kv.bulkPut(kept)
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        fc.array(hostile, { maxLength: 3 }),
        async (method, args) => {
          const { threw, rejected } = await settle(kv, method, args)
          if (threw) expect(SYNC_THROWERS.has(method)).toBe(true)
          const error = threw ?? rejected
          if (error !== null) expect(error).toBeInstanceOf(Error)
        },
      ),
      { numRuns: RUNS, ...seed },
    )
    for (const { key, value } of kept) await expect(kv.get(key)).resolves.toBe(value)
  }, 120_000)

  test('a closed namespace fails every call, cleanly', async () => {
    // With valid arguments the failure is ERR_KV_CLOSED (kv.test.js); here, whatever the
    // arguments, no call may succeed and every failure is an Error.
    const kv = open()
    await kv.close()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS, 'clear', 'flush'),
        fc.array(hostile, { maxLength: 2 }),
        async (method, args) => {
          const { threw, rejected } = await settle(kv, method, args)
          if (threw) expect(SYNC_THROWERS.has(method)).toBe(true)
          expect(threw ?? rejected).toBeInstanceOf(Error)
        },
      ),
      { numRuns: Math.ceil(RUNS / 3), ...seed },
    )
  }, 120_000)
})
