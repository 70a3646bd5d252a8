'use strict'

// Jest globalTeardown: stops what setup.js started.

const { stop } = require('./servers')

module.exports = async function teardown() {
  await stop(globalThis.kvTestRedisServers ?? [])
}
