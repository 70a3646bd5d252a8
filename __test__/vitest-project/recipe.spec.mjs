// The README's recipe for Vitest without the environment: a KV per test file, seeded once,
// put back before every test with snapshot() and restore().
import { KV } from 'kv-binding'
import { beforeAll, beforeEach, expect, test } from 'vitest'

const kv = new KV()
let seeded

beforeAll(async () => {
  await kv.bulkPut([{ key: 'feature-flags', value: '{"newCheckout":true}' }])
  seeded = await kv.snapshot()
})

beforeEach(() => kv.restore(seeded))

test('a test changes the data', async () => {
  await kv.put('feature-flags', '{}')
  await kv.put('extra', 'key')
})

test('the next one starts from the seed', async () => {
  expect(await kv.get('feature-flags', 'json')).toEqual({ newCheckout: true })
  expect(await kv.get('extra')).toBeNull()
})
