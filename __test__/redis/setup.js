'use strict'

// Jest globalSetup: starts the Redis servers every Redis suite shares (see servers.js), and a
// Valkey server, whose URL makes the conformance suites run on Valkey too; teardown.js stops
// them.

const { has, startServer, startCluster } = require('./servers')

module.exports = async function setup() {
  if (!has('redis-server') || !has('redis-cli')) {
    if (process.env.CI === 'true') {
      throw new Error(
        'redis-server is not installed, and under CI=true the Redis suites may not be skipped (.ci/run installs it).',
      )
    }
    console.log(
      '\nkv-binding: redis-server is not installed here, so the Redis suites are skipped.',
    )
    return
  }
  const single = await startServer(['--appendonly', 'no'])
  const cluster = await startCluster()
  globalThis.kvTestRedisServers = [single, ...cluster]
  process.env.KV_TEST_REDIS_URL = `redis://127.0.0.1:${single.port}`
  process.env.KV_TEST_REDIS_CLUSTER_URL = `redis://127.0.0.1:${cluster[0].port}`
  if (!has('valkey-server')) {
    if (process.env.CI === 'true') {
      throw new Error(
        'valkey-server is not installed, and under CI=true the Valkey suites may not be skipped (.ci/run installs it).',
      )
    }
    console.log(
      '\nkv-binding: valkey-server is not installed here, so the Valkey suites are skipped.',
    )
    return
  }
  const valkey = await startServer(['--appendonly', 'no'], undefined, 'valkey-server')
  globalThis.kvTestRedisServers.push(valkey)
  process.env.KV_TEST_VALKEY_URL = `redis://127.0.0.1:${valkey.port}`
}
