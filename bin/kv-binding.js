#!/usr/bin/env node
'use strict'

const fs = require('node:fs')
const { parseArgs } = require('node:util')
const { KV } = require('..')
const { bindingNamespace } = require('../lib/wrangler.js')
const { entriesOf, openOutput, progressBar, readStdin } = require('../lib/cli-files.js')

const USAGE = `Usage: kv-binding [--path DIR | --url URL] [--namespace NS | --binding NAME]
                  <command> [arguments]

Reads and writes a kv-binding store: the sled store that \`new KV({ path, namespace })\` and
\`npm start\` use, or with --url a namespace on Redis (\`new KV({ url, namespace })\`).

Commands:
  list [--prefix P] [--limit N] [--json]   keys, one per line (--json: name, expiration, metadata)
  get KEY [--with-metadata]                 the value to stdout (--with-metadata: JSON with
                                            value and metadata)
  put KEY [VALUE] [--file F] [--ttl S] [--expiration S] [--metadata JSON]
                                            writes VALUE, the file F, or standard input
  delete KEY...                             deletes keys (missing keys are fine)
  import FILE                               writes entries in wrangler's bulk JSON format
                                            ([{ key, value, expiration?, expiration_ttl?,
                                            metadata?, base64? }]), all or none; FILE - reads
                                            stdin
  export [FILE] [--skip-damaged]            every live entry in that format (stdout by
                                            default); --skip-damaged leaves out entries whose
                                            value is damaged and lists them on stderr
  import --from-wrangler [DIR]              every namespace of wrangler's local state (DIR,
                                            default .wrangler/state), each named by its
                                            binding in the wrangler configuration, else by
                                            its id; all or nothing per namespace
  export --to-wrangler [DIR]                the namespaces the wrangler configuration binds,
                                            into that state under their ids (stop wrangler
                                            dev first)
  serve [--port N] [--host H] [--token T]   Cloudflare's KV REST API and a data browser over
                                            every namespace of the store, until stopped
                                            (port 8788, host 127.0.0.1, a new token unless
                                            --token or KV_TOKEN gives one; another host
                                            needs a token of yours)

Options:
  --path DIR        store directory (default .kv)
  --url URL         a Redis server instead: redis://[user:password@]host:port[/db], or
                    the KV_URL environment variable
  --cluster         URL is a node of a Redis Cluster
  --key-prefix P    the Redis key prefix (default kv:)
  --namespace NS    namespace in the store (default KV, the demo worker's binding)
  --binding NAME    the namespace a worker reads as env.NAME, checked against the
                    kv_namespaces of its wrangler configuration
  --env NAME        with --binding: the bindings of wrangler environment NAME
  --config FILE     with --binding: this wrangler.json, wrangler.jsonc or wrangler.toml
                    (default: the first found from the working directory upwards)
  --progress        show a progress bar on import and export even when stderr is not a terminal
  -h, --help        this help

Exit status: 0 on success, 1 when the key is missing or the operation fails, 2 on bad usage.`

class UsageError extends Error {}

/**
 * The cache of a store the command line opens: one command reads little twice, and a small
 * cache keeps an import of any size within about twice its file in memory.
 */
const CACHE_BYTES = 4 << 20

/** The namespace the command line names: --namespace, or a binding of a wrangler config. */
function namespaceOf(options) {
  const { binding, env, config } = options
  if (binding === undefined) {
    if (env !== undefined || config !== undefined) {
      throw new UsageError('--env and --config go with --binding')
    }
    return options.namespace ?? 'KV'
  }
  if (options.namespace !== undefined)
    throw new UsageError('give --namespace or --binding, not both')
  return bindingNamespace(binding, { env, config })
}

/** The KV options for the store the command line names: a directory, or Redis. */
function storeOptions(options) {
  const { url, path: dir, cluster } = options
  const namespace = namespaceOf(options)
  if (url === undefined || url === '') {
    if (cluster || options['key-prefix'] !== undefined) {
      throw new UsageError('--cluster and --key-prefix go with --url')
    }
    return { path: dir ?? '.kv', namespace, cacheCapacity: CACHE_BYTES }
  }
  if (dir !== undefined) throw new UsageError('give --path or --url, not both')
  return { url, namespace, cluster, keyPrefix: options['key-prefix'] }
}

