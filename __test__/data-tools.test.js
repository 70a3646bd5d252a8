'use strict'

// bulkPut, dump, snapshot/restore, clear and the listPageCap knob, on both backends.

const { NOW_MS, NOW, backends, rejection } = require('./helpers')

describe.each(backends)('%s backend', (_name, open) => {
  let kv
  let now
  beforeEach(() => {
    now = NOW_MS
    kv = open({ clock: () => now })
  })

  describe('bulkPut', () => {
    test('writes entries in the wrangler bulk format', async () => {
      await kv.bulkPut([
        { key: 'text', value: 'hello' },
        { key: 'bytes', value: Buffer.from([0, 255]).toString('base64'), base64: true },
        { key: 'ttl', value: 'v', expiration_ttl: 120, metadata: { m: 1 } },
        { key: 'abs', value: 'v', expiration: NOW + 600 },
      ])
      await expect(kv.get('text')).resolves.toBe('hello')
      expect([...new Uint8Array(await kv.get('bytes', 'arrayBuffer'))]).toEqual([0, 255])
      await expect(kv.list()).resolves.toStrictEqual({
        keys: [
          { name: 'abs', expiration: NOW + 600 },
          { name: 'bytes' },
          { name: 'text' },
          { name: 'ttl', expiration: NOW + 120, metadata: { m: 1 } },
        ],
        list_complete: true,
        cacheStatus: null,
      })
    })

    test('writes nothing when one entry is refused, and names it', async () => {
      await kv.put('existing', 'before')
      const refused = [
        [
          { key: 'ok', value: '1' },
          { key: 'bad', value: '1', expiration_ttl: 30 },
        ],
        [
          { key: 'ok', value: '1' },
          { key: '', value: '1' },
        ],
        [
          { key: 'ok', value: '1' },
          { key: 'existing', value: 'x'.repeat(26214401) },
        ],
        [
          { key: 'ok', value: '1' },
          { key: 'meta', value: '1', metadata: 'm'.repeat(2000) },
        ],
      ]
      const messages = [
        'Entry 1 (key "bad") was refused, so nothing was written: KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.',
        'Entry 1 (key "") was refused, so nothing was written: Key name cannot be empty.',
        'Entry 1 (key "existing") was refused, so nothing was written: KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.',
        'Entry 1 (key "meta") was refused, so nothing was written: KV PUT failed: 413 Metadata length of 2002 exceeds limit of 1024.',
      ]
      for (const [index, entries] of refused.entries()) {
        const error = await rejection(kv.bulkPut(entries))
        expect(error.message).toBe(messages[index])
        expect(error).toBeInstanceOf(index === 1 ? TypeError : Error)
      }
      await expect(kv.get('ok')).resolves.toBeNull()
      await expect(kv.get('existing')).resolves.toBe('before')
    })

    test('refuses malformed entries before reading the rest', async () => {
      const cases = [
        ['not an array', 'bulkPut() takes an array'],
        [[null], 'Entry 0 was refused, so nothing was written: it is not an object.'],
        [
          [{ value: 'v' }],
          'Entry 0 was refused, so nothing was written: its "key" is not a string.',
        ],
        [
          [{ key: 'k', value: 1 }],
          'Entry 0 (key "k") was refused, so nothing was written: its "value" is not a string.',
        ],
        [[{ key: 'k', value: 'v', base64: 'yes' }], 'its "base64" is not a boolean.'],
        ...['not base64!', 'QQ=x', 'QR==', 'A', 'QUJD-_8='].map((value) => [
          [
            { key: 'fine', value: 'QUJD', base64: true },
            { key: 'k', value, base64: true },
          ],
          'Entry 1 (key "k") was refused, so nothing was written: its "value" is not valid base64.',
        ]),
        [[{ key: 'k', value: 'v', metadata: { n: 1n } }], 'Do not know how to serialize a BigInt'],
        [[{ key: 'k', value: 'v', expiration: 2 ** 31 }], 'Value out of range.'],
      ]
      for (const [entries, message] of cases) {
        const error = await rejection(kv.bulkPut(entries))
        expect(error).toBeInstanceOf(TypeError)
        expect(error.message).toContain(message)
      }
      await expect(kv.get('fine')).resolves.toBeNull()
    })

    describe('of an async iterable', () => {
      // More entries than one part (1,024), with keys of every part already there.
      const COUNT = 3000
      async function* entries({ refuseAt, throwAt, wait } = {}) {
        for (let i = 0; i < COUNT; i++) {
          if (i === throwAt) throw new Error('the source broke')
          if (i === refuseAt) yield { key: 'bad', value: 'v', expiration_ttl: 30 }
          else yield { key: `k${i % 2500}`, value: `new ${i}`, metadata: { i } }
          if (wait !== undefined && i === 10) await wait
        }
      }
      const before = async () => {
        await kv.bulkPut([
          { key: 'k5', value: 'old 5' },
          { key: 'k2400', value: 'old 2400', expiration_ttl: 600 },
          { key: 'other', value: 'kept' },
        ])
      }
      const unchanged = async () => {
        await expect(kv.get('k5')).resolves.toBe('old 5')
        await expect(kv.get('k2400')).resolves.toBe('old 2400')
        await expect(kv.get('k1')).resolves.toBeNull()
        await expect(kv.get('k2499')).resolves.toBeNull()
        await expect(kv.get('bad')).resolves.toBeNull()
        await expect(kv.list()).resolves.toMatchObject({
          keys: [{ name: 'k2400', expiration: NOW + 600 }, { name: 'k5' }, { name: 'other' }],
        })
      }

      test('writes every entry, a key given twice getting its last one', async () => {
        await before()
        await kv.bulkPut(entries())
        const dumped = await kv.dump()
        expect(dumped).toHaveLength(2501)
        await expect(kv.get('k5')).resolves.toBe('new 2505')
        await expect(kv.getWithMetadata('k2400')).resolves.toMatchObject({
          value: 'new 2400',
          metadata: { i: 2400 },
        })
        await expect(kv.get('k2499')).resolves.toBe('new 2499')
        await expect(kv.get('other')).resolves.toBe('kept')
        expect(dumped.find((entry) => entry.key === 'k2400').expiration).toBeUndefined()
      })

      test('writes nothing when an entry of a later part is refused, and names it', async () => {
        await before()
        const error = await rejection(kv.bulkPut(entries({ refuseAt: 2700 })))
        expect(error.message).toBe(
          'Entry 2700 (key "bad") was refused, so nothing was written: KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.',
        )
        await unchanged()
        const malformed = (async function* () {
          for (let i = 0; i < 2000; i++) yield { key: `k${i}`, value: 'v' }
          yield { key: 'k', value: 1 }
        })()
        const refused = await rejection(kv.bulkPut(malformed))
        expect(refused).toBeInstanceOf(TypeError)
        expect(refused.message).toBe(
          'Entry 2000 (key "k") was refused, so nothing was written: its "value" is not a string.',
        )
        await unchanged()
      })

      test('writes nothing when the iterable throws, and rejects with its error', async () => {
        await before()
        await expect(kv.bulkPut(entries({ throwAt: 2900 }))).rejects.toThrow('the source broke')
        await unchanged()
        await kv.bulkPut(entries())
        await expect(kv.get('k5')).resolves.toBe('new 2505')
      })

      test('takes each entry as it is when it arrives, though the caller reuses the object', async () => {
        const reused = { key: '', value: '' }
        await kv.bulkPut(
          (async function* () {
            for (let i = 0; i < 1500; i++) {
              reused.key = `r${i}`
              reused.value = `value ${i}`
              yield reused
            }
          })(),
        )
        const dumped = await kv.dump()
        expect(dumped).toHaveLength(1500)
        await expect(kv.get('r0')).resolves.toBe('value 0')
        await expect(kv.get('r1499')).resolves.toBe('value 1499')
      })

      test('holds up no read while its entries arrive, and the writes after it', async () => {
        let arrive
        const wait = new Promise((resolve) => (arrive = resolve))
        await kv.put('k3', 'before')
        const writing = kv.bulkPut(entries({ wait }))
        const later = kv.put('k3', 'after')
        await expect(kv.get('other')).resolves.toBeNull()
        await expect(kv.list({ prefix: 'zzz' })).resolves.toMatchObject({ keys: [] })
        arrive()
        await writing
        await later
        await expect(kv.get('k3')).resolves.toBe('after')
        await expect(kv.get('k600')).resolves.toBe('new 600')
      })
    })

    test('takes base64 with or without padding', async () => {
      await kv.bulkPut([
        { key: 'padded', value: 'QUI=', base64: true },
        { key: 'unpadded', value: 'QUI', base64: true },
        { key: 'empty', value: '', base64: true },
      ])
      await expect(kv.get(['padded', 'unpadded', 'empty'])).resolves.toEqual(
        new Map([
          ['padded', 'AB'],
          ['unpadded', 'AB'],
          ['empty', ''],
        ]),
      )
    })
  })

  describe('dump', () => {
    test('rejects, never throws, when reading its options throws', async () => {
      const options = {
        get onDamaged() {
          throw new Error('a getter says no')
        },
      }
      let pending
      expect(() => (pending = kv.dump(options))).not.toThrow()
      await expect(pending).rejects.toThrow('a getter says no')
      await expect(kv.dump({ onDamaged: 1 })).rejects.toThrow(TypeError)
    })

    test('gives every live entry in the format bulkPut takes, so it recreates a namespace', async () => {
      await kv.put('text', 'hello', { metadata: { m: [1] } })
      await kv.put('bytes', new Uint8Array([0, 128, 255]))
      await kv.put('ttl', 'v', { expirationTtl: 3600 })
      await kv.put('gone', 'v', { expirationTtl: 60 })
      now += 61_000
      const dumped = await kv.dump()
      expect(dumped).toStrictEqual([
        { key: 'bytes', value: 'AID/', base64: true },
        { key: 'text', value: 'hello', metadata: { m: [1] } },
        { key: 'ttl', value: 'v', expiration: NOW + 3600 },
      ])
      const copy = open({ clock: () => now })
      await copy.bulkPut(dumped)
      await expect(copy.dump()).resolves.toStrictEqual(dumped)
    })

    test('an empty namespace dumps to an empty array', async () => {
      await expect(kv.dump()).resolves.toEqual([])
    })
  })

  describe('snapshot and restore', () => {
    test('restore brings back exactly what the snapshot held', async () => {
      await kv.put('kept', 'v1', { metadata: { m: 1 }, expirationTtl: 600 })
      await kv.put('changed', 'before')
      await kv.put('large', 'L'.repeat(400_000))
      const snapshot = await kv.snapshot()
      expect(snapshot.size).toBe(3)
      await kv.put('changed', 'after')
      await kv.put('added', 'new')
      await kv.delete('kept')
      await kv.delete('large')
      await kv.restore(snapshot)
      await expect(kv.list()).resolves.toStrictEqual({
        keys: [
          { name: 'changed' },
          { name: 'kept', expiration: NOW + 600, metadata: { m: 1 } },
          { name: 'large' },
        ],
        list_complete: true,
        cacheStatus: null,
      })
      await expect(kv.get('changed')).resolves.toBe('before')
      await expect(kv.get('large')).resolves.toBe('L'.repeat(400_000))
      // A snapshot can be restored again, and into another namespace.
      await kv.clear()
      await kv.restore(snapshot)
      await expect(kv.get('kept')).resolves.toBe('v1')
      const other = open()
      await other.restore(snapshot)
      await expect(other.get('changed')).resolves.toBe('before')
    })

    test('restore waits for operations issued before it', async () => {
      const snapshot = await kv.snapshot()
      const late = kv.put('late', 'x'.repeat(1 << 20))
      await kv.restore(snapshot)
      await late
      await expect(kv.get('late')).resolves.toBeNull()
    })

    test('restore takes only snapshots', async () => {
      await expect(kv.restore({ size: 1 })).rejects.toThrow(
        new TypeError('restore() takes a snapshot made by snapshot().'),
      )
    })
  })

  test('clear deletes every key', async () => {
    await kv.put('a', '1')
    await kv.put('b', 'x'.repeat(300_000))
    await kv.clear()
    await expect(kv.list()).resolves.toMatchObject({ keys: [], list_complete: true })
    await expect(kv.get('b')).resolves.toBeNull()
    await kv.put('a', 'again')
    await expect(kv.get('a')).resolves.toBe('again')
  })

  describe('listPageCap', () => {
    test('caps pages so code that ignores the cursor misses keys with only 3 of them', async () => {
      const capped = open({ listPageCap: 2 })
      for (const key of ['a', 'b', 'c']) await capped.put(key, 'v')
      const first = await capped.list()
      expect(first.keys.map((k) => k.name)).toEqual(['a', 'b'])
      expect(first.list_complete).toBe(false)
      const second = await capped.list({ cursor: first.cursor, limit: 1000 })
      expect(second.keys.map((k) => k.name)).toEqual(['c'])
      expect(second.list_complete).toBe(true)
      expect((await capped.list({ limit: 1 })).keys).toHaveLength(1)
      await expect(capped.list({ limit: 1001 })).rejects.toThrow('Invalid key_count_limit of 1001')
    })

    test('must be a whole number from 1 to 1000, never wrapped into range', async () => {
      for (const listPageCap of [0, -1, 1.5, '2', 1001, 2 ** 32 + 1, Infinity, NaN]) {
        expect(() => open({ listPageCap })).toThrow(
          new TypeError('The listPageCap option must be a whole number of keys from 1 to 1000.'),
        )
      }
      const widest = open({ listPageCap: 1000 })
      await widest.bulkPut(Array.from({ length: 1001 }, (_, i) => ({ key: `k${i}`, value: 'v' })))
      expect((await widest.list()).keys).toHaveLength(1000)
    })
  })
})
