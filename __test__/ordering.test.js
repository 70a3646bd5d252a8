'use strict'

// When operations of one KV overlap: a value is fixed when put() is called, an operation
// waits only for earlier operations on what it touches, close() settles whatever a stream
// does, and a chain of awaited operations lets the event loop turn.

const { backends, rejection } = require('./helpers')

const KiB = 1024
// In-line values and values the thread pool writes.
const SIZES = [16, 300 * KiB]

/** A stream that yields `bytes` only once `end()` is called, and then ends. */
function heldStream(bytes) {
  let end
  const ended = new Promise((resolve) => (end = resolve))
  const stream = new ReadableStream({
    async pull(controller) {
      await ended
      controller.enqueue(bytes)
      controller.close()
    },
  })
  return { stream, end }
}

/** A stream that never yields anything. */
const endlessStream = () => new ReadableStream({ pull: () => new Promise(() => {}) })

/** Expects the value of `key` to be `size` bytes of `fill` (compared without Jest's slow
 * element-by-element diff of large arrays). */
async function expectBytes(kv, key, size, fill) {
  const stored = Buffer.from(await kv.get(key, 'arrayBuffer'))
  expect(stored.length).toBe(size)
  const wrong = stored.findIndex((byte) => byte !== fill)
  expect(wrong === -1 ? 'all bytes as put' : `byte ${wrong} is ${stored[wrong]}`).toBe(
    'all bytes as put',
  )
}

