'use strict'

// The kv-binding command, run as a shell user runs it: exit codes, stdout and stderr.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { KV } = require('..')
const { tempDir, holdStore } = require('./helpers')

const BIN = path.resolve(__dirname, '..', 'bin', 'kv-binding.js')

let dir
beforeEach(() => {
  dir = tempDir()
})

function cli(args, input) {
  const result = spawnSync(process.execPath, [BIN, '--path', dir, ...args], {
    input,
    encoding: 'utf8',
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

test('put, get, list and delete', () => {
  expect(cli(['put', 'user:1', 'Ada'])).toMatchObject({ status: 0, stdout: '' })
  expect(cli(['put', 'user:2', '--ttl', '3600', '--metadata', '{"role":"admin"}'], 'Bob')).toEqual({
    status: 0,
    stdout: '',
    stderr: '',
  })
  expect(cli(['get', 'user:1'])).toEqual({ status: 0, stdout: 'Ada', stderr: '' })
  expect(JSON.parse(cli(['get', 'user:2', '--with-metadata']).stdout)).toEqual({
    value: 'Bob',
    metadata: { role: 'admin' },
  })
  expect(cli(['list']).stdout).toBe('user:1\nuser:2\n')
  const listed = JSON.parse(cli(['list', '--prefix', 'user:2', '--json']).stdout)
  expect(listed).toEqual([
    { name: 'user:2', expiration: expect.any(Number), metadata: { role: 'admin' } },
  ])
  expect(cli(['list', '--limit', '1']).stdout).toBe('user:1\n')
  expect(cli(['delete', 'user:1', 'never-there'])).toMatchObject({ status: 0 })
  expect(cli(['list']).stdout).toBe('user:2\n')
})

test('values come from a file or standard input, byte for byte', () => {
  const file = path.join(dir, '..', `${path.basename(dir)}-value.bin`)
  fs.writeFileSync(file, Buffer.from([0, 1, 255]))
  expect(cli(['put', 'binary', '--file', file]).status).toBe(0)
  const got = spawnSync(process.execPath, [BIN, '--path', dir, 'get', 'binary'])
  expect([...got.stdout]).toEqual([0, 1, 255])
  const piped = spawnSync(process.execPath, [BIN, '--path', dir, 'put', 'piped'], {
    input: Buffer.from([255, 0, 128]),
  })
  expect(piped.status).toBe(0)
  const back = spawnSync(process.execPath, [BIN, '--path', dir, 'get', 'piped'])
  expect([...back.stdout]).toEqual([255, 0, 128])
  expect(JSON.parse(cli(['get', 'binary', '--with-metadata']).stdout)).toEqual({
    value: 'AAH/',
    base64: true,
    metadata: null,
  })
})

test('the store the CLI writes is the one KV reads, in the demo namespace by default', async () => {
  cli(['put', 'feature-flags', '{"newCheckout":false}'])
  const kv = new KV({ path: dir, namespace: 'KV' })
  await expect(kv.get('feature-flags', 'json')).resolves.toEqual({ newCheckout: false })
  await kv.close()
  cli(['--namespace', 'OTHER', 'put', 'k', 'v'])
  expect(cli(['list']).stdout).toBe('feature-flags\n')
  expect(cli(['--namespace', 'OTHER', 'list']).stdout).toBe('k\n')
})

test('exit status 1 for a missing key or a refused write, with the reason on stderr', () => {
  expect(cli(['get', 'missing'])).toEqual({
    status: 1,
    stdout: '',
    stderr: 'kv-binding: key "missing" not found\n',
  })
  expect(cli(['put', 'k', 'v', '--ttl', '30'])).toEqual({
    status: 1,
    stdout: '',
    stderr:
      'kv-binding: KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60.\n',
  })
  expect(cli(['put', '', 'v']).stderr).toBe('kv-binding: Key name cannot be empty.\n')
})

test('exit status 2 for bad usage, with a pointer to --help', () => {
  for (const args of [
    [],
    ['frob'],
    ['get'],
    ['put', 'k', 'v', '--file', 'f'],
    ['list', '--limit', 'x'],
    ['--nope'],
  ]) {
    const result = cli(args)
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(/^kv-binding: .+\nRun kv-binding --help for usage\.\n$/)
  }
  const help = cli(['--help'])
  expect(help.status).toBe(0)
  expect(help.stdout).toContain('Usage: kv-binding')
})

test('export and import round-trip a namespace in the wrangler bulk format', () => {
  const entries = Array.from({ length: 12_000 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }))
  entries.push({ key: 'bytes', value: 'AP8=', base64: true, metadata: { m: 1 } })
  const file = path.join(dir, '..', `${path.basename(dir)}-import.json`)
  fs.writeFileSync(file, JSON.stringify(entries))
  const imported = cli(['import', file, '--progress'])
  expect(imported.status).toBe(0)
  const size = fs.statSync(file).size
  expect(imported.stderr).toContain(`] 100% ${size}/${size}`)
  expect(imported.stderr).toContain('imported 12001 entries')

  const exported = cli(['export', '--progress'])
  expect(exported.status).toBe(0)
  const back = JSON.parse(exported.stdout)
  expect(back).toHaveLength(12_001)
  expect(back.find((e) => e.key === 'bytes')).toEqual(entries.at(-1))
  expect(back.find((e) => e.key === 'k11999')).toEqual({ key: 'k11999', value: 'v11999' })

  const copy = path.join(dir, '..', `${path.basename(dir)}-copy`)
  const out = path.join(dir, '..', `${path.basename(dir)}-export.json`)
  expect(cli(['export', out]).status).toBe(0)
  const reimport = spawnSync(process.execPath, [BIN, '--path', copy, 'import', out], {
    encoding: 'utf8',
  })
  expect(reimport.status).toBe(0)
  expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toEqual(back)
  fs.rmSync(copy, { recursive: true, force: true })
})

test('import writes nothing when an entry is refused, and names it by its place in the file', () => {
  const entries = Array.from({ length: 6000 }, (_, i) => ({ key: `k${i}`, value: 'v' }))
  entries[5500] = { key: 'bad', value: 'v', expiration_ttl: 10 }
  const file = path.join(dir, '..', `${path.basename(dir)}-bad.json`)
  fs.writeFileSync(file, JSON.stringify(entries))
  const result = cli(['import', file])
  expect(result.status).toBe(1)
  expect(result.stderr).toBe(
    'kv-binding: Entry 5500 (key "bad") was refused, so nothing was written: KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must be at least 60.\n',
  )
  expect(cli(['list']).stdout).toBe('')
  const notJson = path.join(dir, '..', `${path.basename(dir)}-not.json`)
  for (const [text, problem] of [
    ['{', 'is not JSON'],
    ['[{"key":"a","value":"b"},', 'is not JSON'],
    ['', 'is not JSON'],
    ['{"key":"a","value":"b"}', 'must hold a JSON array of entries'],
    ['"text"', 'must hold a JSON array of entries'],
    ['[{"key":"a","value":"b"}] [', 'is not JSON'],
  ]) {
    fs.writeFileSync(notJson, text)
    const result = cli(['import', notJson])
    expect(result).toMatchObject({ status: 1 })
    expect(result.stderr).toMatch(new RegExp(`^kv-binding: ${notJson}.* ${problem}`))
    expect(result.stderr.split('\n')).toHaveLength(2)
  }
  expect(cli(['list']).stdout).toBe('')
})

test('import refuses invalid base64 by entry, and reads standard input', () => {
  const entries = JSON.stringify([
    { key: 'good', value: 'AP8=', base64: true },
    { key: 'bad', value: 'AP8=!!', base64: true },
  ])
  const result = cli(['import', '-'], entries)
  expect(result.status).toBe(1)
  expect(result.stderr).toBe(
    'kv-binding: Entry 1 (key "bad") was refused, so nothing was written: its "value" is not valid base64.\n',
  )
  expect(cli(['list']).stdout).toBe('')
  expect(cli(['import', '-'], JSON.stringify([{ key: 'k', value: 'v' }])).status).toBe(0)
  expect(cli(['get', 'k']).stdout).toBe('v')
})

test('export to a path it cannot write fails in one line and removes nothing', () => {
  expect(cli(['put', 'k', 'v']).status).toBe(0)
  const missing = path.join(dir, 'no', 'such', 'dir', 'out.json')
  const targets = [missing, dir]
  if (fs.existsSync('/dev/full')) targets.push('/dev/full')
  for (const target of targets) {
    const result = cli(['export', target])
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(new RegExp(`^kv-binding: cannot write ${target}: \\w+`))
    expect(result.stderr.split('\n')).toHaveLength(2)
  }
  expect(fs.existsSync(missing)).toBe(false)
  // A device is written to, never replaced or removed.
  if (targets.includes('/dev/full')) expect(fs.statSync('/dev/full').isCharacterDevice()).toBe(true)
})

test('export replaces a file only once it is whole: a failed one leaves the old file', async () => {
  const out = path.join(tempDir(), 'backup.json')
  fs.writeFileSync(out, 'the previous backup')
  expect(cli(['put', 'k', 'v']).status).toBe(0)
  const kv = new KV({ path: dir, namespace: 'KV' })
  await kv.put('damaged', Buffer.alloc(200 * 1024, 1))
  await kv.close()
  const values = path.join(dir, 'values')
  for (const file of fs.readdirSync(values)) fs.rmSync(path.join(values, file))
  expect(cli(['export', out]).status).toBe(1)
  expect(fs.readFileSync(out, 'utf8')).toBe('the previous backup')
  expect(cli(['export', out, '--skip-damaged']).status).toBe(0)
  expect(JSON.parse(fs.readFileSync(out, 'utf8'))).toEqual([{ key: 'k', value: 'v' }])
  expect(fs.readdirSync(path.dirname(out))).toEqual(['backup.json'])
})

test('export --skip-damaged saves every entry that can be read and lists the rest', async () => {
  const kv = new KV({ path: dir, namespace: 'KV' })
  await kv.put('a', 'first')
  await kv.put('damaged', Buffer.alloc(200 * 1024, 1))
  await kv.put('z', 'last')
  await kv.close()
  const values = path.join(dir, 'values')
  for (const file of fs.readdirSync(values)) fs.rmSync(path.join(values, file))

  const failed = cli(['export'])
  expect(failed.status).toBe(1)
  expect(failed.stderr).toContain('"damaged"')
  expect(failed.stderr).toContain('--skip-damaged')
  expect(failed.stdout).toBe('')

  const salvaged = cli(['export', '--skip-damaged'])
  expect(salvaged.status).toBe(0)
  expect(JSON.parse(salvaged.stdout)).toEqual([
    { key: 'a', value: 'first' },
    { key: 'z', value: 'last' },
  ])
  expect(salvaged.stderr).toMatch(/^kv-binding: skipped "damaged": The store .* cannot be read/)
  expect(salvaged.stderr).toContain('exported all but 1 damaged entries')
})

test('a store that another process holds without sharing gets a clear message', async () => {
  const holder = await holdStore(dir, { shared: false })
  try {
    const result = cli(['list'])
    expect(result.status).toBe(1)
    expect(result.stderr).toContain(
      `is in use by another process (pid ${holder.pid}), which cannot share it: it does not share it`,
    )
  } finally {
    holder.kill('SIGKILL')
  }
})

test('a store that another process holds is read and written through it', async () => {
  const holder = await holdStore(dir)
  try {
    expect(cli(['put', 'shared', 'through the holder'])).toMatchObject({ status: 0 })
    expect(cli(['get', 'shared'])).toMatchObject({ status: 0, stdout: 'through the holder' })
    expect(cli(['list'])).toMatchObject({ status: 0, stdout: 'shared\n' })
  } finally {
    holder.kill('SIGKILL')
  }
})

const redisUrl = process.env.KV_TEST_REDIS_URL
// Without redis-server, Jest's globalSetup has said so once and left the URL unset.
const testRedis = redisUrl ? test : test.skip

testRedis('--url reads and writes a namespace on Redis that KV shares', async () => {
  const keyPrefix = `cli-test-${process.pid}:`
  const run = (args, input) => {
    const result = spawnSync(
      process.execPath,
      [BIN, '--url', redisUrl, '--key-prefix', keyPrefix, ...args],
      { input, encoding: 'utf8' },
    )
    return { status: result.status, stdout: result.stdout, stderr: result.stderr }
  }
  expect(run(['put', 'greeting', 'hello'])).toMatchObject({ status: 0 })
  const kv = new KV({ url: redisUrl, keyPrefix, namespace: 'KV' })
  try {
    await expect(kv.get('greeting')).resolves.toBe('hello')
    await kv.put('from-kv', 'written by KV')
    expect(run(['get', 'from-kv'])).toEqual({ status: 0, stdout: 'written by KV', stderr: '' })
    expect(run(['list']).stdout).toBe('from-kv\ngreeting\n')
  } finally {
    await kv.close()
  }
  const both = spawnSync(process.execPath, [BIN, '--url', redisUrl, '--path', dir, 'list'], {
    encoding: 'utf8',
  })
  expect(both.status).toBe(2)
  expect(both.stderr).toContain('give --path or --url, not both')
})
