'use strict'

// The diagnostics channel `kv-binding:operation`: each KV operation, once settled, as the
// README documents it (what `serve`'s operations view shows).

const diagnostics = require('node:diagnostics_channel')
const { KV } = require('..')

const CHANNEL = 'kv-binding:operation'

function watch() {
  const seen = []
  const onOperation = (operation) => seen.push(operation)
  diagnostics.subscribe(CHANNEL, onOperation)
  return { seen, stop: () => diagnostics.unsubscribe(CHANNEL, onOperation) }
}

test('each operation is published once it settles, with what it touched and how long it took', async () => {
  const kv = new KV({ namespace: 'watched', consistency: 'eventual' })
  const { seen, stop } = watch()
  try {
    await kv.put('a', 'hello', { metadata: { n: 1 } })
    await kv.get('a')
    await kv.get('a', 'json').catch(() => {})
    await kv.location('NRT').getWithMetadata('a')
    await kv.get(['a', 'b'])
    await kv.list({ prefix: 'a' })
    await kv.bulkPut([{ key: 'b', value: 'xy' }])
    await kv.delete('a')
    await kv.get('missing')
  } finally {
    stop()
  }
  const summary = seen.map(({ op, key, size, keys, location, cacheStatus, error }) => [
    op,
    key,
    size,
    keys,
    location,
    cacheStatus,
    error === null ? null : 'failed',
  ])
  expect(summary).toEqual([
    ['put', 'a', 5, null, null, null, null],
    ['get', 'a', 5, null, null, null, null],
    ['get', 'a', null, null, null, null, 'failed'],
    ['getWithMetadata', 'a', 5, null, 'NRT', 'MISS', null],
    ['get', '2 keys', null, 2, null, null, null],
    ['list', 'a', null, 1, null, 'MISS', null],
    ['bulkPut', '1 entries', null, 1, null, null, null],
    ['delete', 'a', null, null, null, null, null],
    ['get', 'missing', null, null, null, null, null],
  ])
  for (const operation of seen) {
    expect(operation.namespace).toBe('watched')
    expect(operation.ms).toBeGreaterThanOrEqual(0)
    expect(Math.abs(operation.at - Date.now())).toBeLessThan(60_000)
  }
  // A failed read names its error.
  expect(seen[2].error).toMatch(/JSON/)
  await kv.close()
})

test('a call refused at once is published too, and thrown as before', () => {
  const kv = new KV()
  const { seen, stop } = watch()
  try {
    expect(() => kv.get()).toThrow(TypeError)
  } finally {
    stop()
  }
  expect(seen).toHaveLength(1)
  expect(seen[0]).toMatchObject({ op: 'get', error: expect.stringContaining('parameter 1') })
})

test("watching leaves the methods as production's: names, lengths, results", async () => {
  const kv = new KV()
  expect([KV.prototype.get.name, KV.prototype.put.name, KV.prototype.list.name]).toEqual([
    'get',
    'put',
    'list',
  ])
  expect([KV.prototype.get.length, KV.prototype.put.length]).toEqual([2, 3])
  const { stop } = watch()
  try {
    await kv.put('k', 'v')
    await expect(kv.get('k')).resolves.toBe('v')
    await expect(kv.get('k', 'bogus')).rejects.toThrow(TypeError)
  } finally {
    stop()
  }
})
