'use strict'

// Jest globalSetup: starts the Redis servers every Redis suite shares (see servers.js), and a
// Valkey server, whose URL makes the conformance suites run on Valkey too; teardown.js stops
// them.

const { has, startServer, startCluster } = require('./servers')

// Whether `server` (and redis-cli) can run here. Where it cannot, says that the `suites` are
// skipped, or fails under CI=true, whose .ci/run installs it.
function present(server, suites) {
  if (has(server) && has('redis-cli')) return true
  if (process.env.CI === 'true') {
    throw new Error(
      `${server} is not installed, and under CI=true the ${suites} suites may not be skipped (.ci/run installs it).`,
    )
  }
  console.log(`\nkv-binding: ${server} is not installed here, so the ${suites} suites are skipped.`)
  return false
}

module.exports = async function setup() {
  if (!present('redis-server', 'Redis')) return
  const single = await startServer(['--appendonly', 'no'])
  const cluster = await startCluster()
  globalThis.kvTestRedisServers = [single, ...cluster]
  process.env.KV_TEST_REDIS_URL = `redis://127.0.0.1:${single.port}`
  process.env.KV_TEST_REDIS_CLUSTER_URL = `redis://127.0.0.1:${cluster[0].port}`
  if (!present('valkey-server', 'Valkey')) return
  const valkey = await startServer(['--appendonly', 'no'], undefined, 'valkey-server')
  globalThis.kvTestRedisServers.push(valkey)
  process.env.KV_TEST_VALKEY_URL = `redis://127.0.0.1:${valkey.port}`
}