function parse(argv) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        path: { type: 'string' },
        url: { type: 'string', default: process.env.KV_URL },
        cluster: { type: 'boolean', default: false },
        'key-prefix': { type: 'string' },
        namespace: { type: 'string' },
        binding: { type: 'string' },
        env: { type: 'string' },
        config: { type: 'string' },
        prefix: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean', default: false },
        'with-metadata': { type: 'boolean', default: false },
        metadata: { type: 'string' },
        file: { type: 'string' },
        ttl: { type: 'string' },
        expiration: { type: 'string' },
        progress: { type: 'boolean', default: false },
        'skip-damaged': { type: 'boolean', default: false },
        'from-wrangler': { type: 'boolean', default: false },
        'to-wrangler': { type: 'boolean', default: false },
        port: { type: 'string' },
        host: { type: 'string' },
        token: { type: 'string', default: process.env.KV_TOKEN },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (error) {
    throw new UsageError(error.message)
  }
}

function number(name, text) {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!Number.isInteger(value))
    throw new UsageError(`--${name} takes a whole number, not "${text}"`)
  return value
}

const commands = {
  async list(kv, _args, options) {
    const limit = number('limit', options.limit)
    let cursor
    let remaining = limit ?? Infinity
    const keys = []
    do {
      const page = await kv.list({
        prefix: options.prefix,
        cursor,
        limit: Math.min(1000, remaining),
      })
      keys.push(...page.keys)
      remaining -= page.keys.length
      cursor = page.cursor
    } while (cursor && remaining > 0)
    if (options.json) console.log(JSON.stringify(keys, null, 2))
    else for (const { name } of keys) console.log(name)
  },

  async get(kv, [key], options) {
    if (key === undefined) throw new UsageError('get needs a KEY')
    const { value, metadata } = await kv.getWithMetadata(key, 'arrayBuffer')
    if (value === null) {
      process.stderr.write(`kv-binding: key "${key}" not found\n`)
      return 1
    }
    const bytes = Buffer.from(value)
    if (!options['with-metadata']) {
      process.stdout.write(bytes)
      return 0
    }
    // As export writes values: text, or base64 when the bytes are not UTF-8.
    const text = bytes.toString('utf8')
    const exact = Buffer.from(text, 'utf8').equals(bytes)
    const shown = exact ? { value: text } : { value: bytes.toString('base64'), base64: true }
    console.log(JSON.stringify({ ...shown, metadata }))
    return 0
  },

  async put(kv, [key, value], options) {
    if (key === undefined) throw new UsageError('put needs a KEY')
    if (value !== undefined && options.file !== undefined) {
      throw new UsageError('put takes a VALUE or --file, not both')
    }
    let body = value
    if (body === undefined) {
      body = options.file !== undefined ? fs.readFileSync(options.file) : await readStdin()
    }
    let metadata
    if (options.metadata !== undefined) {
      try {
        metadata = JSON.parse(options.metadata)
      } catch {
        throw new UsageError(`--metadata takes JSON, not ${options.metadata}`)
      }
    }
    await kv.put(key, body, {
      expirationTtl: number('ttl', options.ttl),
      expiration: number('expiration', options.expiration),
      metadata,
    })
  },

  async delete(kv, keys) {
    if (keys.length === 0) throw new UsageError('delete needs at least one KEY')
    for (const key of keys) await kv.delete(key)
  },

  async import(kv, [file], options) {
    if (file === undefined) throw new UsageError('import needs a FILE (- for standard input)')
    const read = { entries: 0 }
    // One call: every entry is checked against one instant as it arrives, and all are
    // written in one atomic step once the last has.
    await kv.bulkPut(entriesOf(file, options.progress, read))
    process.stderr.write(`imported ${read.entries} entries\n`)
  },

  async export(kv, [file], options) {
    const out = openOutput(file)
    const skipped = []
    const onDamaged = options['skip-damaged']
      ? (key, error) => skipped.push({ key, reason: error.message })
      : undefined
    try {
      const entries = await kv.dump({ onDamaged })
      const bar = progressBar('exporting', entries.length, options.progress)
      await out.write('[\n')
      for (let i = 0; i < entries.length; i++) {
        await out.write(`  ${JSON.stringify(entries[i])}${i + 1 < entries.length ? ',' : ''}\n`)
        if (i % 1000 === 0) bar.update(i)
      }
      await out.write(']\n')
      bar.update(entries.length)
      bar.end()
      await out.close()
    } catch (error) {
      out.abandon()
      if (error.code === 'ERR_KV_CORRUPT') {
        error.message += ' Run export with --skip-damaged to save every entry that can be read.'
      }
      throw error
    }
    for (const { key, reason } of skipped) {
      process.stderr.write(`kv-binding: skipped ${JSON.stringify(key)}: ${reason}\n`)
    }
    if (skipped.length > 0) {
      process.stderr.write(`kv-binding: exported all but ${skipped.length} damaged entries\n`)
    }
  },
}

