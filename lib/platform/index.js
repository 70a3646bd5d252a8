'use strict'

// kv-binding/platform: getPlatformProxy(), with wrangler's signature and result, for the
// frameworks whose dev servers run in Node and take a worker's `env` from it. Its KV
// namespaces are kv-binding namespaces, each named by its binding, in the store the other
// tools use (`.kv` beside the configuration, or `path`, or Redis at `url`); its variables are
// the configuration's `vars` and the `.dev.vars` or `.env` secrets. Bindings kv-binding does
// not serve (D1, R2, Durable Objects...) come from wrangler's own getPlatformProxy() when
// wrangler is installed, with kv-binding's namespaces in place of its KV ones.

const path = require('node:path')
const { isObject } = require('../arguments.js')
const { KV } = require('../kv.js')
const { findConfig, readConfig, configSection, kvNamespaces } = require('../wrangler.js')
const { devVars } = require('./vars.js')
const { otherBindings, describe } = require('./bindings.js')
const { placeholderCf, ExecutionContext, CacheStorage } = require('./runtime.js')
const { openNamespace, releaseNamespace } = require('./namespaces.js')

/** Checks the options, with the messages users see; returns them split in two. */
function readOptions(options) {
  if (!isObject(options)) throw new TypeError('getPlatformProxy() takes an options object.')
  const { configPath, environment, envFiles, persist, remoteBindings, wrangler, ...kvOptions } =
    options
  const fail = (message) => {
    throw new TypeError(message)
  }
  if (configPath !== undefined && (typeof configPath !== 'string' || configPath === '')) {
    fail('The configPath option must be the path of a wrangler configuration file.')
  }
  if (environment !== undefined && (typeof environment !== 'string' || environment === '')) {
    fail('The environment option must be the name of an environment of the configuration.')
  }
  if (
    envFiles !== undefined &&
    (!Array.isArray(envFiles) || envFiles.some((file) => typeof file !== 'string'))
  ) {
    fail('The envFiles option must be an array of paths of .env files.')
  }
  const persistPath = isObject(persist) ? persist.path : undefined
  if (
    !(persist === undefined || typeof persist === 'boolean') &&
    !(typeof persistPath === 'string' && persistPath !== '')
  ) {
    fail('The persist option must be true, false or { path: string }.')
  }
  if (remoteBindings !== undefined && typeof remoteBindings !== 'boolean') {
    fail('The remoteBindings option must be true or false.')
  }
  if (wrangler !== undefined && typeof wrangler !== 'boolean') {
    fail('The wrangler option must be true or false.')
  }
  if (kvOptions.namespace !== undefined) {
    fail('getPlatformProxy() names each KV namespace by its binding: leave out namespace.')
  }
  if (persist === false && (kvOptions.path !== undefined || kvOptions.url !== undefined)) {
    fail('persist: false keeps nothing: leave out path and url, or leave out persist.')
  }
  const proxyOptions = { configPath, environment, envFiles, persist, remoteBindings }
  return { proxyOptions, useWrangler: wrangler !== false, kvOptions }
}

/** The configuration and what it binds, or an empty section when there is none. */
function readProject({ configPath, environment }) {
  const file = configPath === undefined ? findConfig() : path.resolve(configPath)
  if (file === null) return { file: undefined, dir: process.cwd(), section: {}, namespaces: [] }
  const loaded = readConfig(file)
  const { section, base, fail } = configSection(loaded, environment)
  if (section.vars !== undefined && !isObject(section.vars)) {
    fail([...base, 'vars'], 'must be a table of variables.')
  }
  const required = section.secrets?.required
  if (
    required !== undefined &&
    (!Array.isArray(required) || required.some((name) => typeof name !== 'string'))
  ) {
    fail([...base, 'secrets', 'required'], 'must be an array of secret names.')
  }
  return {
    file: loaded.file,
    dir: path.dirname(loaded.file),
    section,
    namespaces: kvNamespaces(loaded, environment),
  }
}

