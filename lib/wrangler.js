'use strict'

// A worker's wrangler configuration (wrangler.json, wrangler.jsonc or wrangler.toml): which
// KV namespaces it binds, at the top level or in an `env.NAME` section. As wrangler does, the
// first of those names found in a directory wins, looking from a directory upwards, and
// `kv_namespaces` is not inherited: an environment without its own has none.
//
// A configuration that cannot be used is an Error with code ERR_KV_CONFIG whose message
// names the file, the line and the field.

const fs = require('node:fs')
const path = require('node:path')
const TOML = require('smol-toml')
const JSONC = require('jsonc-parser')

const CONFIG_NAMES = ['wrangler.json', 'wrangler.jsonc', 'wrangler.toml']

class ConfigError extends Error {
  constructor(message) {
    super(message)
    this.name = 'Error'
    this.code = 'ERR_KV_CONFIG'
  }
}

/** The first wrangler configuration in `dir` or a directory above it, or null. */
function findConfig(dir = process.cwd()) {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    for (const name of CONFIG_NAMES) {
      const file = path.join(at, name)
      if (fs.statSync(file, { throwIfNoEntry: false })?.isFile()) return file
    }
    if (path.dirname(at) === at) return null
  }
}

/** The 1-based line of character `offset` in `text`. */
const lineAt = (text, offset) => text.slice(0, offset).split('\n').length

/** `env.staging.kv_namespaces[1].binding`, from its path. */
const fieldName = (at) =>
  at.reduce(
    (name, part) =>
      typeof part === 'number' ? `${name}[${part}]` : name ? `${name}.${part}` : part,
    '',
  )

/**
 * Reads and parses `file`; returns `{ file, config, lineOf }`, where `lineOf(path)` is the
 * line where the field at `path` (or the nearest enclosing one) is written.
 */
function readConfig(file) {
  file = path.resolve(file)
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (error) {
    throw new ConfigError(`Cannot read the wrangler configuration ${file}: ${error.message}`)
  }
  const { config, lineOf } = file.endsWith('.toml') ? parseToml(file, text) : parseJsonc(file, text)
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(`${file}:1: a wrangler configuration is an object of settings.`)
  }
  return { file, config, lineOf }
}

function parseJsonc(file, text) {
  const errors = []
  const options = { allowTrailingComma: true, disallowComments: false }
  const tree = JSONC.parseTree(text, errors, options)
  if (errors.length > 0) {
    const [{ error, offset }] = errors
    throw new ConfigError(
      `${file}:${lineAt(text, offset)}: not valid JSON with comments ` +
        `(${JSONC.printParseErrorCode(error)}).`,
    )
  }
  const lineOf = (at) => {
    for (let end = at.length; end >= 0; end--) {
      const node = tree && JSONC.findNodeAtLocation(tree, at.slice(0, end))
      // A property's value: point at its key, where the field is named.
      if (node)
        return lineAt(text, node.parent?.type === 'property' ? node.parent.offset : node.offset)
    }
    return 1
  }
  return { config: tree === undefined ? undefined : JSONC.getNodeValue(tree), lineOf }
}

function parseToml(file, text) {
  let config
  try {
    config = TOML.parse(text)
  } catch (error) {
    const reason = error.message.split('\n')[0].replace(/^Invalid TOML document: /, '')
    throw new ConfigError(`${file}:${error.line ?? 1}: not valid TOML (${reason}).`)
  }
  const lines = tomlLines(text)
  const lineOf = (at) => {
    for (let end = at.length; end > 0; end--) {
      const line = lines.get(JSON.stringify(at.slice(0, end)))
      if (line !== undefined) return line
    }
    return 1
  }
  return { config, lineOf }
}

