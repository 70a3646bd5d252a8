'use strict'

// Private Redis servers for the test run, on free loopback ports: one single server and a
// 3-shard Redis Cluster. Jest's globalSetup starts them and hands their URLs to the test
// files in KV_TEST_REDIS_URL and KV_TEST_REDIS_CLUSTER_URL; globalTeardown stops them.

const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')

/** Whether `command` can be run. */
function has(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0
}

/** A loopback port nobody listens on now, with port + 10000 free too (a cluster's bus). */
async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 30000)
    if ((await isFree(port)) && (await isFree(port + 10000))) return port
  }
}

function isFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Resolves once `redis-cli ... args` prints something that `ok` accepts, or throws. */
async function waitFor(port, args, ok, what) {
  const deadline = Date.now() + 20_000
  for (;;) {
    const result = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' })
    if (result.status === 0 && ok(result.stdout)) return
    if (Date.now() > deadline) throw new Error(`redis on port ${port}: ${what} did not happen`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Starts `server` (redis-server, or valkey-server, which takes the same arguments) on a free
 * port in a fresh directory with `extra` arguments; resolves `{ port, dir, child }` once it
 * answers PING.
 */
async function startServer(extra = [], port, server = 'redis-server') {
  port ??= await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-binding-redis-'))
  const node = { port, dir, server, extra }
  await restart(node)
  return node
}

/**
 * Starts the server of `node` (from startServer) again, on its port, in its directory (so
 * with its AOF and, in a cluster, its nodes.conf); resolves once it answers PING.
 */
async function restart(node) {
  const { port, dir, server = 'redis-server', extra = [] } = node
  node.child = spawn(
    server,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...extra],
    { stdio: 'ignore', detached: false },
  )
  // A server that wants a password answers NOAUTH: it is up all the same.
  await waitFor(port, ['ping'], (out) => /PONG|NOAUTH/.test(out), 'PING')
}

/**
 * Starts three cluster-enabled servers, each also given `extra` arguments, and joins them
 * into one cluster of 3 shards.
 */
async function startCluster(extra = ['--appendonly', 'no']) {
  const nodes = []
  for (let i = 0; i < 3; i++) {
    nodes.push(await startServer(['--cluster-enabled', 'yes', ...extra]))
  }
  const create = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  )
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stderr}`)
  await clusterOk(nodes)
  return nodes
}

/** Resolves once every node of `nodes` sees the cluster as ok. */
async function clusterOk(nodes) {
  for (const node of nodes) {
    await waitFor(
      node.port,
      ['cluster', 'info'],
      (out) => out.includes('cluster_state:ok'),
      'a cluster',
    )
  }
}

/** Stops servers started here and removes their directories. */
async function stop(nodes) {
  await Promise.all(
    nodes.map(
      ({ child, dir }) =>
        new Promise((resolve) => {
          const done = () => {
            fs.rmSync(dir, { recursive: true, force: true })
            resolve()
          }
          if (child.exitCode !== null || child.signalCode !== null) return done()
          child.once('exit', done)
          child.kill('SIGKILL')
        }),
    ),
  )
}

module.exports = { has, freePort, startServer, restart, startCluster, clusterOk, stop, waitFor }