// Messages already given: each is said once per process.
const warned = new Set()
function warnOnce(message) {
  if (warned.has(message)) return
  warned.add(message)
  process.emitWarning(message, { code: 'KV_BINDING_LEFT_OUT' })
}

/** wrangler's module, as installed for the project in `dir`, or null when it is not. */
function findWrangler(dir) {
  let entry
  try {
    entry = require.resolve('wrangler', { paths: [dir] })
  } catch {
    return null
  }
  // wrangler's entry is CommonJS; required, it loads under Jest too, where import() needs a flag.
  return require(entry)
}

/**
 * Emulates a worker's platform in Node: `{ env, cf, ctx, caches, dispose }`, as wrangler's
 * getPlatformProxy() gives them, with the configuration's KV namespaces served by kv-binding.
 *
 * @param {object} [options] wrangler's options (`configPath`, `environment`, `envFiles`,
 *   `persist`, `remoteBindings`), `wrangler: false` to never start wrangler's proxy, and the
 *   KV options (`path`, default `.kv` beside the configuration; `url`; `consistency`...)
 */
async function getPlatformProxy(options = {}) {
  const { proxyOptions, useWrangler, kvOptions } = readOptions(options)
  const project = readProject(proxyOptions)
  const { vars, missing } = devVars({
    section: project.section,
    dir: project.dir,
    environment: proxyOptions.environment,
    envFiles: proxyOptions.envFiles,
  })
  if (missing.length > 0) {
    warnOnce(`Missing required secrets: ${missing.join(', ')}. Add them to .dev.vars or .env.`)
  }
  // In memory, on Redis, or in the store beside the configuration.
  const where =
    proxyOptions.persist === false || kvOptions.url !== undefined
      ? {}
      : { path: path.resolve(project.dir, kvOptions.path ?? '.kv') }
  const opened = []
  try {
    for (const { binding } of project.namespaces) {
      opened.push(openNamespace(KV, { ...kvOptions, ...where, namespace: binding }))
    }
    const others = otherBindings(project.section)
    let wranglerProxy = null
    if (others.length > 0) {
      const wrangler = useWrangler ? findWrangler(project.dir) : null
      if (wrangler === null) {
        const why = useWrangler
          ? 'wrangler is not installed here (npm install --save-dev wrangler would bring them)'
          : 'wrangler: false was given'
        warnOnce(
          `getPlatformProxy() from kv-binding serves KV namespaces and variables, and ${why}: ` +
            `env leaves out ${describe(others)}.`,
        )
      } else {
        wranglerProxy = await wrangler.getPlatformProxy({
          ...proxyOptions,
          configPath: project.file,
        })
      }
    }
    return assemble(vars, opened, wranglerProxy)
  } catch (error) {
    await Promise.allSettled(opened.map(releaseNamespace))
    throw error
  }
}

/** The proxy: wrangler's bindings when it runs, the variables, and our namespaces over both. */
function assemble(vars, opened, wranglerProxy) {
  const env = { ...wranglerProxy?.env, ...vars }
  for (const { binding, kv } of opened) env[binding] = kv
  const ctx = new ExecutionContext()
  let disposed = null
  const dispose = () => {
    disposed ??= (async () => {
      await ExecutionContext.settle(ctx)
      const closing = opened.map(releaseNamespace)
      if (wranglerProxy !== null) closing.push(wranglerProxy.dispose())
      const failed = (await Promise.allSettled(closing)).find((r) => r.status === 'rejected')
      if (failed) throw failed.reason
    })()
    return disposed
  }
  return {
    env,
    cf: wranglerProxy?.cf ?? placeholderCf(),
    ctx,
    caches: wranglerProxy?.caches ?? new CacheStorage(),
    dispose,
  }
}

module.exports = { getPlatformProxy }