// Where each table, array-of-tables element and key of a TOML document is first written, by
// the JSON text of its path. Enough to point at a field in the forms configurations use
// ([table], [[array]], key = value, dotted keys); a field inside an inline table or array is
// found at the line of the key that holds it.
function tomlLines(text) {
  const lines = new Map()
  const counts = new Map()
  const keyPath = (keys) =>
    keys
      .split('.')
      .map((key) => key.trim().replace(/^"(.*)"$|^'(.*)'$/, '$1$2'))
      .filter(Boolean)
  const note = (at, line) => {
    for (let end = 1; end <= at.length; end++) {
      const id = JSON.stringify(at.slice(0, end))
      if (!lines.has(id)) lines.set(id, line)
    }
  }
  let table = []
  text.split('\n').forEach((raw, index) => {
    const line = index + 1
    const source = raw.trim()
    let match
    if ((match = /^\[\[([^\]]+)\]\]/.exec(source))) {
      const name = keyPath(match[1])
      const id = JSON.stringify(name)
      const count = counts.get(id) ?? 0
      counts.set(id, count + 1)
      table = [...name, count]
      note(table, line)
    } else if ((match = /^\[([^\]]+)\]/.exec(source))) {
      table = keyPath(match[1])
      note(table, line)
    } else if ((match = /^([A-Za-z0-9_\-."' ]+?)\s*=/.exec(source))) {
      note([...table, ...keyPath(match[1])], line)
    }
  })
  return lines
}

/**
 * The settings of environment `envName` in `loaded` (from `readConfig`), or of its top level
 * when `envName` is undefined: `{ section, base, fail }`, where `base` is the section's path
 * and `fail(at, message)` throws a ConfigError naming the field at `at` and its line.
 */
function configSection(loaded, envName) {
  const { file, config, lineOf } = loaded
  const fail = (at, message) => {
    throw new ConfigError(`${file}:${lineOf(at)}: ${fieldName(at)} ${message}`)
  }
  if (envName === undefined) return { section: config, base: [], fail }
  const envs = config.env
  if (envs !== undefined && (typeof envs !== 'object' || envs === null || Array.isArray(envs))) {
    fail(['env'], 'must be a table of environments.')
  }
  if (!Object.hasOwn(envs ?? {}, envName)) {
    const known = Object.keys(envs ?? {})
    throw new ConfigError(
      `${file} has no environment "${envName}" ` +
        `(${known.length ? `it has ${known.map((n) => `"${n}"`).join(', ')}` : 'it has none'}).`,
    )
  }
  const base = ['env', envName]
  const section = envs[envName]
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    fail(base, 'must be a table of settings.')
  }
  return { section, base, fail }
}

/**
 * The KV namespaces that `loaded` (from `readConfig`) binds, for environment `envName` (the
 * top level when undefined): `[{ binding, id, previewId }]`.
 */
function kvNamespaces(loaded, envName) {
  const { section, base, fail } = configSection(loaded, envName)
  const listAt = [...base, 'kv_namespaces']
  const list = section.kv_namespaces ?? []
  if (!Array.isArray(list)) fail(listAt, 'must be an array of { binding, id } entries.')
  const seen = new Set()
  return list.map((entry, index) => {
    const at = [...listAt, index]
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      fail(at, 'must be a { binding, id } entry.')
    }
    const { binding, id, preview_id: previewId } = entry
    if (typeof binding !== 'string' || binding === '') {
      fail([...at, 'binding'], 'must be the name the worker sees, such as "MY_KV".')
    }
    if (seen.has(binding)) fail([...at, 'binding'], `binds "${binding}" a second time.`)
    seen.add(binding)
    if (id !== undefined && typeof id !== 'string') fail([...at, 'id'], 'must be a string.')
    if (previewId !== undefined && typeof previewId !== 'string') {
      fail([...at, 'preview_id'], 'must be a string.')
    }
    return { binding, id, previewId }
  })
}

/**
 * The KV namespaces bound by the wrangler configuration `config` (a file), or by the one
 * found from `from` upwards when `config` is not given.
 */
function loadKvNamespaces({ config, env, from } = {}) {
  const file = config === undefined ? findConfig(from) : path.resolve(from ?? '.', config)
  if (file === null) {
    throw new ConfigError(
      `No wrangler configuration (${CONFIG_NAMES.join(', ')}) in ${path.resolve(from ?? '.')} ` +
        'or any directory above it.',
    )
  }
  const loaded = readConfig(file)
  return { file: loaded.file, namespaces: kvNamespaces(loaded, env) }
}

/**
 * `binding`, once the wrangler configuration (as for `loadKvNamespaces`) is found to bind a
 * KV namespace by that name: the namespace a worker's `env[binding]` reads.
 */
function bindingNamespace(binding, options) {
  const { file, namespaces } = loadKvNamespaces(options)
  if (namespaces.some((namespace) => namespace.binding === binding)) return binding
  const bound = namespaces.map((namespace) => `"${namespace.binding}"`).join(', ')
  const where = options?.env === undefined ? '' : ` in environment "${options.env}"`
  throw new ConfigError(
    `${file} binds no KV namespace "${binding}"${where} (${bound ? `it binds ${bound}` : 'it binds none'}).`,
  )
}

module.exports = {
  ConfigError,
  CONFIG_NAMES,
  configSection,
  findConfig,
  readConfig,
  kvNamespaces,
  loadKvNamespaces,
  bindingNamespace,
}
