// kv-binding/platform: a worker's platform in Node, as wrangler's getPlatformProxy() gives
// it, with the configuration's KV namespaces served by kv-binding.

import type { KVOptions } from './index'

/** Options of {@link getPlatformProxy}: wrangler's, then where and how the KV store is opened. */
export interface GetPlatformProxyOptions extends Omit<KVOptions, 'namespace'> {
  /** The environment (`[env.NAME]`) whose bindings and variables to use. */
  environment?: string
  /**
   * The wrangler.json, wrangler.jsonc or wrangler.toml to read (default: the first found in
   * the working directory or a directory above it; without one, `env` holds only the `.env`
   * variables).
   */
  configPath?: string
  /**
   * The `.env` files to read variables from, relative to the configuration's directory,
   * instead of `.dev.vars` or the default `.env`, `.env.local`, `.env.<environment>`,
   * `.env.<environment>.local`.
   */
  envFiles?: string[]
  /**
   * `false`: the KV namespaces live in memory and nothing is written to disk. `{ path }` is
   * wrangler's state directory, for the bindings wrangler serves; the KV store is at `path`.
   */
  persist?: boolean | { path: string }
  /** Passed to wrangler's getPlatformProxy() for the bindings it serves. */
  remoteBindings?: boolean
  /**
   * `false`: never start wrangler's getPlatformProxy(), even when the configuration has
   * bindings that kv-binding does not serve (they are left out of `env`, with a warning).
   */
  wrangler?: boolean
  /** The store's directory (default `.kv` beside the configuration). Not with `url`. */
  path?: string
}

/** A worker's `ctx`: `dispose()` waits for what `waitUntil` was given. */
export interface ExecutionContext {
  waitUntil(promise: Promise<unknown>): void
  passThroughOnException(): void
  props: any
}

/** The Cache API of a worker: nothing is cached. */
export interface CacheStorage {
  readonly default: Cache
  open(cacheName: string): Promise<Cache>
}

/** A cache that holds nothing: `match` resolves `undefined`, `delete` `false`. */
export interface Cache {
  match(request: any, options?: { ignoreMethod?: boolean }): Promise<any | undefined>
  put(request: any, response: any): Promise<void>
  delete(request: any, options?: { ignoreMethod?: boolean }): Promise<boolean>
}

/** What {@link getPlatformProxy} resolves. */
export interface PlatformProxy<
  Env = Record<string, unknown>,
  CfProperties extends Record<string, unknown> = Record<string, unknown>,
> {
  /** The bindings: each KV namespace a kv-binding `KV`, the variables, wrangler's others. */
  env: Env
  /** A request's `cf` properties (wrangler's when it runs, else a fixed placeholder). */
  cf: CfProperties
  ctx: ExecutionContext
  caches: CacheStorage
  /**
   * Waits for `ctx.waitUntil` work (at most 30 s), then closes (and flushes) the namespaces
   * and wrangler's proxy.
   */
  dispose: () => Promise<void>
}

/**
 * A worker's platform in Node, as wrangler's getPlatformProxy() gives it: `env[binding]` is a
 * kv-binding `KV` of the namespace named by the binding, for each entry of `kv_namespaces`,
 * beside the configuration's `vars` and the `.dev.vars` or `.env` secrets. Bindings that
 * kv-binding does not serve come from wrangler's own getPlatformProxy() when wrangler is
 * installed; otherwise they are left out, with one warning naming them. A second call in the
 * same process shares the namespaces the first opened.
 */
export declare function getPlatformProxy<
  Env = Record<string, unknown>,
  CfProperties extends Record<string, unknown> = Record<string, unknown>,
>(options?: GetPlatformProxyOptions): Promise<PlatformProxy<Env, CfProperties>>