describe.each(backends)('%s backend', (_name, open) => {
  let kv
  beforeEach(() => {
    kv = open()
  })

  describe('a value is fixed when put() is called', () => {
    test.each(SIZES)(
      'bytes changed after put() returns are not stored (%i bytes, behind a write to the same key)',
      async (size) => {
        const first = heldStream(new Uint8Array([9]))
        const streamed = kv.put('key', first.stream)
        const bytes = new Uint8Array(size).fill(1)
        const written = kv.put('key', bytes)
        bytes.fill(2)
        first.end()
        await Promise.all([streamed, written])
        await expectBytes(kv, 'key', size, 1)
      },
    )

    test.each(SIZES)(
      'bytes changed after put() returns are not stored (%i bytes, behind a pool write)',
      async (size) => {
        const pool = kv.put('other', new Uint8Array(300 * KiB))
        const bytes = new Uint8Array(size).fill(1)
        const view = new DataView(bytes.buffer)
        const written = kv.put('key', view)
        bytes.fill(2)
        await Promise.all([pool, written])
        await expectBytes(kv, 'key', size, 1)
      },
    )

    test.each(SIZES)(
      'an ArrayBuffer transferred after put() returns is stored whole (%i bytes)',
      async (size) => {
        const first = heldStream(new Uint8Array([9]))
        const streamed = kv.put('key', first.stream)
        const buffer = new Uint8Array(size).fill(7).buffer
        const written = kv.put('key', buffer)
        structuredClone(buffer, { transfer: [buffer] })
        expect(buffer.byteLength).toBe(0)
        first.end()
        await Promise.all([streamed, written])
        await expectBytes(kv, 'key', size, 7)
      },
    )
  })

  describe('a stream that has not ended holds up only its own key', () => {
    test('gets, puts, deletes and lists of other keys settle while it is read', async () => {
      await kv.put('a', 'A')
      const stuck = rejection(kv.put('slow', endlessStream()))
      await expect(kv.get('a')).resolves.toBe('A')
      await kv.put('b', 'B')
      await expect(kv.get(['a', 'b'])).resolves.toEqual(
        new Map([
          ['a', 'A'],
          ['b', 'B'],
        ]),
      )
      await kv.delete('a')
      await expect(kv.list({ prefix: 'b' })).resolves.toMatchObject({ keys: [{ name: 'b' }] })
      await expect(kv.close()).resolves.toBeUndefined()
      const error = await stuck
      expect(error.code).toBe('ERR_KV_CLOSED')
      expect(error.message).toMatch(/closed before the stream given to put\(\) ended/)
    })

    test('close() cancels the stream, which is not read any further', async () => {
      let cancelled
      const stream = new ReadableStream({
        pull: () => new Promise(() => {}),
        cancel: (reason) => {
          cancelled = reason
        },
      })
      const stuck = rejection(kv.put('slow', stream))
      await kv.close()
      expect((await stuck).code).toBe('ERR_KV_CLOSED')
      expect(cancelled).toBeInstanceOf(Error)
    })

    test('close() settles even for a stream-like object that never answers nor cancels', async () => {
      const silent = { getReader: () => ({ read: () => new Promise(() => {}) }) }
      const refusing = {
        getReader: () => ({
          read: () => new Promise(() => {}),
          cancel: () => {
            throw new Error('no')
          },
        }),
      }
      const puts = [silent, refusing].map((body, i) => rejection(kv.put(`k${i}`, body)))
      await expect(kv.close()).resolves.toBeUndefined()
      for (const put of puts) expect((await put).code).toBe('ERR_KV_CLOSED')
    })

    test('a stream put waiting behind another when close() is called is not read either', async () => {
      const first = rejection(kv.put('slow', endlessStream()))
      let pulled = false
      // Pulled only when read (a stream fills its queue at once by default).
      const waiting = new ReadableStream(
        {
          pull: () => {
            pulled = true
            return new Promise(() => {})
          },
        },
        { highWaterMark: 0 },
      )
      const second = rejection(kv.put('slow', waiting))
      await expect(kv.close()).resolves.toBeUndefined()
      expect((await first).code).toBe('ERR_KV_CLOSED')
      expect((await second).code).toBe('ERR_KV_CLOSED')
      expect(pulled).toBe(false)
    })

    test('reads of its key do not wait for it; writes of its key do, in call order', async () => {
      await kv.put('key', 'before')
      const { stream, end } = heldStream(new TextEncoder().encode('streamed'))
      const order = []
      const streamed = kv.put('key', stream).then(() => order.push('put stream'))
      // Not a write until its value has arrived: a read sees what was there, at once.
      const read = kv.get('key').then((value) => order.push(`get ${value}`))
      const overwritten = kv.put('key', 'later').then(() => order.push('put later'))
      // Issued after a write that waits for the stream: it waits too.
      const listed = kv.list({ prefix: 'ke' }).then(({ keys }) => order.push(`list ${keys.length}`))
      await read
      await kv.put('unrelated', 'x')
      expect(order).toEqual(['get before'])
      end()
      await Promise.all([streamed, overwritten, listed])
      expect(order).toEqual(['get before', 'put stream', 'put later', 'list 1'])
      await expect(kv.get('key')).resolves.toBe('later')
    })

    test('a put whose stream never ends holds up no read, lists included', async () => {
      await kv.put('key', 'old', { metadata: { v: 1 } })
      const stuck = rejection(kv.put('key', endlessStream()))
      await expect(kv.get('key')).resolves.toBe('old')
      await expect(kv.getWithMetadata('key')).resolves.toMatchObject({ metadata: { v: 1 } })
      await expect(kv.get(['key'])).resolves.toEqual(new Map([['key', 'old']]))
      await expect(kv.list()).resolves.toMatchObject({ keys: [{ name: 'key' }] })
      expect((await kv.dump()).map((entry) => entry.value)).toEqual(['old'])
      // A later write of the key waits its turn, behind the stream.
      let overwritten = false
      const later = kv.put('key', 'new').then(() => (overwritten = true))
      await kv.put('other', 'x')
      await expect(kv.get('other')).resolves.toBe('x')
      expect(overwritten).toBe(false)
      await kv.close()
      expect((await stuck).code).toBe('ERR_KV_CLOSED')
      await later
    })

    test('a bulk read waits for earlier writes to its keys, and only those', async () => {
      await kv.put('other', 'O')
      const { stream, end } = heldStream(new TextEncoder().encode('streamed'))
      const streamed = kv.put('key', stream)
      await expect(kv.get(['unrelated'])).resolves.toEqual(new Map([['unrelated', null]]))
      // The stream has not arrived: not waited for.
      await expect(kv.getWithMetadata(['key', 'other'])).resolves.toEqual(
        new Map([
          ['key', null],
          ['other', { value: 'O', metadata: null }],
        ]),
      )
      // A write on the pool has: waited for.
      const pool = kv.put('other', new Uint8Array(300 * KiB).fill(1))
      const both = kv.get(['other'])
      end()
      await Promise.all([streamed, pool])
      expect((await both).get('other')).toHaveLength(300 * KiB)
      await expect(kv.get(['key'])).resolves.toEqual(new Map([['key', 'streamed']]))
    })

    test('snapshot() and clear() see every write issued before them, once it has arrived', async () => {
      const { stream, end } = heldStream(new TextEncoder().encode('streamed'))
      const streamed = kv.put('key', stream)
      // Taken while the value is still arriving: it does not wait for it.
      const early = await kv.snapshot()
      end()
      await streamed
      const snapshot = kv.snapshot()
      await kv.clear()
      await expect(kv.get('key')).resolves.toBeNull()
      await kv.restore(await snapshot)
      await expect(kv.get('key')).resolves.toBe('streamed')
      await kv.restore(early)
      await expect(kv.get('key')).resolves.toBeNull()
    })

    test('a key with a lone surrogate and its U+FFFD form are one key for ordering', async () => {
      const { stream, end } = heldStream(new TextEncoder().encode('streamed'))
      const streamed = kv.put('a\uD800', stream)
      const overwritten = kv.put('a\uFFFD', 'later')
      end()
      await Promise.all([streamed, overwritten])
      await expect(kv.get('a\uFFFD')).resolves.toBe('later')
    })
  })

  test('a loop of awaited reads lets a timer run', async () => {
    await kv.put('flag', 'off')
    setTimeout(() => kv.put('flag', 'on'), 10)
    const started = Date.now()
    let reads = 0
    while ((await kv.get('flag')) === 'off') {
      reads++
      // Without a turn of the event loop the timer never fires: give up rather than hang.
      if (Date.now() - started > 3000) break
    }
    expect(await kv.get('flag')).toBe('on')
    expect(reads).toBeGreaterThan(0)
  })
})
