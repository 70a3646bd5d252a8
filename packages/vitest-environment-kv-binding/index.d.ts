// Types of vitest-environment-kv-binding. In a TypeScript project, add it to the types the
// tests see (tsconfig `"types": ["vitest-environment-kv-binding"]`, or
// `/// <reference types="vitest-environment-kv-binding" />`), then name your bindings:
//
//   declare global {
//     interface KVBindings {
//       SESSIONS: KVNamespace
//       FLAGS: KVNamespace
//     }
//   }

import type { KV } from 'kv-binding'

declare global {
  /**
   * The namespaces a test file's `env` holds, by binding name. Extend it with your own
   * bindings; until then every name is a `KV`.
   */
  interface KVBindings {}

  /** The KV namespaces of this test file, as a worker's `env` holds them. */
  var env: keyof KVBindings extends never ? Record<string, KV> : KVBindings
}

/** The options of `environmentOptions`, as the Jest environment's `testEnvironmentOptions`. */
export interface KVEnvironmentOptions {
  /** Binding names (default: the wrangler configuration's bindings, else `["KV"]`). */
  kvNamespaces?: string[]
  /** A wrangler configuration to take the bindings from (default: the first found). */
  kvWranglerConfig?: string
  /** The wrangler environment whose bindings to take. */
  kvWranglerEnv?: string
  /** For each binding, a file in `wrangler kv bulk put` JSON format to seed it from. */
  kvSeed?: Record<string, string>
  /** Sled stores under this directory (one per worker) instead of memory. */
  kvPersist?: string
  /** A Redis server instead of memory (`kvCluster: true` for a Redis Cluster). */
  kvUrl?: string
  kvCluster?: boolean
  /** `"eventual"` simulates production's caching per location (see `KVOptions.consistency`). */
  kvConsistency?: 'strong' | 'eventual'
  /** Production's limits (see `KVOptions.limits`). */
  kvLimits?: boolean | { writeRate?: boolean; operationsPerInvocation?: number }
}

/** The environment Vitest loads for `environment: 'kv-binding'`. */
declare const environment: {
  name: 'kv-binding'
  viteEnvironment: 'ssr'
  setup(
    global: object,
    options: KVEnvironmentOptions,
  ): Promise<{ teardown(global: object): Promise<void> }>
  setupVM(
    options: KVEnvironmentOptions,
  ): Promise<{ getVmContext(): object; teardown(): Promise<void> }>
}
export default environment
