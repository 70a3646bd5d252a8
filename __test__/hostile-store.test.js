'use strict'

// A store directory is untrusted input: stores get committed to repositories and copied
// between machines. Whatever it holds, kv-binding reads, writes and deletes nothing outside
// it, and damage gives ERR_KV_CORRUPT naming what is damaged, never wrong data.

const fs = require('node:fs')
const path = require('node:path')
const { KV } = require('..')
const { tempDir, rejection } = require('./helpers')

const valueFiles = (dir) => fs.readdirSync(path.join(dir, 'values'))

describe('value files', () => {
  test('a value file garbled without changing its size gives ERR_KV_CORRUPT naming the key', async () => {
    const dir = tempDir()
    const value = Buffer.alloc(200 * 1024, 'kv-binding ')
    let kv = new KV({ path: dir })
    await kv.put('report.pdf', value)
    await kv.close()
    const [name] = valueFiles(dir)
    const file = path.join(dir, 'values', name)
    const garbled = fs.readFileSync(file)
    garbled[150_000] ^= 0x01
    fs.writeFileSync(file, garbled)
    kv = new KV({ path: dir })
    for (const type of ['text', 'arrayBuffer', 'stream']) {
      const error = await rejection(kv.get('report.pdf', type))
      expect(error.code).toBe('ERR_KV_CORRUPT')
      expect(error.message).toContain('"report.pdf"')
      expect(error.message).toContain('do not match its checksum')
    }
    expect((await rejection(kv.getWithMetadata('report.pdf'))).code).toBe('ERR_KV_CORRUPT')
    // The rest of the store is still readable, and a new value replaces the damaged one.
    await kv.put('report.pdf', 'fresh')
    await expect(kv.get('report.pdf')).resolves.toBe('fresh')
    await kv.close()
  })
})
