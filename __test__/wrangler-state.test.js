'use strict'

// wrangler's local KV state, as the real Miniflare 4 writes it (generated here, never a
// fixture), imported into a kv-binding store and exported back.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { Miniflare } = require('miniflare')
const { KV } = require('..')
const { tempDir } = require('./helpers')

const BIN = path.resolve(__dirname, '..', 'bin', 'kv-binding.js')

// Starting workerd takes a moment on a busy machine.
jest.setTimeout(60_000)

const WRANGLER_TOML = `name = "shop"

[[kv_namespaces]]
binding = "SESSIONS"
id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
preview_id = "preview-sessions"
`
const SESSIONS_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0'
// Bound by no configuration: imported under its id.
const OTHER_ID = 'aabbccddeeff00112233445566778899'

/** Runs `use` with Miniflare 4 bindings on the KV state of `project`, as wrangler dev keeps it. */
async function withState(project, use) {
  const mf = new Miniflare({
    modules: true,
    script: 'export default { fetch: () => new Response(null) }',
    kvNamespaces: { SESSIONS: SESSIONS_ID, OTHER: OTHER_ID },
    kvPersist: path.join(project, '.wrangler', 'state', 'v3', 'kv'),
  })
  try {
    return await use(await mf.getKVNamespace('SESSIONS'), await mf.getKVNamespace('OTHER'))
  } finally {
    await mf.dispose()
  }
}

const cli = (cwd, ...args) => spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' })

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600

test('import --from-wrangler brings every namespace over, named by its binding or its id', async () => {
  const project = tempDir()
  fs.writeFileSync(path.join(project, 'wrangler.toml'), WRANGLER_TOML)
  const expiration = inAnHour()
  await withState(project, async (sessions, other) => {
    await sessions.put('session:1', JSON.stringify({ user: 'ada' }), {
      metadata: { role: 'admin' },
    })
    await sessions.put('blob', new Uint8Array([0, 255, 128, 7]), { expiration })
    await sessions.put('going', 'soon', { expirationTtl: 60 })
    // One more than a list page holds.
    await Promise.all(
      Array.from({ length: 1001 }, (_, i) =>
        other.put(`k${String(i).padStart(4, '0')}`, String(i)),
      ),
    )
  })
  const imported = cli(project, 'import', '--from-wrangler')
  expect(imported.status).toBe(0)
  expect(imported.stderr).toBe(
    `imported 2 entries into namespace SESSIONS (id ${SESSIONS_ID}); left out 1 that expire within a minute\n` +
      `imported 1001 entries into namespace ${OTHER_ID} (id ${OTHER_ID})\n`,
  )
  const store = path.join(project, '.kv')
  const sessions = new KV({ path: store, namespace: 'SESSIONS' })
  await expect(sessions.getWithMetadata('session:1', 'json')).resolves.toMatchObject({
    value: { user: 'ada' },
    metadata: { role: 'admin' },
  })
  expect([...new Uint8Array(await sessions.get('blob', 'arrayBuffer'))]).toEqual([0, 255, 128, 7])
  await expect(sessions.list()).resolves.toMatchObject({
    keys: [
      { name: 'blob', expiration },
      { name: 'session:1', metadata: { role: 'admin' } },
    ],
  })
  await sessions.close()
  const other = new KV({ path: store, namespace: OTHER_ID })
  const first = await other.list()
  const second = await other.list({ cursor: first.cursor })
  expect(first.keys.length + second.keys.length).toBe(1001)
  await expect(other.get('k1000')).resolves.toBe('1000')
  await other.close()
})

test('export --to-wrangler writes the bound namespaces back, as the store holds them', async () => {
  const project = tempDir()
  fs.writeFileSync(path.join(project, 'wrangler.toml'), WRANGLER_TOML)
  await withState(project, async (sessions) => {
    await sessions.put('stale', 'from before')
    await sessions.put('kept', 'old value')
  })
  const store = path.join(project, '.kv')
  const kv = new KV({ path: store, namespace: 'SESSIONS' })
  const expiration = inAnHour()
  await kv.put('kept', 'new value', { metadata: { v: 2 } })
  await kv.put('bytes', new Uint8Array([1, 2, 3]), { expiration })
  await kv.close()
  const exported = cli(project, 'export', '--to-wrangler')
  expect(exported.status).toBe(0)
  expect(exported.stderr).toBe(`exported 2 entries of namespace SESSIONS as id ${SESSIONS_ID}\n`)
  await withState(project, async (sessions) => {
    const { keys } = await sessions.list()
    expect(keys).toEqual([
      { name: 'bytes', expiration },
      { name: 'kept', metadata: { v: 2 } },
    ])
    await expect(sessions.get('kept')).resolves.toBe('new value')
    expect([...new Uint8Array(await sessions.get('bytes', 'arrayBuffer'))]).toEqual([1, 2, 3])
  })
})

test('what cannot be imported or exported is said plainly', () => {
  const empty = tempDir()
  expect(cli(empty, 'import', '--from-wrangler')).toMatchObject({
    status: 1,
    stderr: `kv-binding: ${path.join(empty, '.wrangler', 'state')} holds no local KV state (no v3/kv directory): give the directory that wrangler dev keeps its state in, .wrangler/state by default.\n`,
  })
  expect(cli(empty, 'export', '--to-wrangler').stderr).toContain(
    'Exporting to wrangler needs its configuration, to know each namespace id',
  )
  expect(cli(empty, 'import', '--from-wrangler', '--namespace', 'A')).toMatchObject({
    status: 2,
  })
  expect(cli(empty, 'list', '--from-wrangler').stderr).toContain(
    '--from-wrangler goes with import, --to-wrangler with export',
  )
})
