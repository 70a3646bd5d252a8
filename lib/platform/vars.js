'use strict'

// A worker's variables in local development, as `wrangler dev` and wrangler's
// getPlatformProxy() give them: the configuration's `vars` (text, or JSON given as objects),
// then the secrets of `.dev.vars` beside the configuration (`.dev.vars.<environment>` first
// when an environment is named), or, when there is no such file, of the `.env` files
// (`.env`, `.env.local`, `.env.<environment>`, `.env.<environment>.local`, later ones winning,
// `${NAME}` expanded). A configuration that declares `secrets.required` takes from those files
// only the variables it names and the `vars` they override.
//
// Two environment variables change this as they change it in wrangler:
// CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV=false reads no `.env` file, and
// CLOUDFLARE_INCLUDE_PROCESS_ENV=true adds this process's environment to what they give.

const fs = require('node:fs')
const path = require('node:path')
const dotenv = require('dotenv')
const { expand } = require('dotenv-expand')
const { ConfigError } = require('../wrangler.js')

/** The `.env` files read when there is no `.dev.vars`, in the order they override. */
function defaultEnvFiles(environment) {
  const files = ['.env', '.env.local']
  if (environment !== undefined) files.push(`.env.${environment}`, `.env.${environment}.local`)
  return files
}

/** The parsed variables of `file`, or undefined when there is no such file. */
function readEnvFile(file) {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (error) {
    if (error.code === 'ENOENT') return undefined
    throw new ConfigError(`Cannot read the variables file ${file}: ${error.message}`)
  }
  return dotenv.parse(text)
}

const isFalse = (value) => value?.toLowerCase() === 'false'
const isTrue = (value) => value?.toLowerCase() === 'true'

/**
 * The secrets of `.dev.vars` (or `.dev.vars.<environment>`) in `dir`, else of the `.env`
 * files, or undefined when none of them exists.
 */
function readSecrets(dir, environment, envFiles, includeProcessEnv) {
  if (envFiles === undefined || envFiles.length === 0) {
    const devVars = path.join(dir, '.dev.vars')
    const found =
      (environment !== undefined && readEnvFile(`${devVars}.${environment}`)) ||
      readEnvFile(devVars)
    if (found !== undefined) return found
  }
  if (isFalse(process.env.CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV)) return undefined
  const merged = {}
  for (const file of envFiles?.length ? envFiles : defaultEnvFiles(environment)) {
    Object.assign(merged, readEnvFile(path.resolve(dir, file)))
  }
  // The process's own variables, when wanted, win over the files', as in wrangler.
  const expanded = includeProcessEnv ? { ...process.env } : {}
  expand({ parsed: merged, processEnv: expanded })
  return expanded
}

/**
 * The variables `env` holds beside the bindings: `vars` of `section` (the configuration's top
 * level or environment), overridden and added to by the secrets found in `dir`.
 */
function devVars({ section, dir, environment, envFiles }) {
  const vars = {}
  for (const [name, value] of Object.entries(section.vars ?? {})) {
    vars[name] = typeof value === 'string' ? value : structuredClone(value)
  }
  const required = section.secrets?.required
  const secrets = readSecrets(
    dir,
    environment,
    envFiles,
    required !== undefined || isTrue(process.env.CLOUDFLARE_INCLUDE_PROCESS_ENV),
  )
  for (const [name, value] of Object.entries(secrets ?? {})) {
    if (required === undefined || Object.hasOwn(vars, name) || required.includes(name)) {
      vars[name] = value
    }
  }
  const missing = (required ?? []).filter((name) => !Object.hasOwn(secrets ?? {}, name))
  return { vars, missing }
}

module.exports = { devVars }
