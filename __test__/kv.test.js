'use strict'

// The get/put/delete contract of production Workers KV, run against both backends.

const { NOW_MS, NOW, backends, rejection, streamOf, readAll } = require('./helpers')

const MiB = 1024 * 1024

// A full garbage collection, here where Jest does not expose `gc`: external strings whose
// bytes were freed would read wrong after it.
function collectGarbage() {
  require('node:v8').setFlagsFromString('--expose-gc')
  require('node:vm').runInNewContext('gc')()
}
const MAX_VALUE = 25 * MiB
const INT32_RANGE = 'Value out of range. Must be between -2147483648 and 2147483647 (inclusive).'
const UNKNOWN_TYPE =
  'Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".'
const BODY_TYPE =
  'KV put() accepts only strings, ArrayBuffers, ArrayBufferViews, and ReadableStreams as values.'

describe.each(backends)('%s backend', (_name, open) => {
  let kv
  let now
  beforeEach(() => {
    now = NOW_MS
    kv = open({ clock: () => now })
  })

  describe('get', () => {
    test('returns the stored string when no type is given', async () => {
      await kv.put('key', 'value')
      await expect(kv.get('key')).resolves.toBe('value')
    })

    test('returns null for a missing key, whatever the type', async () => {
      for (const type of [undefined, 'text', 'json', 'arrayBuffer', 'stream']) {
        await expect(kv.get('missing', type)).resolves.toBeNull()
        await expect(kv.get('missing', { type })).resolves.toBeNull()
      }
    })

    test('reads text, json, arrayBuffer and stream, given as a string or in options', async () => {
      await kv.put('json', '{"a":[1,2]}')
      for (const type of ['text', { type: 'text' }, {}, null]) {
        await expect(kv.get('json', type)).resolves.toBe('{"a":[1,2]}')
      }
      await expect(kv.get('json', 'json')).resolves.toEqual({ a: [1, 2] })
      await expect(kv.get('json', { type: 'json', cacheTtl: 60 })).resolves.toEqual({ a: [1, 2] })
      const buffer = await kv.get('json', 'arrayBuffer')
      expect(buffer).toBeInstanceOf(ArrayBuffer)
      expect(Buffer.from(buffer).toString()).toBe('{"a":[1,2]}')
      const stream = await kv.get('json', { type: 'stream' })
      expect(stream).toBeInstanceOf(ReadableStream)
      expect((await readAll(stream)).toString()).toBe('{"a":[1,2]}')
    })

    test('returns exactly the stored bytes, including ones that are not UTF-8', async () => {
      const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255])
      await kv.put('bytes', bytes)
      expect(new Uint8Array(await kv.get('bytes', 'arrayBuffer'))).toEqual(bytes)
      await expect(kv.get('bytes')).resolves.toBe('\u0000\u0001\u0002\u007f\ufffd\ufffd\ufffd')
    })

    test('a stream read yields the bytes in one chunk, then done', async () => {
      await kv.put('three', new Uint8Array([1, 2, 3]))
      const reader = (await kv.get('three', 'stream')).getReader()
      const first = await reader.read()
      expect(first.done).toBe(false)
      expect(first.value).toBeInstanceOf(Uint8Array)
      expect([...first.value]).toEqual([1, 2, 3])
      await expect(reader.read()).resolves.toEqual({ done: true, value: undefined })
    })

    test('empty values read as empty, never as null', async () => {
      await kv.put('empty', '')
      await expect(kv.get('empty')).resolves.toBe('')
      expect((await kv.get('empty', 'arrayBuffer')).byteLength).toBe(0)
      expect((await readAll(await kv.get('empty', 'stream'))).length).toBe(0)
    })

    test('json of a value that is not JSON rejects with the SyntaxError of JSON.parse', async () => {
      await kv.put('text', 'hello')
      await kv.put('empty', '')
      const error = await rejection(kv.get('text', 'json'))
      expect(error).toBeInstanceOf(SyntaxError)
      expect(error.message).toBe('Unexpected token \'h\', "hello" is not valid JSON')
      await expect(kv.get('empty', 'json')).rejects.toThrow(
        new SyntaxError('Unexpected end of JSON input'),
      )
    })

    test('bytes that are not UTF-8 read as json fail with the text the WHATWG decoder makes', async () => {
      // A truncated 4-byte sequence, an encoded surrogate, an overlong form and a truncated
      // 3-byte sequence: one U+FFFD per maximal subpart, as workerd's decoder replaces them.
      // After a '{', so that the parse fails at the first replacement.
      const bytes = Buffer.from('7bf09f9841eda080c0afe282', 'hex')
      const decoded = '{\ufffdA\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd'
      let expected
      try {
        JSON.parse(decoded)
      } catch (error) {
        expected = error.message
      }
      // In-line, and long enough to be read off the JS thread.
      const long = Buffer.concat([bytes, Buffer.alloc(300 * 1024, 0x20)])
      for (const value of [bytes, long]) {
        await kv.put('bytes', value)
        await expect(kv.get('bytes')).resolves.toBe(
          value === bytes ? decoded : `${decoded}${' '.repeat(300 * 1024)}`,
        )
        const error = await rejection(kv.get('bytes', 'json'))
        expect(error).toBeInstanceOf(SyntaxError)
        expect(error.message).toBe(expected)
        const withMetadata = await rejection(kv.getWithMetadata('bytes', 'json'))
        expect(withMetadata.message).toBe(expected)
      }
    })

    test('an unknown type rejects for a stored key and resolves null for a missing one', async () => {
      await kv.put('key', 'value')
      const error = await rejection(kv.get('key', 'map'))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toBe(UNKNOWN_TYPE)
      await expect(kv.get('key', { type: 'bogus' })).rejects.toThrow(UNKNOWN_TYPE)
      await expect(kv.get('missing', 'bogus')).resolves.toBeNull()
    })

    test('cacheTtl is checked before the lookup and otherwise ignored', async () => {
      await kv.put('key', 'value')
      for (const cacheTtl of [30, 60, 30.9, '45', 2147483647]) {
        await expect(kv.get('key', { cacheTtl })).resolves.toBe('value')
      }
      const message = 'KV GET failed: 400 Invalid cache_ttl of 10. Cache TTL must be at least 30.'
      await expect(kv.get('missing', { cacheTtl: 10 })).rejects.toThrow(new Error(message))
      await expect(kv.get('key', { cacheTtl: 29.9 })).rejects.toThrow('Invalid cache_ttl of 29.')
      await expect(kv.get('key', { cacheTtl: 'not a number' })).rejects.toThrow(
        'KV GET failed: 400 Invalid cache_ttl of 0. Cache TTL must be at least 30.',
      )
    })

    test('a cacheTtl outside int32 throws synchronously', () => {
      expect(() => kv.get('key', { cacheTtl: 2 ** 31 })).toThrow(new TypeError(INT32_RANGE))
      expect(() => kv.get('key', { cacheTtl: -(2 ** 31) - 1 })).toThrow(TypeError)
    })

    test('without arguments it throws a TypeError synchronously', () => {
      expect(() => kv.get()).toThrow(
        new TypeError(
          "Failed to execute 'get' on 'KvNamespace': parameter 1 is not of type 'string or Array'.",
        ),
      )
    })
  })

  describe('keys', () => {
    const byMethod = {
      get: (key) => kv.get(key),
      getWithMetadata: (key) => kv.getWithMetadata(key),
      put: (key) => kv.put(key, 'value'),
      delete: (key) => kv.delete(key),
    }
    const opName = { get: 'GET', getWithMetadata: 'GET', put: 'PUT', delete: 'DELETE' }

    test('keys of every length around 256 UTF-8 bytes, ending in characters of 1 to 4 bytes, round-trip whole', async () => {
      // Short strings cross to the native side through a 256-byte buffer: a character that
      // would straddle its end must not be cut off.
      const keys = []
      for (let length = 248; length <= 262; length++) {
        for (const last of ['a', 'é', '€', '😀', '\ud800']) {
          const tail = Buffer.byteLength(last === '\ud800' ? '\ufffd' : last)
          keys.push('k'.repeat(length - tail) + last)
        }
      }
      for (const key of keys) await kv.put(key, key)
      const stored = keys.map((key) => key.replace('\ud800', '\ufffd'))
      for (let i = 0; i < keys.length; i++) {
        await expect(kv.get(keys[i])).resolves.toBe(stored[i])
      }
      const listed = (await kv.list({ prefix: 'kkk' })).keys.map((key) => key.name)
      const byUtf8 = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))
      expect(listed).toEqual([...new Set(stored)].sort(byUtf8))
      for (const key of keys) await kv.delete(key)
      expect((await kv.list({ prefix: 'kkk' })).keys).toEqual([])
    })

    test.each(Object.keys(byMethod))('%s rejects "", "." and ".." with TypeErrors', async (m) => {
      for (const [key, message] of [
        ['', 'Key name cannot be empty.'],
        ['.', '"." is not allowed as a key name.'],
        ['..', '".." is not allowed as a key name.'],
      ]) {
        const error = await rejection(byMethod[m](key))
        expect(error).toBeInstanceOf(TypeError)
        expect(error.message).toBe(message)
      }
    })

    test.each(Object.keys(byMethod))('%s limits keys to 512 UTF-8 bytes', async (m) => {
      await expect(byMethod[m]('k'.repeat(512))).resolves.not.toThrow()
      const error = await rejection(byMethod[m]('é'.repeat(257)))
      expect(error.constructor).toBe(Error)
      expect(error.message).toBe(
        `KV ${opName[m]} failed: 414 UTF-8 encoded length of 514 exceeds key length limit of 512.`,
      )
      await expect(byMethod[m]('k'.repeat(513))).rejects.toThrow('length of 513 exceeds')
    })

    test('keys are converted with ToString', async () => {
      await kv.put(123, 'number')
      await kv.put(undefined, 'undefined')
      await kv.put(null, 'null')
      await expect(kv.get('123')).resolves.toBe('number')
      await expect(kv.get(123)).resolves.toBe('number')
      await expect(kv.get('undefined')).resolves.toBe('undefined')
      await expect(kv.get(undefined)).resolves.toBe('undefined')
      await expect(kv.get({ toString: () => 'null' })).resolves.toBe('null')
      await kv.delete(123)
      await expect(kv.get('123')).resolves.toBeNull()
    })

    test('keys are case-sensitive and Unicode forms are distinct', async () => {
      await kv.put('key', 'lower')
      await kv.put('KEY', 'upper')
      await kv.put('\u00e9', 'composed')
      await kv.put('e\u0301', 'decomposed')
      await expect(kv.get('key')).resolves.toBe('lower')
      await expect(kv.get('KEY')).resolves.toBe('upper')
      await expect(kv.get('\u00e9')).resolves.toBe('composed')
      await expect(kv.get('e\u0301')).resolves.toBe('decomposed')
    })

    test('a lone surrogate is the same key as U+FFFD, as UTF-8 conversion makes it', async () => {
      await kv.put('a\ud800b', 'surrogate')
      await expect(kv.get('a\ufffdb')).resolves.toBe('surrogate')
    })

    test('keys with separators, NUL and emoji round-trip', async () => {
      const keys = ['users/bob', 'users/bob/messages', '100%', 'a\u0000b', '\u001f', '😀']
      for (const key of keys) await kv.put(key, `value of ${key}`)
      for (const key of keys) await expect(kv.get(key)).resolves.toBe(`value of ${key}`)
    })

    test('a key whose ToString throws makes get throw and put reject with that error', async () => {
      const key = Symbol('k')
      expect(() => kv.get(key)).toThrow(TypeError)
      await expect(kv.put(key, 'v')).rejects.toThrow(TypeError)
      await expect(kv.delete(key)).rejects.toThrow(TypeError)
    })
  })

  describe('put values', () => {
    test('accepts ArrayBuffers, typed arrays, DataViews and Buffers, honouring the view window', async () => {
      const backing = new Uint8Array([9, 1, 2, 3, 9]).buffer
      await kv.put('arrayBuffer', backing)
      await kv.put('subarray', new Uint8Array([1, 2, 3]).subarray(1))
      await kv.put('dataView', new DataView(backing, 1, 3))
      await kv.put('uint16', new Uint16Array([0x0201]))
      await kv.put('buffer', Buffer.from('buf'))
      const read = async (key) => [...new Uint8Array(await kv.get(key, 'arrayBuffer'))]
      expect(await read('arrayBuffer')).toEqual([9, 1, 2, 3, 9])
      expect(await read('subarray')).toEqual([2, 3])
      expect(await read('dataView')).toEqual([1, 2, 3])
      expect(await read('uint16')).toEqual([1, 2])
      expect(await read('buffer')).toEqual([98, 117, 102])
    })

    test('drains a ReadableStream of bytes', async () => {
      await kv.put('stream', streamOf(new Uint8Array([104, 105]), new Uint8Array([33])))
      await expect(kv.get('stream')).resolves.toBe('hi!')
    })

    test('converts other primitives with ToString', async () => {
      for (const [value, text] of [
        [42, '42'],
        [true, 'true'],
        [null, 'null'],
        [undefined, 'undefined'],
        [1.5, '1.5'],
      ]) {
        await kv.put('primitive', value)
        await expect(kv.get('primitive')).resolves.toBe(text)
      }
    })

    test('rejects other objects with a TypeError and keeps the stored value', async () => {
      await kv.put('key', 'before')
      for (const value of [new Map(), {}, [1], () => 1, new Date(0)]) {
        const error = await rejection(kv.put('key', value))
        expect(error).toBeInstanceOf(TypeError)
        expect(error.message).toBe(BODY_TYPE)
      }
      await expect(kv.get('key')).resolves.toBe('before')
    })

    test('a stream is not read when the key is invalid', async () => {
      let pulls = 0
      const stream = new ReadableStream(
        {
          pull(controller) {
            pulls++
            controller.close()
          },
        },
        { highWaterMark: 0 }, // pull only when read
      )
      await expect(kv.put('', stream)).rejects.toThrow('Key name cannot be empty.')
      expect(pulls).toBe(0)
    })

    test('an oversized stream is refused with the checks in service order', async () => {
      const chunks = () => streamOf(new Uint8Array(MAX_VALUE), new Uint8Array(MiB))
      await expect(kv.put('key', chunks(), { expirationTtl: 5 })).rejects.toThrow(
        'Invalid expiration_ttl of 5.',
      )
      await expect(kv.put('key', chunks())).rejects.toThrow(
        'KV PUT failed: 413 Value length of 27262976 exceeds limit of 26214400.',
      )
    })

    test('a stream chunk that is not bytes is rejected', async () => {
      await expect(kv.put('key', streamOf('text'))).rejects.toThrow(new TypeError(BODY_TYPE))
      await expect(kv.get('key')).resolves.toBeNull()
    })

    test('accepts values of exactly 25 MiB and rejects one byte more', async () => {
      const limit = new Uint8Array(MAX_VALUE)
      limit[MAX_VALUE - 1] = 7
      await kv.put('max', limit)
      const read = new Uint8Array(await kv.get('max', 'arrayBuffer'))
      expect(read.byteLength).toBe(MAX_VALUE)
      expect(read[MAX_VALUE - 1]).toBe(7)
      const message = 'KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400.'
      await expect(kv.put('over', new Uint8Array(MAX_VALUE + 1))).rejects.toThrow(
        new Error(message),
      )
      await expect(kv.put('over', 'x'.repeat(MAX_VALUE + 1))).rejects.toThrow(message)
      await expect(
        kv.put('over', streamOf(new Uint8Array(MAX_VALUE), new Uint8Array(1))),
      ).rejects.toThrow(message)
      await expect(kv.get('over')).resolves.toBeNull()
    })

    test('large values round-trip through every read type', async () => {
      const text = 'é'.repeat(300_000) + 'end'
      await kv.put('large', text)
      await expect(kv.get('large')).resolves.toBe(text)
      expect(Buffer.from(await kv.get('large', 'arrayBuffer')).toString()).toBe(text)
      expect((await readAll(await kv.get('large', 'stream'))).toString()).toBe(text)
      await kv.put('large-json', JSON.stringify({ text }))
      await expect(kv.get('large-json', 'json')).resolves.toEqual({ text })
      await expect(kv.get('large', 'bogus')).rejects.toThrow(UNKNOWN_TYPE)
    })

    test('large text reads give the text stored: ASCII, UTF-8, bytes that are not UTF-8, bytes past ASCII', async () => {
      const ascii = '{"id":1,"tags":["a","b"]},'.repeat(40_000)
      const cases = [
        ['ascii', ascii, ascii],
        // Read on the JS thread (up to 256 KiB), as a one-byte string made where it lies.
        ['ascii-in-line', ascii.slice(0, 100_000), ascii.slice(0, 100_000)],
        ['latin1-in-line', Buffer.from([0x41, 0xe9, 0x42]), 'A\ufffdB'],
        ['utf8', `${ascii}é`, `${ascii}é`],
        // Not UTF-8: each bad byte reads as U+FFFD, as a TextDecoder reads it.
        [
          'invalid',
          Buffer.concat([Buffer.from(ascii), Buffer.from([0xff, 0x41])]),
          `${ascii}\ufffdA`,
        ],
        // Latin-1 bytes are not ASCII: read as UTF-8, they are not the Latin-1 characters.
        ['latin1', Buffer.concat([Buffer.from(ascii), Buffer.from([0xe9])]), `${ascii}\ufffd`],
      ]
      for (const [key, stored] of cases) await kv.put(key, stored)
      for (const [key, , read] of cases) {
        const [first, again] = [await kv.get(key), await kv.get(key)]
        expect([key, first.length, first === read]).toEqual([key, read.length, true])
        expect(again === read).toBe(true)
        const { value } = await kv.getWithMetadata(key)
        expect(value === read).toBe(true)
      }
      // The strings stay whole once those read before are collected.
      const held = await kv.get('ascii')
      for (let i = 0; i < 20; i++) await kv.get('ascii')
      collectGarbage()
      expect(held === ascii && held.slice(-26) === ascii.slice(-26)).toBe(true)
      expect(JSON.parse(`[${held.slice(0, -1)}]`)).toHaveLength(40_000)
    })

    test('a large value is private to the put: changing the source afterwards does not change it', async () => {
      const source = new Uint8Array(MiB).fill(1)
      const put = kv.put('copy', source)
      source.fill(2)
      await put
      expect(new Uint8Array(await kv.get('copy', 'arrayBuffer'))[0]).toBe(1)
    })

    test.each([
      ['small', 16],
      ['large', MiB],
    ])('each %s read hands out bytes of its own', async (_size, length) => {
      await kv.put('own', new Uint8Array(length).fill(3))
      const first = await kv.get('own', 'arrayBuffer')
      const second = await kv.get('own', 'arrayBuffer')
      expect(first).toBeInstanceOf(ArrayBuffer)
      expect(first.byteLength).toBe(length)
      new Uint8Array(first).fill(4)
      expect(new Uint8Array(second)[length - 1]).toBe(3)
      const { value: chunk } = await (await kv.get('own', 'stream')).getReader().read()
      expect(chunk).toBeInstanceOf(Uint8Array)
      chunk.fill(5)
      expect(new Uint8Array(await kv.get('own', 'arrayBuffer'))[0]).toBe(3)
    })

    test('without a value it rejects with a TypeError', async () => {
      await expect(kv.put('key')).rejects.toThrow(
        new TypeError(
          "Failed to execute 'put' on 'KvNamespace': parameter 2 is not of type 'string or JsObject'.",
        ),
      )
    })
  })

  describe('put options', () => {
    const putError = (message) => new Error(`KV PUT failed: 400 ${message}`)

    test('expirationTtl must be above 0 and at least 60', async () => {
      for (const [ttl, shown] of [
        [0, 0],
        [-5, -5],
        [null, 0],
        ['nan', 0],
        [0.5, 0],
      ]) {
        await expect(kv.put('key', 'v', { expirationTtl: ttl })).rejects.toThrow(
          putError(`Invalid expiration_ttl of ${shown}. Please specify integer greater than 0.`),
        )
      }
      for (const ttl of [30, 59, 59.9]) {
        await expect(kv.put('key', 'v', { expirationTtl: ttl })).rejects.toThrow(
          putError(
            `Invalid expiration_ttl of ${Math.trunc(ttl)}. Expiration TTL must be at least 60.`,
          ),
        )
      }
      await expect(kv.get('key')).resolves.toBeNull()
    })

    test('expiration must be in the future by at least 60 seconds', async () => {
      for (const expiration of [1000, NOW, NOW - 1]) {
        await expect(kv.put('key', 'v', { expiration })).rejects.toThrow(
          putError(
            `Invalid expiration of ${expiration}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
          ),
        )
      }
      await expect(kv.put('key', 'v', { expiration: NOW + 30 })).rejects.toThrow(
        putError(
          `Invalid expiration of ${NOW + 30}. Expiration times must be at least 60 seconds in the future.`,
        ),
      )
      await expect(kv.put('key', 'v', { expiration: NOW + 59 })).rejects.toThrow('at least 60')
      await expect(kv.put('key', 'v', { expiration: NOW + 60 })).resolves.toBeUndefined()
      await expect(kv.put('key', 'v', { expiration: `${NOW + 120}` })).resolves.toBeUndefined()
    })

    test('expirationTtl wins over expiration, valid or not', async () => {
      await expect(
        kv.put('key', 'v', { expiration: NOW + 10, expirationTtl: 120 }),
      ).resolves.toBeUndefined()
      await expect(
        kv.put('key', 'v', { expiration: NOW + 1000, expirationTtl: 10 }),
      ).rejects.toThrow('Invalid expiration_ttl of 10.')
    })

    test('numeric options outside int32 reject with a TypeError', async () => {
      for (const options of [
        { expiration: 2 ** 31 },
        { expirationTtl: -(2 ** 31) - 1 },
        { expiration: Date.now() }, // milliseconds where seconds are meant
      ]) {
        const error = await rejection(kv.put('key', 'v', options))
        expect(error).toBeInstanceOf(TypeError)
        expect(error.message).toBe(INT32_RANGE)
      }
    })

    test('metadata may be up to 1024 bytes of JSON', async () => {
      const metadata = (length) => ({ key: 'x'.repeat(length - '{"key":""}'.length) })
      await expect(kv.put('key', 'v', { metadata: metadata(1024) })).resolves.toBeUndefined()
      await expect(kv.put('key', 'v', { metadata: metadata(1025) })).rejects.toThrow(
        new Error('KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.'),
      )
      await expect(kv.put('key', 'v', { metadata: { key: 'é'.repeat(508) } })).rejects.toThrow(
        'Metadata length of 1026',
      )
    })

    test('metadata that JSON cannot carry is rejected', async () => {
      const error = await rejection(kv.put('key', 'v', { metadata: { n: 1n } }))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.message).toBe('Do not know how to serialize a BigInt')
      const circular = {}
      circular.self = circular
      await expect(kv.put('key', 'v', { metadata: circular })).rejects.toThrow(TypeError)
      await expect(kv.put('key', 'v', { metadata: () => 1 })).rejects.toThrow(
        'KV PUT failed: 500 Internal Server Error',
      )
      await expect(kv.get('key')).resolves.toBeNull()
    })

    test('options must be an object, null or undefined', async () => {
      await expect(kv.put('key', 'v', null)).resolves.toBeUndefined()
      await expect(kv.put('key', 'v', undefined)).resolves.toBeUndefined()
      await expect(kv.put('key', 'v', 'str')).rejects.toThrow(
        new TypeError(
          "Failed to execute 'put' on 'KvNamespace': parameter 3 is not of type 'PutOptions'.",
        ),
      )
    })

    test('checks run in production order: key, then metadata, then value type, then limits', async () => {
      await expect(kv.put('', new Map(), { metadata: { n: 1n } })).rejects.toThrow(
        'Key name cannot be empty.',
      )
      await expect(kv.put('key', new Map(), { metadata: { n: 1n } })).rejects.toThrow('BigInt')
      await expect(kv.put('key', new Map(), { expirationTtl: 1 })).rejects.toThrow(BODY_TYPE)
      await expect(
        kv.put('key', new Uint8Array(MAX_VALUE + 1), {
          expirationTtl: 1,
          metadata: 'x'.repeat(2000),
        }),
      ).rejects.toThrow('Invalid expiration_ttl of 1.')
      await expect(
        kv.put('key', new Uint8Array(MAX_VALUE + 1), { metadata: 'x'.repeat(2000) }),
      ).rejects.toThrow('Metadata length of 2002')
      // int32 conversion happens while reading the arguments, before everything else.
      await expect(kv.put('', 'v', { expiration: 2 ** 32 })).rejects.toThrow(INT32_RANGE)
    })
  })

  describe('expiration', () => {
    test('an entry expires at the instant of its expiration, for every read type', async () => {
      await kv.put('ttl', 'value', { expirationTtl: 60 })
      now = NOW * 1000 + 59_999
      await expect(kv.get('ttl')).resolves.toBe('value')
      now = (NOW + 60) * 1000
      for (const type of ['text', 'json', 'arrayBuffer', 'stream', 'bogus']) {
        await expect(kv.get('ttl', type)).resolves.toBeNull()
      }
    })

    test('an absolute expiration is honoured to the millisecond', async () => {
      await kv.put('abs', 'value', { expiration: NOW + 100 })
      now = (NOW + 100) * 1000 - 1
      await expect(kv.get('abs')).resolves.toBe('value')
      now += 1
      await expect(kv.get('abs')).resolves.toBeNull()
    })

    test('a later put without options makes the key persistent again', async () => {
      await kv.put('key', 'short', { expirationTtl: 60 })
      await kv.put('key', 'long')
      now += 3600_000
      await expect(kv.get('key')).resolves.toBe('long')
    })

    test('a put after expiry is not lost to the reclaim of the expired entry', async () => {
      const large = 'L'.repeat(300_000)
      await kv.put('key', large, { expirationTtl: 60 })
      now += 61_000
      await kv.put('key', 'fresh')
      await expect(kv.get('key')).resolves.toBe('fresh')
      await kv.put('big', large, { expirationTtl: 60 })
      now += 61_000
      await expect(kv.get('big')).resolves.toBeNull()
      await kv.put('big', 'again')
      await expect(kv.get('big')).resolves.toBe('again')
    })

    test('the clock is read at every call', async () => {
      let calls = 0
      const counted = open({
        clock: () => {
          calls++
          return NOW_MS
        },
      })
      await counted.put('key', 'v')
      await counted.get('key')
      await counted.get('key')
      expect(calls).toBe(3)
    })

    test('a clock that does not return a finite number rejects the call', async () => {
      const broken = open({ clock: () => 'soon' })
      await expect(broken.get('key')).rejects.toThrow(
        new TypeError(
          'The clock option must return a finite number of milliseconds since the UNIX epoch.',
        ),
      )
    })
  })

  describe('delete', () => {
    test('removes a key, and deleting a missing key resolves undefined', async () => {
      await kv.put('key', 'value')
      await expect(kv.delete('key')).resolves.toBeUndefined()
      await expect(kv.get('key')).resolves.toBeNull()
      await expect(kv.delete('key')).resolves.toBeUndefined()
    })

    test('removes large values too', async () => {
      await kv.put('large', 'x'.repeat(400_000))
      await kv.delete('large')
      await expect(kv.get('large')).resolves.toBeNull()
    })

    test('without arguments it rejects with a TypeError', async () => {
      await expect(kv.delete()).rejects.toThrow(
        new TypeError(
          "Failed to execute 'delete' on 'KvNamespace': parameter 1 is not of type 'string'.",
        ),
      )
    })
  })

  describe('deleteBulk (experimental)', () => {
    test("exists only with the experimental option, as under workerd's flag", () => {
      expect(kv.deleteBulk).toBeUndefined()
      expect(typeof open({ experimental: true }).deleteBulk).toBe('function')
    })

    test('deletes a key or up to 100 keys, in order with the writes around it', async () => {
      const bulk = open({ experimental: true, clock: () => now })
      await bulk.put('one', '1')
      for (let i = 0; i < 100; i++) await bulk.put(`k${i}`, String(i))
      await expect(bulk.deleteBulk('one')).resolves.toBeUndefined()
      await expect(bulk.get('one')).resolves.toBeNull()
      // Written before it, deleted by it; written after it, kept.
      bulk.put('k0', 'rewritten before')
      const deleted = bulk.deleteBulk(Array.from({ length: 100 }, (_, i) => `k${i}`))
      bulk.put('k1', 'written after')
      await deleted
      await expect(bulk.get('k0')).resolves.toBeNull()
      await expect(bulk.get('k1')).resolves.toBe('written after')
      await expect(bulk.list()).resolves.toMatchObject({ keys: [{ name: 'k1' }] })
      // Missing keys and an empty array are fine.
      await expect(bulk.deleteBulk(['missing'])).resolves.toBeUndefined()
      await expect(bulk.deleteBulk([])).resolves.toBeUndefined()
    })

    test('checks every key as delete does, and the count, before deleting any', async () => {
      const bulk = open({ experimental: true, clock: () => now })
      await bulk.put('kept', 'yes')
      const error = await rejection(bulk.deleteBulk(['kept', '']))
      expect(error).toEqual(new TypeError('Key name cannot be empty.'))
      await expect(bulk.deleteBulk(['kept', 'x'.repeat(513)])).rejects.toThrow(
        'KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.',
      )
      await expect(bulk.deleteBulk(Array.from({ length: 101 }, (_, i) => `k${i}`))).rejects.toThrow(
        new Error('KV DELETE failed: 400 You can delete maximum of 100 keys per request'),
      )
      await expect(bulk.get('kept')).resolves.toBe('yes')
      await expect(bulk.deleteBulk()).rejects.toThrow(TypeError)
    })
  })

  describe('ordering and concurrency', () => {
    test('reads see every earlier write, also behind a large write on the pool', async () => {
      const large = 'x'.repeat(2 * MiB)
      const results = [
        kv.put('key', large),
        kv.get('key'),
        kv.put('key', 'small'),
        kv.get('key'),
        kv.delete('key'),
        kv.get('key'),
      ]
      const [, first, , second, , third] = await Promise.all(results)
      expect(first).toBe(large)
      expect(second).toBe('small')
      expect(third).toBeNull()
    })

    test('256 puts in flight to one key leave the last one', async () => {
      const puts = []
      for (let i = 0; i < 256; i++) puts.push(kv.put('key', `value ${i}`))
      await Promise.all(puts)
      await expect(kv.get('key')).resolves.toBe('value 255')
    })

    test('a rejected operation in the queue does not stop the ones after it', async () => {
      const results = await Promise.allSettled([
        kv.put('key', 'x'.repeat(MiB)),
        kv.put('', 'bad'),
        kv.put('key', 'after'),
      ])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      await expect(kv.get('key')).resolves.toBe('after')
    })
  })

  describe('flush and close', () => {
    test('flush resolves undefined', async () => {
      await kv.put('key', 'value')
      await expect(kv.flush()).resolves.toBeUndefined()
    })

    test('after close every call rejects with ERR_KV_CLOSED, and close can be repeated', async () => {
      await kv.put('key', 'value')
      await kv.close()
      await expect(kv.close()).resolves.toBeUndefined()
      for (const call of [
        () => kv.get('key'),
        () => kv.put('key', 'v'),
        () => kv.put('key', 'x'.repeat(MiB)),
        () => kv.delete('key'),
        () => kv.flush(),
      ]) {
        const error = await rejection(call())
        expect(error).toBeInstanceOf(Error)
        expect(error.code).toBe('ERR_KV_CLOSED')
        expect(error.message).toBe(
          'This KV namespace has been closed. Create a new KV to use the store again.',
        )
      }
    })

    test('operations issued before close complete first', async () => {
      const put = kv.put('key', 'x'.repeat(MiB))
      const closed = kv.close()
      const late = kv.get('key')
      await expect(put).resolves.toBeUndefined()
      await expect(closed).resolves.toBeUndefined()
      await expect(late).rejects.toThrow('has been closed')
    })
  })

  test('every method returns a Promise of this realm', () => {
    const calls = [kv.get('k'), kv.put('k', 'v'), kv.delete('k'), kv.flush(), kv.put('', 'v')]
    for (const call of calls) expect(call).toBeInstanceOf(Promise)
    return Promise.allSettled(calls)
  })
})
