'use strict'

// Runs in a Jest project whose only KV configuration is the wrangler.toml beside this file.

/* global env */

test('env holds the namespaces that wrangler.toml binds, and nothing else', async () => {
  expect(Object.keys(env)).toEqual(['SESSIONS', 'FLAGS'])
  await env.SESSIONS.put('session:1', JSON.stringify({ user: 'ada' }))
  await env.FLAGS.put('beta', 'on')
  await expect(env.SESSIONS.get('session:1', 'json')).resolves.toEqual({ user: 'ada' })
  // Two bindings are two namespaces.
  await expect(env.SESSIONS.get('beta')).resolves.toBeNull()
})

test('each test starts from the same state', async () => {
  await expect(env.SESSIONS.get('session:1')).resolves.toBeNull()
  await expect(env.FLAGS.list()).resolves.toMatchObject({ keys: [] })
})
