'use strict'

// getWithMetadata and bulk reads, as production does them, on both backends.

const { NOW_MS, backends, rejection, readAll } = require('./helpers')

const MiB = 1024 * 1024

describe.each(backends)('%s backend', (_name, open) => {
  let kv
  let now
  beforeEach(() => {
    now = NOW_MS
    kv = open({ clock: () => now })
  })

  describe('getWithMetadata', () => {
    test('returns value, parsed metadata and a null cacheStatus', async () => {
      await kv.put('key', 'value', { metadata: { testing: true } })
      await expect(kv.getWithMetadata('key')).resolves.toStrictEqual({
        value: 'value',
        metadata: { testing: true },
        cacheStatus: null,
      })
    })

    test('reads every type, given as a string or in options', async () => {
      await kv.put('key', '{"n":1}', { metadata: 'meta' })
      await expect(kv.getWithMetadata('key', 'json')).resolves.toMatchObject({
        value: { n: 1 },
        metadata: 'meta',
      })
      await expect(
        kv.getWithMetadata('key', { type: 'text', cacheTtl: 30 }),
      ).resolves.toMatchObject({ value: '{"n":1}' })
      const buffer = await kv.getWithMetadata('key', 'arrayBuffer')
      expect(buffer.value).toBeInstanceOf(ArrayBuffer)
      expect(Buffer.from(buffer.value).toString()).toBe('{"n":1}')
      const stream = await kv.getWithMetadata('key', { type: 'stream' })
      expect(stream.value).toBeInstanceOf(ReadableStream)
      expect((await readAll(stream.value)).toString()).toBe('{"n":1}')
      expect(stream.metadata).toBe('meta')
    })

    test('a key without metadata has metadata null', async () => {
      await kv.put('key', 'value')
      await expect(kv.getWithMetadata('key')).resolves.toStrictEqual({
        value: 'value',
        metadata: null,
        cacheStatus: null,
      })
    })

    test('missing and expired keys give all-null results, not null', async () => {
      const empty = { value: null, metadata: null, cacheStatus: null }
      await expect(kv.getWithMetadata('missing')).resolves.toStrictEqual(empty)
      await kv.put('ttl', 'v', { expirationTtl: 60, metadata: { m: 1 } })
      now += 60_000
      await expect(kv.getWithMetadata('ttl')).resolves.toStrictEqual(empty)
      await expect(kv.getWithMetadata('missing', 'bogus')).resolves.toStrictEqual(empty)
    })

    test('falsy values and metadata are kept', async () => {
      await kv.put('empty', '', { metadata: 0 })
      await kv.put('false', 'false', { metadata: false })
      await kv.put('blank', '0', { metadata: '' })
      await expect(kv.getWithMetadata('empty')).resolves.toMatchObject({ value: '', metadata: 0 })
      await expect(kv.getWithMetadata('false', 'json')).resolves.toMatchObject({
        value: false,
        metadata: false,
      })
      await expect(kv.getWithMetadata('blank', 'json')).resolves.toMatchObject({
        value: 0,
        metadata: '',
      })
    })

    test('metadata goes through JSON: undefined members drop, NaN becomes null', async () => {
      await kv.put('key', 'v', { metadata: { a: undefined, b: 1, d: new Date(0) } })
      await expect(kv.getWithMetadata('key')).resolves.toMatchObject({
        metadata: { b: 1, d: '1970-01-01T00:00:00.000Z' },
      })
      await kv.put('nan', 'v', { metadata: NaN })
      await expect(kv.getWithMetadata('nan')).resolves.toMatchObject({ metadata: null })
    })

    test('a put without metadata clears earlier metadata', async () => {
      await kv.put('key', 'v1', { metadata: { old: true } })
      await kv.put('key', 'v2')
      await expect(kv.getWithMetadata('key')).resolves.toMatchObject({
        value: 'v2',
        metadata: null,
      })
    })

    test('large values come with their metadata', async () => {
      const large = 'y'.repeat(MiB)
      await kv.put('large', large, { metadata: { size: 'large' } })
      await expect(kv.getWithMetadata('large')).resolves.toStrictEqual({
        value: large,
        metadata: { size: 'large' },
        cacheStatus: null,
      })
      const bytes = await kv.getWithMetadata('large', 'arrayBuffer')
      expect(bytes.value.byteLength).toBe(MiB)
      expect(bytes.metadata).toEqual({ size: 'large' })
    })

    test('validates keys, types and cacheTtl as get does', async () => {
      await kv.put('key', 'v')
      await expect(kv.getWithMetadata('')).rejects.toThrow(
        new TypeError('Key name cannot be empty.'),
      )
      await expect(kv.getWithMetadata('k'.repeat(513))).rejects.toThrow(
        'KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.',
      )
      await expect(kv.getWithMetadata('key', 'bogus')).rejects.toThrow(TypeError)
      await expect(kv.getWithMetadata('key', { cacheTtl: 10 })).rejects.toThrow(
        'KV GET failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.',
      )
      expect(() => kv.getWithMetadata('key', { cacheTtl: 2 ** 31 })).toThrow(TypeError)
      expect(() => kv.getWithMetadata()).toThrow(
        new TypeError(
          "Failed to execute 'getWithMetadata' on 'KvNamespace': parameter 1 is not of type 'Array or string'.",
        ),
      )
    })
  })

  describe('bulk get', () => {
    test('returns a Map in request order, with null for missing keys', async () => {
      await kv.put('key1', 'value1')
      await kv.put('key3', 'value3')
      const result = await kv.get(['key3', 'key2', 'key1'])
      expect(result).toBeInstanceOf(Map)
      expect([...result]).toEqual([
        ['key3', 'value3'],
        ['key2', null],
        ['key1', 'value1'],
      ])
      await expect(kv.get(['key1'], 'text')).resolves.toEqual(new Map([['key1', 'value1']]))
      await expect(kv.get(['key1'], { type: 'text', cacheTtl: 30 })).resolves.toEqual(
        new Map([['key1', 'value1']]),
      )
    })

    test('parses JSON values, and fails whole when one is not JSON', async () => {
      await kv.put('a', '{"x":1}')
      await kv.put('b', '[2]')
      await kv.put('text', 'hello')
      await expect(kv.get(['a', 'b', 'missing'], 'json')).resolves.toEqual(
        new Map([
          ['a', { x: 1 }],
          ['b', [2]],
          ['missing', null],
        ]),
      )
      await expect(kv.get(['a', 'text'], { type: 'json' })).rejects.toThrow(
        new Error(
          'KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value',
        ),
      )
    })

    test('only text and json types are allowed', async () => {
      for (const type of ['arrayBuffer', 'stream', 'invalid']) {
        await expect(kv.get(['a'], type)).rejects.toThrow(
          new Error(`KV GET_BULK failed: 400 "${type}" is not a valid type. Use "json" or "text"`),
        )
        await expect(kv.getWithMetadata(['a'], { type })).rejects.toThrow(
          `"${type}" is not a valid type`,
        )
      }
    })

    test('asks for 1 to 100 keys', async () => {
      const keys = Array.from({ length: 101 }, (_, i) => `key${i}`)
      await expect(kv.get(keys)).rejects.toThrow(
        new Error('KV GET_BULK failed: 400 You can request a maximum of 100 keys'),
      )
      await expect(kv.get(keys.slice(0, 100))).resolves.toHaveProperty('size', 100)
      await expect(kv.get([])).rejects.toThrow(
        new Error('KV GET_BULK failed: 400 You must request a minimum of 1 key'),
      )
    })

    test('refuses a huge array before converting its elements', async () => {
      // Converting each of these would take seconds and gigabytes before the refusal.
      for (const keys of [new Array(1e8), new Array(2 ** 32 - 1)]) {
        await expect(kv.get(keys)).rejects.toThrow('You can request a maximum of 100 keys')
        await expect(kv.getWithMetadata(keys)).rejects.toThrow('maximum of 100 keys')
      }
    })

    test('checks each key with the service messages, in order', async () => {
      const bulk = (keys, options) => rejection(kv.get(keys, options))
      expect((await bulk(['ok', ''])).message).toBe(
        'KV GET_BULK failed: 400 Key names must not be empty',
      )
      expect((await bulk(['.'])).message).toBe(
        'KV GET_BULK failed: 400 Illegal key name ".". Please use a different name.',
      )
      expect((await bulk(['..'])).message).toBe(
        'KV GET_BULK failed: 400 Illegal key name "..". Please use a different name.',
      )
      expect((await bulk(['k'.repeat(513)])).message).toBe(
        'KV GET_BULK failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.',
      )
      expect((await bulk(['a'], { cacheTtl: 10 })).message).toBe(
        'KV GET_BULK failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.',
      )
      expect((await bulk([''], { cacheTtl: 10 })).message).toContain('Key names must not be empty')
      expect((await bulk([''], 'stream')).message).toContain('"stream" is not a valid type')
      expect(await bulk([''])).not.toBeInstanceOf(TypeError)
    })

    test('the values together may be at most 25 MiB', async () => {
      const half = 'h'.repeat(13 * MiB)
      await kv.put('one', half)
      await kv.put('two', half)
      await expect(kv.get(['one', 'two'])).rejects.toThrow(
        new Error('KV GET_BULK failed: 413 Total size of request exceeds the limit of 25MB'),
      )
      const single = await kv.get(['one', 'missing'])
      expect(single.get('one')).toBe(half)
      // Counted in UTF-16 units: 13 MiB of three-byte characters is only 13/3 MiB of them.
      const wide = '€'.repeat((13 * MiB) / 3)
      await kv.put('wide', wide)
      await expect(kv.get(['wide', 'one'])).resolves.toHaveProperty('size', 2)
    })

    test('expired keys read as null', async () => {
      await kv.put('ttl', 'v', { expirationTtl: 60 })
      now += 60_000
      await expect(kv.get(['ttl'])).resolves.toEqual(new Map([['ttl', null]]))
    })

    test('duplicate keys collapse into one entry at the first position', async () => {
      await kv.put('a', '1')
      await kv.put('b', '2')
      const result = await kv.get(['a', 'b', 'a'])
      expect([...result.keys()]).toEqual(['a', 'b'])
    })

    test('reads keys one by one in request order: the first failure in that order is the error', async () => {
      await kv.put('text', 'not json')
      const bulk = (keys, options) => rejection(kv.get(keys, options))
      const tooLong = 'k'.repeat(513)
      // A value that is not JSON, read before the bad key, is what fails.
      expect((await bulk(['text', tooLong], 'json')).message).toBe(
        'KV GET_BULK failed: 400 At least one of the requested keys corresponds to a non-json value',
      )
      expect((await bulk(['text', ''], 'json')).message).toContain('non-json value')
      // A bad key before it fails first.
      expect((await bulk([tooLong, 'text'], 'json')).message).toBe(
        'KV GET_BULK failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.',
      )
      expect((await bulk(['text'], { type: 'json', cacheTtl: 10 })).message).toContain(
        'Invalid cache_ttl of 10',
      )
      // The total size is checked after every key.
      const half = 'h'.repeat(13 * MiB)
      await kv.put('one', half)
      await kv.put('two', half)
      expect((await bulk(['one', 'two', '.'])).message).toContain('Illegal key name "."')
    })

    test('a key with a lone surrogate comes back as its U+FFFD form, as the service sends it', async () => {
      await kv.put('a\ud800b', 'surrogate', { metadata: 1 })
      await expect(kv.get(['a\ud800b', 'c\udc00'])).resolves.toEqual(
        new Map([
          ['a\ufffdb', 'surrogate'],
          ['c\ufffd', null],
        ]),
      )
      // The two spellings of one key are one entry of the Map.
      await expect(kv.getWithMetadata(['a\ufffdb', 'a\ud800b'])).resolves.toEqual(
        new Map([['a\ufffdb', { value: 'surrogate', metadata: 1 }]]),
      )
    })

    test('keys that look like array indices are left out, unless bulkIndexKeys is "keep"', async () => {
      await kv.put('0', 'zero')
      await kv.put('42', 'forty-two')
      await kv.put('a', 'hello')
      await expect(kv.get(['b-key', '42', 'a', '0', '007'])).resolves.toEqual(
        new Map([
          ['b-key', null],
          ['a', 'hello'],
          ['007', null],
        ]),
      )
      const keeping = open({ bulkIndexKeys: 'keep' })
      await keeping.put('42', 'forty-two')
      await expect(keeping.get(['42'])).resolves.toEqual(new Map([['42', 'forty-two']]))
      expect(() => open({ bulkIndexKeys: 'maybe' })).toThrow(TypeError)
    })

    test('keys are converted with ToString', async () => {
      await kv.put('true', 'yes')
      await expect(kv.get([true, 'x'])).resolves.toEqual(
        new Map([
          ['true', 'yes'],
          ['x', null],
        ]),
      )
    })

    test('getWithMetadata maps found keys to { value, metadata } and missing ones to null', async () => {
      await kv.put('object', 'v1', { metadata: { m: 1 } })
      await kv.put('number', 'v2', { metadata: 123 })
      await kv.put('plain', 'v3')
      await kv.put('empty', '', { metadata: { kept: true } })
      await kv.put('zero', '0', { metadata: 'zero' })
      const text = await kv.getWithMetadata(['object', 'number', 'plain', 'empty', 'missing'])
      expect(text).toBeInstanceOf(Map)
      expect([...text]).toStrictEqual([
        ['object', { value: 'v1', metadata: { m: 1 } }],
        ['number', { value: 'v2', metadata: 123 }],
        ['plain', { value: 'v3', metadata: null }],
        ['empty', { value: '', metadata: { kept: true } }],
        ['missing', null],
      ])
      const json = await kv.getWithMetadata(['zero'], 'json')
      expect(json.get('zero')).toStrictEqual({ value: 0, metadata: 'zero' })
    })

    test('a stored JSON null maps to null in a bulk json read, metadata or not', async () => {
      // Miniflare builds { value, metadata } only for a value that is not null.
      await kv.put('null', 'null', { metadata: { m: 1 } })
      await kv.put('zero', '0', { metadata: { m: 2 } })
      const json = await kv.getWithMetadata(['null', 'zero'], 'json')
      expect([...json]).toStrictEqual([
        ['null', null],
        ['zero', { value: 0, metadata: { m: 2 } }],
      ])
      // As text it is the four letters, and kept; a single read keeps its metadata.
      const text = await kv.getWithMetadata(['null'])
      expect(text.get('null')).toStrictEqual({ value: 'null', metadata: { m: 1 } })
      await expect(kv.getWithMetadata('null', 'json')).resolves.toStrictEqual({
        value: null,
        metadata: { m: 1 },
        cacheStatus: null,
      })
      await expect(kv.get(['null'], 'json')).resolves.toStrictEqual(new Map([['null', null]]))
    })

    test('large values are read too', async () => {
      const large = 'L'.repeat(2 * MiB)
      await kv.put('large', large, { metadata: { big: true } })
      const result = await kv.getWithMetadata(['large', 'missing'])
      expect(result.get('large')).toStrictEqual({ value: large, metadata: { big: true } })
      expect(result.get('missing')).toBeNull()
    })
  })
})
