// Compiled by `npm run test:types`: a KV must be usable wherever worker code expects a
// KVNamespace, with every overload resolving to the same result types.

import { KV, forRealm, flushOnSignals, wranglerEnv } from '../..'

const kv = new KV()
const ns: KVNamespace = kv
const typed: KVNamespace<'user:1' | 'user:2'> = new KV<'user:1' | 'user:2'>({ path: '.kv' })
const OtherRealmKV: typeof KV = forRealm(globalThis)
const other: KVNamespace = new OtherRealmKV({ clock: () => 0 })
const optIn: () => void = flushOnSignals
const bound: { SESSIONS: KVNamespace; FLAGS: KVNamespace } = wranglerEnv<'SESSIONS' | 'FLAGS'>({
  config: 'wrangler.toml',
  env: 'staging',
  path: '.kv',
})
// @ts-expect-error: each namespace is named by its binding
wranglerEnv({ namespace: 'KV' })
const experimental = new KV<'user:1' | 'user:2'>({ experimental: true })
const deleted: Promise<void> | undefined = experimental.deleteBulk?.(['user:1', 'user:2'])
// @ts-expect-error: a key outside the namespace's Key type
experimental.deleteBulk?.(['user:3'])

type Is<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never
const check = <T extends true>(value: T) => value

async function overloads(env: { KV: KVNamespace }) {
  env.KV = kv
  const text = await kv.get('k')
  check<Is<typeof text, string | null>>(true)
  const json = await kv.get<{ a: number }>('k', 'json')
  check<Is<typeof json, { a: number } | null>>(true)
  const buffer = await kv.get('k', { type: 'arrayBuffer', cacheTtl: 60 })
  check<Is<typeof buffer, ArrayBuffer | null>>(true)
  const stream = await kv.get('k', 'stream')
  check<Is<typeof stream, ReadableStream | null>>(true)
  const bulk = await kv.get(['a', 'b'], 'json')
  check<Is<typeof bulk, Map<string, unknown>>>(true)
  const withMetadata = await kv.getWithMetadata<{ v: number }>('k')
  check<Is<typeof withMetadata.metadata, { v: number } | null>>(true)
  const page = await kv.list<{ v: number }>({ prefix: 'user:', limit: 10, cursor: null })
  if (!page.list_complete) check<Is<typeof page.cursor, string>>(true)
  await kv.put('k', new Uint8Array(1), { expirationTtl: 60, metadata: { v: 1 } })
  await kv.delete('k')
  const dumped = await kv.dump()
  const skipped: string[] = []
  await kv.dump({ onDamaged: (key, error) => skipped.push(`${key}: ${error.code}`) })
  await new KV({ listPageCap: 2, bulkIndexKeys: 'keep' }).bulkPut(dumped)
  const snapshot = await kv.snapshot()
  check<Is<typeof snapshot.size, number>>(true)
  await kv.restore(snapshot)
  await kv.clear()
  await kv.flush()
  await kv.close()
  // @ts-expect-error: values must be strings, buffers, views or streams
  await kv.put('k', new Map())
  // @ts-expect-error: a key outside the namespace's Key type
  await typed.get('user:3')
  const shared = new KV({
    url: 'redis://localhost:6379',
    cluster: false,
    keyPrefix: 'app:',
    timeoutMs: 1000,
    partitions: 4,
    namespace: 'SESSIONS',
  })
  await new KV({
    url: 'rediss://localhost:6380',
    tls: { ca: '-----BEGIN CERTIFICATE-----' },
  }).close()
  await shared.close()
  // @ts-expect-error: the timeout is a number of milliseconds
  new KV({ url: 'redis://localhost:6379', timeoutMs: '1s' })
  // @ts-expect-error: unknown constructor option
  new KV({ pth: '.kv' })
  const eventual = new KV<'flag'>({ consistency: 'eventual', limits: { writeRate: true } })
  const tokyo: KV<'flag'> = eventual.location('tokyo')
  await tokyo.invocation().get('flag')
  await new KV({ limits: true }).close()
  // @ts-expect-error: consistency is "strong" or "eventual"
  new KV({ consistency: 'weak' })
}

export { ns, typed, other, overloads, optIn }
