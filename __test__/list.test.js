'use strict'

// list(), as production does it, on both backends.

const { NOW_MS, NOW, backends, rejection } = require('./helpers')

describe.each(backends)('%s backend', (_name, open) => {
  let kv
  let now
  beforeEach(() => {
    now = NOW_MS
    kv = open({ clock: () => now })
  })

  const names = (result) => result.keys.map((key) => key.name)
  const putAll = (...keys) => Promise.all(keys.map((key) => kv.put(key, `value of ${key}`)))

  test('an empty namespace lists no keys, complete, without a cursor', async () => {
    const result = await kv.list()
    expect(result).toStrictEqual({ keys: [], list_complete: true, cacheStatus: null })
    expect('cursor' in result).toBe(false)
  })

  test('each key has expiration and metadata only when they were set', async () => {
    await kv.put('plain', 'v')
    await kv.put('expiring', 'v', { expiration: NOW + 100 })
    await kv.put('ttl', 'v', { expirationTtl: 120 })
    await kv.put('ttl-text', 'v', { expirationTtl: '90', expiration: `${NOW + 5000}` })
    await kv.put('meta', 'v', { metadata: { testing: true } })
    await kv.put('falsy', 'v', { metadata: 0 })
    await kv.put('null', 'v', { metadata: null })
    await kv.put('nan', 'v', { metadata: NaN })
    await expect(kv.list()).resolves.toStrictEqual({
      keys: [
        { name: 'expiring', expiration: NOW + 100 },
        { name: 'falsy', metadata: 0 },
        { name: 'meta', metadata: { testing: true } },
        { name: 'nan', metadata: null },
        { name: 'null' },
        { name: 'plain' },
        { name: 'ttl', expiration: NOW + 120 },
        { name: 'ttl-text', expiration: NOW + 90 },
      ],
      list_complete: true,
      cacheStatus: null,
    })
  })

  test('keys come in UTF-8 byte order, not UTF-16 order', async () => {
    await putAll('u:\u{10000}', 'u:\uffff', 'u:é', 'u:a', 'u:Z', ', ', '!', '😀', '\uff01')
    expect(names(await kv.list())).toEqual([
      '!',
      ', ',
      'u:Z',
      'u:a',
      'u:é',
      'u:\uffff',
      'u:\u{10000}',
      '\uff01',
      '😀',
    ])
  })

  test('prefix filters by bytes, case-sensitively, with no wildcards', async () => {
    await putAll('KEY1', 'KEY2', 'key1', 'key\\_%1', 'key\\_%', 'keyX_%', 'key%', 'a')
    expect(names(await kv.list({ prefix: 'KEY' }))).toEqual(['KEY1', 'KEY2'])
    expect(names(await kv.list({ prefix: 'key\\_%' }))).toEqual(['key\\_%', 'key\\_%1'])
    expect(names(await kv.list({ prefix: 'key%' }))).toEqual(['key%'])
    await expect(kv.list({ prefix: 'nothing' })).resolves.toStrictEqual({
      keys: [],
      list_complete: true,
      cacheStatus: null,
    })
    expect(names(await kv.list({ prefix: null }))).toHaveLength(8)
  })

  test('a 512-byte prefix equal to a whole key finds it; 513 bytes fail', async () => {
    const long = 'p'.repeat(512)
    await kv.put(long, 'v')
    expect(names(await kv.list({ prefix: long }))).toEqual([long])
    await expect(kv.list({ prefix: `${long}p` })).rejects.toThrow(
      new Error('KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.'),
    )
  })

  test('pages of limit keys carry a cursor until the last page', async () => {
    await putAll('key1', 'key2', 'key3')
    const first = await kv.list({ limit: 2 })
    expect(names(first)).toEqual(['key1', 'key2'])
    expect(first.list_complete).toBe(false)
    expect(typeof first.cursor).toBe('string')
    expect(first.cursor).not.toBe('')
    const second = await kv.list({ limit: 2, cursor: first.cursor })
    expect(second).toStrictEqual({
      keys: [{ name: 'key3' }],
      list_complete: true,
      cacheStatus: null,
    })
  })

  test('pages work with a prefix, and the limit may change between pages', async () => {
    await putAll('a', 'key1', 'key2', 'key3', 'z')
    const first = await kv.list({ prefix: 'key', limit: 1 })
    expect(names(first)).toEqual(['key1'])
    const second = await kv.list({ prefix: 'key', limit: 2, cursor: first.cursor })
    expect(names(second)).toEqual(['key2', 'key3'])
    expect(second.list_complete).toBe(true)
  })

  test('exactly limit keys left make a complete page, never followed by an empty one', async () => {
    await putAll('a', 'b')
    const page = await kv.list({ limit: 2 })
    expect(names(page)).toEqual(['a', 'b'])
    expect(page.list_complete).toBe(true)
    expect('cursor' in page).toBe(false)
  })

  test('the cursor resumes after the last key returned, seeing keys added or removed meanwhile', async () => {
    await putAll('key1', 'key3', 'key5')
    const first = await kv.list({ limit: 2 })
    expect(names(first)).toEqual(['key1', 'key3'])
    await putAll('key2', 'key4')
    expect(names(await kv.list({ limit: 2, cursor: first.cursor }))).toEqual(['key4', 'key5'])
    await kv.delete('key3')
    expect(names(await kv.list({ limit: 2, cursor: first.cursor }))).toEqual(['key4', 'key5'])
    await kv.delete('key4')
    expect(names(await kv.list({ limit: 1, cursor: first.cursor }))).toEqual(['key5'])
  })

  test('a cursor also works with another prefix or none', async () => {
    await putAll('a1', 'a2', 'b1', 'b2')
    const first = await kv.list({ prefix: 'a', limit: 1 })
    expect(names(await kv.list({ cursor: first.cursor }))).toEqual(['a2', 'b1', 'b2'])
    expect(names(await kv.list({ prefix: 'b', cursor: first.cursor }))).toEqual(['b1', 'b2'])
  })

  test('a bad or foreign cursor never throws', async () => {
    await putAll('a', 'b')
    await expect(kv.list({ cursor: '!!!notbase64' })).resolves.toMatchObject({
      keys: [],
      list_complete: true,
    })
    const pastTheEnd = Buffer.from('zzz').toString('base64')
    await expect(kv.list({ cursor: pastTheEnd })).resolves.toMatchObject({ keys: [] })
    expect(names(await kv.list({ cursor: '' }))).toEqual(['a', 'b'])
    expect(names(await kv.list({ cursor: null }))).toEqual(['a', 'b'])
  })

  test('expired keys are left out, and the others keep their expiration', async () => {
    await kv.put('key1', 'v', { expiration: NOW + 60 })
    await kv.put('key2', 'v', { expiration: NOW + 120 })
    await kv.put('key3', 'v', { expiration: NOW + 180 })
    now += 130_000
    await expect(kv.list()).resolves.toStrictEqual({
      keys: [{ name: 'key3', expiration: NOW + 180 }],
      list_complete: true,
      cacheStatus: null,
    })
  })

  test('expired keys do not count toward the limit or keep a page incomplete', async () => {
    await kv.put('a', 'v', { expirationTtl: 60 })
    await kv.put('b', 'v')
    await kv.put('c', 'v', { expirationTtl: 60 })
    now += 60_000
    const page = await kv.list({ limit: 1 })
    expect(names(page)).toEqual(['b'])
    expect(page.list_complete).toBe(true)
  })

  test('limit: default and maximum 1000; 0, negatives, NaN and null mean the default', async () => {
    await Promise.all(Array.from({ length: 1001 }, (_, i) => kv.put(`k${1000 + i}`, 'v')))
    for (const limit of [undefined, 0, -5, NaN, null, 'nan', 1000]) {
      const page = await kv.list({ limit })
      expect(page.keys).toHaveLength(1000)
      expect(page.list_complete).toBe(false)
    }
    expect((await kv.list({ limit: 2.7 })).keys).toHaveLength(2)
    const error = await rejection(kv.list({ limit: 1001 }))
    expect(error.constructor).toBe(Error)
    expect(error.message).toBe(
      'KV GET failed: 400 Invalid key_count_limit of 1001. Please specify an integer less than 1000.',
    )
    await expect(kv.list({ limit: 2 ** 31 })).rejects.toThrow(
      new TypeError('Value out of range. Must be between -2147483648 and 2147483647 (inclusive).'),
    )
    await expect(kv.list({ limit: 1001, prefix: 'p'.repeat(513) })).rejects.toThrow(
      'Invalid key_count_limit of 1001',
    )
  })

  test('options must be an object, null or undefined, and errors are rejections', async () => {
    await expect(kv.list(null)).resolves.toMatchObject({ list_complete: true })
    const error = await rejection(kv.list('abc'))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toBe(
      "Failed to execute 'list' on 'KvNamespace': parameter 1 is not of type 'ListOptions'.",
    )
  })

  test('keys with separators, NUL, lone surrogates and emoji list and page correctly', async () => {
    const keys = ['a/b', 'a/b/c', 'a\u0000', 'a%', 'a\ud800', 'a😀']
    for (const key of keys) await kv.put(key, 'v')
    const listed = []
    let cursor
    do {
      const page = await kv.list({ prefix: 'a', limit: 2, cursor })
      listed.push(...names(page))
      cursor = page.cursor
    } while (cursor)
    const expected = keys
      .map((key) => key.replace('\ud800', '\ufffd'))
      .sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    expect(listed).toEqual(expected)
  })

  test('list results are objects and arrays of this realm', async () => {
    await kv.put('key', 'v', { metadata: { m: [1] } })
    const result = await kv.list()
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype)
    expect(result.keys).toBeInstanceOf(Array)
    expect(result.keys[0].metadata.m).toBeInstanceOf(Array)
  })
})
