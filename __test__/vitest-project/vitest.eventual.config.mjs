// The environment with kvConsistency and kvLimits (eventual.spec.mjs).
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['eventual.spec.mjs'],
    environment: 'kv-binding',
    environmentOptions: {
      kvSeed: { KV: 'seed.json' },
      kvConsistency: 'eventual',
      kvLimits: true,
    },
  },
})
