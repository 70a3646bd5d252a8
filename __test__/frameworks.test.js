'use strict'

// kv-binding/platform behind the dev servers people run, each a small app in a scratch
// directory with the framework installed from npm (__test__/peers): Hono on
// @hono/node-server, React Router's Vite dev server with cloudflareDevProxy, and SvelteKit's
// through a server hook. Each serves requests that read and write env.KV, and the test reads
// what they wrote from the shared store while the server holds it. Then the hybrid path: a D1
// binding from wrangler's own proxy beside kv-binding's KV.

const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { KV } = require('kv-binding')
const { projectDir } = require('./helpers')
const { freePort } = require('./redis/servers')

const ROOT = path.resolve(__dirname, '..')
const PEERS = path.join(__dirname, 'peers', 'node_modules')
// Starting a dev server compiles the app on its first request: allow for a slow machine.
jest.setTimeout(120_000)

const WRANGLER_TOML = `name = "visits"
compatibility_date = "2026-11-01"

[vars]
GREETING = "hello"

[[kv_namespaces]]
binding = "VISITS"
id = "4f1c2a"
`

/**
 * A project directory holding `files`, with node_modules as `npm install` would leave it: the
 * frameworks (linked from __test__/peers) and kv-binding as the package's files.
 */
function app(files) {
  const dir = projectDir({ 'wrangler.toml': WRANGLER_TOML, ...files })
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(modules)
  const link = (from, name) => {
    fs.mkdirSync(path.dirname(path.join(modules, name)), { recursive: true })
    fs.symlinkSync(path.join(from, name), path.join(modules, name))
  }
  for (const name of fs.readdirSync(PEERS)) {
    if (name.startsWith('.')) continue
    if (name.startsWith('@')) {
      for (const inner of fs.readdirSync(path.join(PEERS, name))) link(PEERS, `${name}/${inner}`)
    } else link(PEERS, name)
  }
  // The package as installed (a copy, so that dev servers treat it as a dependency), and
  // its own dependencies.
  const own = path.join(modules, 'kv-binding')
  const packageFiles = [
    ...require('../scripts/package-files.json'),
    'kv-binding.linux-x64-gnu.node',
  ]
  for (const file of packageFiles) {
    const from = path.join(ROOT, file)
    fs.mkdirSync(path.dirname(path.join(own, file)), { recursive: true })
    fs.copyFileSync(from, path.join(own, file))
  }
  for (const name of Object.keys(require('../package.json').dependencies)) {
    if (!fs.existsSync(path.join(modules, name))) link(path.join(ROOT, 'node_modules'), name)
  }
  return dir
}

// No network: wrangler would fetch a request's cf object and send metrics.
const QUIET = {
  NODE_ENV: 'development',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  WRANGLER_SEND_METRICS: 'false',
  BROWSER: 'none',
  CI: 'true',
}

const running = []
afterEach(async () => {
  await Promise.all(running.splice(0).map(stop))
})

/**
 * Starts `args` in `dir`; resolves once `url` answers (any status: a path the app does not
 * serve, so that no visit is counted), or fails with the server's output.
 */
