// Compiled by `npm run test:types`: getPlatformProxy() from kv-binding/platform, typed as
// wrangler's, with kv-binding's own options beside wrangler's.

import { getPlatformProxy, type PlatformProxy } from 'kv-binding/platform'

interface Env {
  SESSIONS: KVNamespace
  GREETING: string
}

async function devServer(): Promise<void> {
  const proxy: PlatformProxy<Env> = await getPlatformProxy<Env>({
    configPath: 'wrangler.toml',
    environment: 'staging',
    envFiles: ['.env.staging'],
    persist: { path: '.wrangler/state/v3' },
    remoteBindings: false,
    wrangler: false,
    path: '.kv',
    consistency: 'eventual',
    limits: { writeRate: true },
  })
  const sessions: KVNamespace = proxy.env.SESSIONS
  const greeting: string = proxy.env.GREETING
  proxy.ctx.waitUntil(sessions.put('greeting', greeting))
  proxy.ctx.passThroughOnException()
  const cache = await proxy.caches.open('pages')
  const missed: undefined = await cache.match('https://example.com/')
  const country: unknown = proxy.cf.country
  await proxy.dispose()
  void [missed, country, proxy.caches.default]
}

// @ts-expect-error: each namespace is named by its binding
void getPlatformProxy({ namespace: 'KV' })
// @ts-expect-error: persist is a boolean or { path }
void getPlatformProxy({ persist: '.wrangler' })

export { devServer }
