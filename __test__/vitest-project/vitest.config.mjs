// The fixture project of vitest-environment-kv-binding, run by scripts/test-package.js from
// the installed tarballs, once per pool. KV_FIXTURE_PERSIST turns on kvPersist.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['kv.spec.mjs', 'other.spec.mjs'],
    environment: 'kv-binding',
    environmentOptions: {
      kvSeed: { KV: 'seed.json' },
      ...(process.env.KV_FIXTURE_PERSIST ? { kvPersist: process.env.KV_FIXTURE_PERSIST } : {}),
    },
  },
})
