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

/** Every file and directory under `dir`, with its size and modification time. */
function listing(dir) {
  return fs
    .readdirSync(dir, { recursive: true })
    .sort()
    .map((name) => {
      const stat = fs.lstatSync(path.join(dir, name))
      return `${name} ${stat.size} ${stat.mtimeMs}`
    })
}

test('import --from-wrangler reads the files as they lie: no link, no oversized value, no write', async () => {
  const original = tempDir()
  fs.writeFileSync(path.join(original, 'wrangler.toml'), WRANGLER_TOML)
  await withState(original, async (sessions, other) => {
    await sessions.put('a', 'first')
    await sessions.put('b', 'second')
    await other.put('c', 'third')
  })
  const copy = () => {
    const project = tempDir()
    fs.cpSync(original, project, { recursive: true })
    const kvDir = path.join(project, '.wrangler', 'state', 'v3', 'kv')
    // Namespace directories with nothing in them, as wrangler leaves behind.
    for (let i = 0; i < 200; i++)
      fs.mkdirSync(path.join(kvDir, `empty-${i}`, 'blobs'), { recursive: true })
    const blobs = path.join(kvDir, SESSIONS_ID, 'blobs')
    return { project, kvDir, blobs, files: fs.readdirSync(blobs).map((f) => path.join(blobs, f)) }
  }
  // Read as it lies, with nothing written inside the state, Miniflare's own files included.
  const plain = copy()
  const before = listing(plain.kvDir)
  const imported = cli(plain.project, 'import', '--from-wrangler')
  expect(imported.stderr).toContain('imported 2 entries into namespace SESSIONS')
  expect(imported.status).toBe(0)
  expect(listing(plain.kvDir)).toEqual(before)
  const kv = new KV({ path: path.join(plain.project, '.kv'), namespace: 'SESSIONS' })
  await expect(kv.get(['a', 'b'])).resolves.toEqual(
    new Map([
      ['a', 'first'],
      ['b', 'second'],
    ]),
  )
  await kv.close()
  // A value file that is a link to a file outside the state.
  const linked = copy()
  const secret = path.join(tempDir(), 'secret.txt')
  fs.writeFileSync(secret, 'TOP-SECRET')
  for (const file of linked.files) {
    fs.rmSync(file)
    fs.symlinkSync(secret, file)
  }
  const refused = cli(linked.project, 'import', '--from-wrangler')
  expect(refused.status).toBe(1)
  expect(refused.stderr).toMatch(
    /^kv-binding: The state of namespace 0f1e2d3c4b5a69788796a5b4c3d2e1f0 cannot be imported: the value of key "a" cannot be read: .* is a symbolic link, which is not followed\.\n$/,
  )
  expect(refused.stderr).not.toContain('TOP-SECRET')
  // A value file larger than any value (sparse: it takes no room).
  const large = copy()
  for (const file of large.files) fs.truncateSync(file, 2 * 1024 ** 3)
  const tooLarge = cli(large.project, 'import', '--from-wrangler')
  expect(tooLarge.status).toBe(1)
  expect(tooLarge.stderr).toMatch(
    /the value of key "a" cannot be read: .* holds 2147483648 bytes, more than 26214400\.\n$/,
  )
  // A database that is not one: one line, no stack.
  const corrupt = copy()
  const objects = path.join(corrupt.kvDir, 'miniflare-KVNamespaceObject')
  for (const file of fs.readdirSync(objects)) {
    const at = path.join(objects, file)
    if (file.endsWith('.sqlite')) fs.writeFileSync(at, Buffer.alloc(8192, 7))
    else fs.rmSync(at)
  }
  const damaged = cli(corrupt.project, 'import', '--from-wrangler')
  expect(damaged.status).toBe(1)
  expect(damaged.stderr).toMatch(
    /^kv-binding: The state of namespace \S+ cannot be imported: .*\.sqlite cannot be read: file is not a database\.\n$/,
  )
  // The databases' directory a link to another state: not followed.
  const elsewhere = copy()
  const objectsDir = path.join(elsewhere.kvDir, 'miniflare-KVNamespaceObject')
  fs.renameSync(objectsDir, `${objectsDir}.real`)
  fs.symlinkSync(`${objectsDir}.real`, objectsDir)
  const followed = cli(elsewhere.project, 'import', '--from-wrangler')
  expect(followed.status).toBe(1)
  expect(followed.stderr).toBe(
    `kv-binding: ${objectsDir} is not a directory (a link is not followed).\n`,
  )
  // Nothing of a failed import was written.
  for (const failed of [linked, large, corrupt, elsewhere]) {
    const store = path.join(failed.project, '.kv')
    if (!fs.existsSync(store)) continue
    const sessions = new KV({ path: store, namespace: 'SESSIONS' })
    await expect(sessions.list()).resolves.toMatchObject({ keys: [] })
    await sessions.close()
  }
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
