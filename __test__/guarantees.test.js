'use strict'

// The guarantees a backend claims (its `supports` in helpers.js, as its capabilities in
// src/store/backend.rs say), each checked on every backend that claims it. A new backend
// declares what it supports where it joins the list, and these run on it.

const { backends, NOW } = require('./helpers')

const persistent = backends.filter(([, , supports]) => supports.persistent)

describe.each(persistent)('%s backend, persistent', (_name, open) => {
  test('what a closed KV wrote, another opened alike reads back whole', async () => {
    const namespace = `kept-${process.pid}-${Math.random().toString(36).slice(2)}`
    const first = open({ namespace })
    await first.put('one', 'v', { metadata: { m: 1 }, expiration: NOW + 600 })
    await first.bulkPut([
      { key: 'many', value: 'AP8=', base64: true },
      { key: 'more', value: 'w', expiration_ttl: 600 },
    ])
    await first.close()
    const second = open({ namespace })
    await expect(second.getWithMetadata('one')).resolves.toMatchObject({
      value: 'v',
      metadata: { m: 1 },
    })
    expect([...new Uint8Array(await second.get('many', 'arrayBuffer'))]).toEqual([0, 255])
    const { keys } = await second.list()
    expect(keys.map((key) => key.name)).toEqual(['many', 'more', 'one'])
    expect(keys[2].expiration).toBe(NOW + 600)
  })
})

// A backend that joins the list without saying what it supports would skip these silently.
test('every backend in the list says whether it is persistent', () => {
  for (const [name, , supports] of backends) {
    expect([name, typeof supports?.persistent]).toEqual([name, 'boolean'])
  }
})
