'use strict'

// What a wrangler configuration section binds besides KV namespaces and variables: the
// bindings kv-binding does not serve (D1, R2, Durable Objects, services, queues...), named by
// kind, so that getPlatformProxy() can take them from wrangler or say that it left them out.

// Each kind: the configuration key, what a user calls it, and where its bindings' names are.
// `list` is an array of entries, `nested` an object holding such an array under `field`,
// `single` one entry, `names` an object whose keys are the names (service-worker modules).
const KINDS = [
  ['d1_databases', 'D1 database', 'list'],
  ['r2_buckets', 'R2 bucket', 'list'],
  ['durable_objects', 'Durable Object namespace', 'nested', 'bindings'],
  ['services', 'service', 'list'],
  ['queues', 'queue producer', 'nested', 'producers'],
  ['workflows', 'Workflow', 'list'],
  ['analytics_engine_datasets', 'Analytics Engine dataset', 'list'],
  ['vectorize', 'Vectorize index', 'list'],
  ['hyperdrive', 'Hyperdrive configuration', 'list'],
  ['ai', 'Workers AI', 'single'],
  ['browser', 'Browser Rendering', 'single'],
  ['images', 'Images', 'single'],
  ['media', 'Media Transformations', 'single'],
  ['stream', 'Stream', 'single'],
  ['version_metadata', 'version metadata', 'single'],
  ['assets', 'static assets', 'single'],
  ['send_email', 'Email sender', 'list'],
  ['dispatch_namespaces', 'dispatch namespace', 'list'],
  ['mtls_certificates', 'mTLS certificate', 'list'],
  ['pipelines', 'Pipeline', 'list'],
  ['secrets_store_secrets', 'Secrets Store secret', 'list'],
  ['ratelimits', 'rate limiter', 'list'],
  ['worker_loaders', 'Worker Loader', 'list'],
  ['vpc_services', 'VPC service', 'list'],
  ['logfwdr', 'log forwarder', 'nested', 'bindings'],
  ['unsafe', 'unsafe binding', 'nested', 'bindings'],
  ['wasm_modules', 'Wasm module', 'names'],
  ['text_blobs', 'text blob', 'names'],
  ['data_blobs', 'data blob', 'names'],
]

const isEntry = (value) => typeof value === 'object' && value !== null && !Array.isArray(value)

// The name a worker reads an entry by: `binding`, or `name` for the kinds that call it so.
const nameOf = (entry) =>
  isEntry(entry) ? (typeof entry.binding === 'string' ? entry.binding : entry.name) : undefined

/** The names `value` (a section's setting of kind `shape`) binds. */
function namesOf(value, shape, field) {
  if (shape === 'names') return isEntry(value) ? Object.keys(value) : []
  if (shape === 'single') return [nameOf(value)]
  const list = shape === 'nested' ? (isEntry(value) ? value[field] : undefined) : value
  return Array.isArray(list) ? list.map(nameOf) : []
}

/**
 * The bindings of `section` that kv-binding does not serve: `[{ kind, name }]`, in the
 * configuration's order of kinds. Only what wrangler would bind is named; a malformed entry
 * is wrangler's to report.
 */
function otherBindings(section) {
  const found = []
  for (const [key, kind, shape, field] of KINDS) {
    if (section[key] === undefined) continue
    for (const name of namesOf(section[key], shape, field)) {
      if (typeof name === 'string' && name !== '') found.push({ kind, name })
    }
  }
  return found
}

/** `D1 database DB, R2 bucket BUCKET`: the bindings, for a message. */
const describe = (bindings) => bindings.map(({ kind, name }) => `${kind} ${name}`).join(', ')

module.exports = { otherBindings, describe }