/** import --from-wrangler and export --to-wrangler: every namespace at once. */
async function wranglerState(command, [dir, ...extra], options) {
  const wanted = command === 'import' ? 'from-wrangler' : 'to-wrangler'
  if (!options[wanted] || options[command === 'import' ? 'to-wrangler' : 'from-wrangler']) {
    throw new UsageError(`--from-wrangler goes with import, --to-wrangler with export`)
  }
  if (extra.length > 0) throw new UsageError(`${command} --${wanted} takes one DIR at most`)
  if (options.namespace !== undefined || options.binding !== undefined) {
    throw new UsageError(
      `${command} --${wanted} names each namespace by its binding: leave out --namespace and --binding`,
    )
  }
  const { importWranglerState, exportWranglerState } = require('../lib/wrangler-state.js')
  // The store alone: each namespace comes from the state or the configuration.
  const store = storeOptions({ ...options, binding: undefined, env: undefined, config: undefined })
  delete store.namespace
  const open = (name) => new KV({ ...store, namespace: name })
  const run = command === 'import' ? importWranglerState : exportWranglerState
  const where = command === 'import' ? { from: dir } : { to: dir }
  const done = await run({ ...where, config: options.config, open })
  for (const { id, name, count, soon } of done) {
    const verb = command === 'import' ? 'imported' : 'exported'
    const into =
      command === 'import'
        ? `into namespace ${name} (id ${id})`
        : `of namespace ${name} as id ${id}`
    const left = soon > 0 ? `; left out ${soon} that expire within a minute` : ''
    process.stderr.write(`${verb} ${count} entries ${into}${left}\n`)
  }
  if (done.length === 0) process.stderr.write(`no namespace to ${command}\n`)
  return 0
}

/** The namespace ids the wrangler configuration binds, to the namespaces they reach. */
function configuredIds(options) {
  const { findConfig, loadKvNamespaces } = require('../lib/wrangler.js')
  // Without a configuration, namespaces are reached by their names alone.
  if (options.config === undefined && options.env === undefined && findConfig() === null) return {}
  const { namespaces } = loadKvNamespaces({ config: options.config, env: options.env })
  const ids = {}
  for (const { binding, id, previewId } of namespaces) {
    if (id !== undefined) ids[id] = binding
    if (previewId !== undefined) ids[previewId] = binding
  }
  return ids
}

/**
 * serve: the KV REST API and the data browser over every namespace of the store, until SIGINT
 * or SIGTERM.
 */
async function serveCommand(args, options) {
  if (args.length > 0) throw new UsageError('serve takes no arguments')
  if (options.namespace !== undefined || options.binding !== undefined) {
    throw new UsageError('serve serves every namespace of the store: leave out --namespace')
  }
  const { serve } = require('../lib/serve/index.js')
  const store = storeOptions({ ...options, binding: undefined, env: undefined, config: undefined })
  delete store.namespace
  delete store.cacheCapacity
  const port = number('port', options.port) ?? 8788
  const host = options.host ?? '127.0.0.1'
  let server
  try {
    server = await serve({
      ...store,
      ids: configuredIds(options),
      port,
      host,
      token: options.token,
    })
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message)
    throw error
  }
  const where = store.url === undefined ? `the store ${store.path}` : 'the Redis store'
  console.log(`kv-binding serves ${where} at ${server.url}`)
  console.log(`Browser ${server.browserUrl}`)
  console.log(`API     ${server.apiUrl}`)
  console.log(`token   ${server.token}`)
  console.log(
    `For wrangler: CLOUDFLARE_API_BASE_URL=${server.apiUrl} CLOUDFLARE_API_TOKEN=${server.token} ` +
      'CLOUDFLARE_ACCOUNT_ID=local wrangler kv key list --binding KV --remote',
  )
  await new Promise((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await server.close()
  return 0
}

async function main(argv) {
  const { values: options, positionals } = parse(argv)
  const [command, ...args] = positionals
  if (options.help || command === 'help') {
    console.log(USAGE)
    return 0
  }
  if (command === undefined) throw new UsageError('no command given')
  if (command === 'serve') return serveCommand(args, options)
  if (!Object.hasOwn(commands, command)) throw new UsageError(`unknown command "${command}"`)
  if (options['from-wrangler'] || options['to-wrangler'])
    return wranglerState(command, args, options)
  const kv = new KV(storeOptions(options))
  try {
    return (await commands[command](kv, args, options)) ?? 0
  } finally {
    await kv.close()
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status
  },
  (error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`kv-binding: ${error.message}\nRun kv-binding --help for usage.\n`)
      process.exitCode = 2
    } else {
      process.stderr.write(`kv-binding: ${error.message}\n`)
      process.exitCode = 1
    }
  },
)
