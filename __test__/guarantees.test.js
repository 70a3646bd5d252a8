'use strict'

// The guarantees a backend claims (its `supports` in helpers.js, as its capabilities in
// src/store/backend.rs say), each checked on every backend that claims it. A new backend
// declares what it supports where it joins the list, and these run on it.

const path = require('node:path')
const { execFile } = require('node:child_process')
const { CAPABILITIES } = require('../lib/kv.js')
const { backends, NOW } = require('./helpers')

const claiming = (guarantee) => backends.filter(([, , supports]) => supports[guarantee])
const persistent = claiming('persistent')
const shared = claiming('shared')

// Runs `script` in another Node process, with `kv` a KV opened with `options`; resolves what
// it prints.
function inAnotherProcess(options, script) {
  const root = JSON.stringify(path.resolve(__dirname, '..'))
  const program = `const kv = new (require(${root}).KV)(${JSON.stringify(options)})
    ;(async () => { ${script} })().then(
      (out) => kv.close().then(() => process.stdout.write(JSON.stringify(out))),
      (error) => { console.error(error); process.exit(1) })`
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', program], { timeout: 30_000 }, (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout)),
    )
  })
}

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

describe.each(shared)('%s backend, shared', (_name, open, _supports, optionsFor) => {
  test('another process opened alike reads what this one wrote, and this one its writes', async () => {
    const options = optionsFor({ namespace: `between-${process.pid}-${Date.now()}` })
    const here = open(options)
    await here.put('from-here', 'h', { metadata: { by: 'here' }, expiration: NOW + 600 })
    const seen = await inAnotherProcess(
      options,
      `const seen = await kv.getWithMetadata('from-here')
       await kv.put('from-there', 't', { metadata: { by: 'there' } })
       return seen`,
    )
    expect(seen).toMatchObject({ value: 'h', metadata: { by: 'here' } })
    await expect(here.getWithMetadata('from-there')).resolves.toMatchObject({
      value: 't',
      metadata: { by: 'there' },
    })
  })
})

// What a backend is declared to support here is what its capabilities say: a backend that
// joins the list without saying, or says more than it does, would skip or fail silently.
test.each(backends)('%s: the guarantees claimed are those its capabilities report', (...entry) => {
  const [, open, supports] = entry
  const { persistent, shared, atomicBulkWrites, durableFlush } = open()[CAPABILITIES]()
  expect(supports).toEqual({ persistent, shared, atomicBulkWrites, durableFlush })
})