async function start(dir, args, url) {
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: { ...process.env, ...QUIET },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(child)
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited:\n${output}`)
    if (Date.now() > deadline) throw new Error(`the server did not answer ${url}:\n${output}`)
    try {
      await fetch(url, { signal: AbortSignal.timeout(30_000) })
      return { child, output: () => output }
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

/** Runs `file` in `dir` with node to its end: `{ code, stdout, stderr }`. */
async function runScript(dir, file) {
  const child = spawn(process.execPath, [file], {
    cwd: dir,
    env: { ...process.env, ...QUIET },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise((resolve) => child.once('exit', resolve))
  return { code, stdout, stderr }
}

/** Ends a server with SIGTERM, as Ctrl-C would, and waits for it. */
function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

/** The visits a server counted: GETs `url` `times` times, returning the bodies. */
async function visit(url, times, server) {
  const bodies = []
  for (let i = 0; i < times; i++) {
    const response = await fetch(url, { signal: AbortSignal.timeout(60_000) })
    const body = await response.text()
    if (response.status !== 200) {
      throw new Error(`${url}: ${response.status}\n${body}\n${server.output()}`)
    }
    bodies.push(body)
  }
  return bodies
}

/**
 * Starts the Vite dev server of the app in `dir`, visits its page twice and returns the text
 * of its `<p id="visits">` each time.
 */
async function viteVisits(dir) {
  const port = await freePort()
  const vite = path.join(dir, 'node_modules', 'vite', 'bin', 'vite.js')
  const url = `http://127.0.0.1:${port}/`
  const server = await start(
    dir,
    [vite, 'dev', '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
    `${url}not-served`,
  )
  const bodies = await visit(url, 2, server)
  return bodies.map((body) => /<p id="visits">(.*?)<\/p>/.exec(body)?.[1])
}

/** What the shared store at `dir`/.kv holds under `key` in VISITS, read by this process. */
async function stored(dir, key) {
  const kv = new KV({ path: path.join(dir, '.kv'), namespace: 'VISITS' })
  try {
    return await kv.get(key)
  } finally {
    await kv.close()
  }
}

test('Hono on @hono/node-server: app.fetch(request, env, ctx) with env from getPlatformProxy()', async () => {
  const dir = app({
    'server.mjs': `
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { getPlatformProxy } from 'kv-binding/platform'

const { env, ctx, dispose } = await getPlatformProxy()
const app = new Hono()
app.get('/visits/:name', async (c) => {
  const key = 'visits:' + c.req.param('name')
  const count = Number((await c.env.VISITS.get(key)) ?? 0) + 1
  await c.env.VISITS.put(key, String(count))
  c.executionCtx.waitUntil(c.env.VISITS.put('last', c.req.param('name')))
  return c.text(c.env.GREETING + ' ' + count)
})
const server = serve({ fetch: (request) => app.fetch(request, env, ctx), port: Number(process.env.PORT), hostname: '127.0.0.1' })
process.on('SIGTERM', () => server.close(() => dispose().then(() => process.exit(0))))
`,
  })
  const port = await freePort()
  process.env.PORT = String(port)
  const url = `http://127.0.0.1:${port}/visits/ada`
  let server
  try {
    server = await start(dir, ['server.mjs'], `http://127.0.0.1:${port}/not-served`)
  } finally {
    delete process.env.PORT
  }
  expect(await visit(url, 3, server)).toEqual(['hello 1', 'hello 2', 'hello 3'])
  // Read through the server's store while it holds it, as the CLI or another tool would.
  expect(await stored(dir, 'visits:ada')).toBe('3')
  await stop(server.child)
  expect(server.child.exitCode).toBe(0)
  expect(await stored(dir, 'last')).toBe('ada')
})

test('React Router: cloudflareDevProxy’s getLoadContext puts kv-binding’s env in context.cloudflare', async () => {
  const dir = app({
    'package.json': '{ "name": "rr", "private": true, "type": "module" }\n',
    'vite.config.js': `
import { reactRouter } from '@react-router/dev/vite'
import { cloudflareDevProxy } from '@react-router/dev/vite/cloudflare'
import { getPlatformProxy } from 'kv-binding/platform'

const platform = getPlatformProxy()
export default {
  plugins: [
    cloudflareDevProxy({
      getLoadContext: async ({ context }) => {
        const { env } = await platform
        return { cloudflare: { ...context.cloudflare, env: { ...context.cloudflare.env, ...env } } }
      },
    }),
    reactRouter(),
  ],
}
`,
    'react-router.config.js': 'export default { ssr: true }\n',
    'app/root.jsx': `
import { Outlet, Scripts } from 'react-router'
export default function App() {
  return (<html lang="en"><head><meta charSet="utf-8" /></head><body><Outlet /><Scripts /></body></html>)
}
`,
    // As in Cloudflare's template: the dev server resolves react-dom/server for workerd,
    // which renders to a web stream.
    'app/entry.server.jsx': `
import { ServerRouter } from 'react-router'
import { renderToReadableStream } from 'react-dom/server'
export default async function handleRequest(request, status, headers, routerContext) {
  const body = await renderToReadableStream(<ServerRouter context={routerContext} url={request.url} />)
  await body.allReady
  headers.set('Content-Type', 'text/html')
  return new Response(body, { headers, status })
}
`,
    'app/routes.js': `
import { index } from '@react-router/dev/routes'
export default [index('routes/home.jsx')]
`,
    'app/routes/home.jsx': `
export async function loader({ context }) {
  const { env } = context.cloudflare
  const count = Number((await env.VISITS.get('home')) ?? 0) + 1
  await env.VISITS.put('home', String(count))
  return { count, greeting: env.GREETING }
}
export default function Home({ loaderData }) {
  return <p id="visits">{loaderData.greeting} visit {loaderData.count}</p>
}
`,
  })
  expect(await viteVisits(dir)).toEqual([
    'hello<!-- --> visit <!-- -->1',
    'hello<!-- --> visit <!-- -->2',
  ])
  expect(await stored(dir, 'home')).toBe('2')
})

test('SvelteKit: a server hook gives event.platform from getPlatformProxy() in dev', async () => {
  const dir = app({
    'package.json': '{ "name": "kit", "private": true, "type": "module" }\n',
    'vite.config.js': `
import { sveltekit } from '@sveltejs/kit/vite'
export default { plugins: [sveltekit()] }
`,
    'svelte.config.js': 'export default { kit: {} }\n',
    'src/app.html': `<!doctype html>
<html lang="en"><head>%sveltekit.head%</head><body><div>%sveltekit.body%</div></body></html>
`,
    'src/hooks.server.js': `
import { dev } from '$app/environment'
import { getPlatformProxy } from 'kv-binding/platform'

const platform = dev ? getPlatformProxy() : undefined
export async function handle({ event, resolve }) {
  if (platform) event.platform = await platform
  return resolve(event)
}
`,
    'src/routes/+page.server.js': `
export async function load({ platform }) {
  const count = Number((await platform.env.VISITS.get('home')) ?? 0) + 1
  await platform.env.VISITS.put('home', String(count))
  platform.ctx.waitUntil(platform.env.VISITS.put('last', 'kit'))
  return { count, greeting: platform.env.GREETING }
}
`,
    'src/routes/+page.svelte': `
<script>
  let { data } = $props()
</script>
<p id="visits">{data.greeting} visit {data.count}</p>
`,
  })
  expect(await viteVisits(dir)).toEqual(['hello visit 1', 'hello visit 2'])
  expect(await stored(dir, 'home')).toBe('2')
  expect(await stored(dir, 'last')).toBe('kit')
})

test('hybrid: a D1 binding from wrangler’s own proxy beside the KV namespace from kv-binding', async () => {
  const dir = app({
    'wrangler.toml': `${WRANGLER_TOML}
[[d1_databases]]
binding = "DB"
database_name = "visits"
database_id = "d1-local"
`,
    'hybrid.mjs': `
import { getPlatformProxy } from 'kv-binding/platform'

const { env, dispose } = await getPlatformProxy()
await env.DB.exec('CREATE TABLE IF NOT EXISTS seen (name TEXT)')
await env.DB.prepare('INSERT INTO seen VALUES (?)').bind('ada').run()
const row = await env.DB.prepare('SELECT count(*) AS n FROM seen').first()
await env.VISITS.put('rows', String(row.n))
console.log(JSON.stringify({
  kvBinding: typeof env.VISITS.snapshot === 'function',
  rows: row.n,
  greeting: env.GREETING,
}))
await dispose()
`,
  })
  const { code, stdout, stderr } = await runScript(dir, 'hybrid.mjs')
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' })
  expect(JSON.parse(stdout.trim().split('\n').pop())).toEqual({
    kvBinding: true,
    rows: 1,
    greeting: 'hello',
  })
  expect(await stored(dir, 'rows')).toBe('1')
  // wrangler kept its D1 data in its own state, beside the project.
  expect(fs.existsSync(path.join(dir, '.wrangler', 'state', 'v3', 'd1'))).toBe(true)
})

test('unstorage: the cloudflare-kv-binding driver given a namespace from getPlatformProxy()', async () => {
  const dir = app({
    'storage.mjs': `
import { createStorage } from 'unstorage'
import cloudflareKVBindingDriver from 'unstorage/drivers/cloudflare-kv-binding'
import { getPlatformProxy } from 'kv-binding/platform'

const { env, dispose } = await getPlatformProxy()
const storage = createStorage({ driver: cloudflareKVBindingDriver({ binding: env.VISITS }) })
await storage.setItem('profile:ada', { name: 'Ada' })
await storage.setItem('profile:alan', { name: 'Alan' })
console.log(JSON.stringify({
  item: await storage.getItem('profile:ada'),
  keys: (await storage.getKeys('profile')).sort(),
}))
await dispose()
`,
  })
  const { code, stdout, stderr } = await runScript(dir, 'storage.mjs')
  expect({ code, stderr }).toEqual({ code: 0, stderr: '' })
  expect(JSON.parse(stdout)).toEqual({
    item: { name: 'Ada' },
    keys: ['profile:ada', 'profile:alan'],
  })
  expect(await stored(dir, 'profile:ada')).toBe('{"name":"Ada"}')
})
