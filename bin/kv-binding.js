#!/usr/bin/env node
'use strict'

const fs = require('node:fs')
const { parseArgs } = require('node:util')
const { KV } = require('..')

const USAGE = `Usage: kv-binding [--path DIR] [--namespace NS] <command> [arguments]

Reads and writes a kv-binding store (the sled store that \`new KV({ path, namespace })\` and
\`npm start\` use).

Commands:
  list [--prefix P] [--limit N] [--json]   keys, one per line (--json: name, expiration, metadata)
  get KEY [--with-metadata]                 the value to stdout (--with-metadata: JSON with
                                            value and metadata)
  put KEY [VALUE] [--file F] [--ttl S] [--expiration S] [--metadata JSON]
                                            writes VALUE, the file F, or standard input
  delete KEY...                             deletes keys (missing keys are fine)
  import FILE                               writes entries in wrangler's bulk JSON format
                                            ([{ key, value, expiration?, expiration_ttl?,
                                            metadata?, base64? }]); FILE - reads stdin
  export [FILE]                             every live entry in that format (stdout by default)

Options:
  --path DIR        store directory (default .kv)
  --namespace NS    namespace in the store (default KV, the demo worker's binding)
  --progress        show a progress bar on import and export even when stderr is not a terminal
  -h, --help        this help

Exit status: 0 on success, 1 when the key is missing or the operation fails, 2 on bad usage.`

const BATCH = 5000

class UsageError extends Error {}

function parse(argv) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        path: { type: 'string', default: '.kv' },
        namespace: { type: 'string', default: 'KV' },
        prefix: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean', default: false },
        'with-metadata': { type: 'boolean', default: false },
        metadata: { type: 'string' },
        file: { type: 'string' },
        ttl: { type: 'string' },
        expiration: { type: 'string' },
        progress: { type: 'boolean', default: false },
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

/** A progress bar on stderr, drawn only when someone is watching (or --progress). */
function progressBar(label, total, forced) {
  const shown = forced || process.stderr.isTTY
  let last = -1
  return {
    update(done) {
      const percent = total === 0 ? 100 : Math.floor((done / total) * 100)
      if (!shown || percent === last) return
      last = percent
      const width = 30
      const filled = Math.round((percent / 100) * width)
      process.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}% ${done}/${total}`,
      )
    },
    end() {
      if (shown) process.stderr.write('\n')
    },
  }
}

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks)
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
    const text = file === '-' ? (await readStdin()).toString('utf8') : fs.readFileSync(file, 'utf8')
    let entries
    try {
      entries = JSON.parse(text)
    } catch (error) {
      throw new Error(`${file} is not JSON: ${error.message}`, { cause: error })
    }
    if (!Array.isArray(entries)) throw new Error(`${file} must hold a JSON array of entries`)
    // Every entry is checked before any is written to the store: a throwaway namespace in
    // memory applies exactly the rules the store will.
    await new KV().bulkPut(entries)
    const bar = progressBar('importing', entries.length, options.progress)
    let written = 0
    try {
      for (; written < entries.length; written += BATCH) {
        bar.update(written)
        await kv.bulkPut(entries.slice(written, written + BATCH))
      }
      written = entries.length
      bar.update(written)
    } finally {
      bar.end()
    }
    process.stderr.write(`imported ${written} entries\n`)
  },

  async export(kv, [file], options) {
    const entries = await kv.dump()
    const out = file === undefined || file === '-' ? process.stdout : fs.createWriteStream(file)
    const bar = progressBar('exporting', entries.length, options.progress)
    const write = (text) =>
      out.write(text) ? undefined : new Promise((resolve) => out.once('drain', resolve))
    await write('[\n')
    for (let i = 0; i < entries.length; i++) {
      await write(`  ${JSON.stringify(entries[i])}${i + 1 < entries.length ? ',' : ''}\n`)
      if (i % 1000 === 0) bar.update(i)
    }
    await write(']\n')
    bar.update(entries.length)
    bar.end()
    if (out !== process.stdout) await new Promise((resolve) => out.end(resolve))
  },
}

async function main(argv) {
  const { values: options, positionals } = parse(argv)
  const [command, ...args] = positionals
  if (options.help || command === 'help') {
    console.log(USAGE)
    return 0
  }
  if (command === undefined) throw new UsageError('no command given')
  if (!Object.hasOwn(commands, command)) throw new UsageError(`unknown command "${command}"`)
  const kv = new KV({ path: options.path, namespace: options.namespace })
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
