'use strict'

// Installs the package the way users get it (the npm tarball plus the platform package with
// this machine's binary) into a fresh project outside the repo, with no Rust toolchain on
// PATH, and checks that it works from CommonJS, ESM, TypeScript, Jest and the shell.
//
//   node scripts/test-package.js      (after npm run build)

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')
const PLATFORM = 'linux-x64-gnu'
// Every file the package's tarball holds, and nothing else.
const EXPECTED_FILES = require('./package-files.json')

const results = []
function check(name, fn) {
  try {
    fn()
    results.push([name, null])
    console.log(`  ok    ${name}`)
  } catch (error) {
    results.push([name, error])
    console.log(`  FAIL  ${name}\n        ${String(error.message).split('\n').join('\n        ')}`)
  }
}

// A PATH without cargo or rustup: what a user without a Rust toolchain has.
const PATH = process.env.PATH.split(path.delimiter)
  .filter((dir) => !/\.cargo|rustup/.test(dir) && !fs.existsSync(path.join(dir, 'cargo')))
  .join(path.delimiter)
const env = { ...process.env, PATH }

function sh(command, args, options = {}) {
  return execFileSync(command, args, { encoding: 'utf8', env, stdio: 'pipe', ...options })
}

function pack(dir, destination) {
  const [info] = JSON.parse(sh('npm', ['pack', dir, '--json', '--pack-destination', destination]))
  return { file: path.join(destination, info.filename), info }
}

/** Compiles `source` as consumer.ts in a new directory `dir` with tsc, strict. */
function typecheck(dir, source, { module = 'node16', moduleResolution = 'node16' } = {}) {
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'consumer.ts'), source)
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module,
        moduleResolution,
        target: 'es2022',
        lib: ['es2022', 'dom', 'esnext.disposable'],
        strict: true,
        noEmit: true,
        types: [],
      },
      files: ['consumer.ts'],
    }),
  )
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  sh(process.execPath, [tsc, '-p', dir], { cwd: dir })
}

function project(dir, tarballs, npmOptions = []) {
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "consumer", "private": true }\n')
  sh(
    'npm',
    ['install', '--no-audit', '--no-fund', '--no-package-lock', ...npmOptions, ...tarballs],
    {
      cwd: dir,
    },
  )
  return dir
}

function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kv-binding-package-'))
  try {
    console.log(`kv-binding package test in ${work}`)
    const main = pack(ROOT, work)
    const platformDir = path.join(work, PLATFORM)
    fs.cpSync(path.join(ROOT, 'npm', PLATFORM), platformDir, { recursive: true })
    fs.copyFileSync(
      path.join(ROOT, `kv-binding.${PLATFORM}.node`),
      path.join(platformDir, `kv-binding.${PLATFORM}.node`),
    )
    const platform = pack(platformDir, work)
    console.log(
      `  main tarball ${main.info.size} bytes (${main.info.files.length} files), ` +
        `${PLATFORM} tarball ${platform.info.size} bytes`,
    )

    check('the tarball holds only what a user needs', () => {
      assert.deepEqual(main.info.files.map((f) => f.path).sort(), EXPECTED_FILES)
    })
    check('the release workflow builds and tests every declared platform', () => {
      const YAML = require('yaml')
      const workflow = YAML.parse(
        fs.readFileSync(path.join(ROOT, '.github', 'workflows', 'release.yml'), 'utf8'),
      )
      const { targets } = require(path.join(ROOT, 'package.json')).napi
      const targetsOf = (job) => job.strategy.matrix.settings.map((s) => s.target).sort()
      assert.deepEqual(targetsOf(workflow.jobs.build), [...targets].sort())
      assert.deepEqual(targetsOf(workflow.jobs.test), [...targets].sort())
      assert.deepEqual(workflow.jobs.publish.needs, 'test')
      const platformPackages = fs.readdirSync(path.join(ROOT, 'npm')).sort()
      assert.deepEqual(platformPackages, [
        'darwin-arm64',
        'darwin-x64',
        'linux-arm64-gnu',
        'linux-x64-gnu',
        'win32-x64-msvc',
      ])
    })
    check('no Rust toolchain is on the PATH the project sees', () => {
      assert.throws(() => sh('cargo', ['--version']))
    })

    const app = project(path.join(work, 'app'), [main.file, platform.file])
    const node = (args) => sh(process.execPath, args, { cwd: app })
    const store = path.join(work, 'store')

    check('require() gives a working KV, in memory and on disk', () => {
      const out = node([
        '-e',
        `const { KV } = require('kv-binding')
         ;(async () => {
           const memory = new KV(); await memory.put('k', 'memory')
           const disk = new KV({ path: ${JSON.stringify(store)} }); await disk.put('k', 'disk')
           console.log(await memory.get('k'), await disk.get('k')); await disk.close()
         })()`,
      ])
      assert.equal(out.trim(), 'memory disk')
    })
    check('import and require give the same class', () => {
      const out = node([
        '--input-type=module',
        '-e',
        `import { KV, forRealm } from 'kv-binding'
         import kvBinding from 'kv-binding'
         import { createRequire } from 'node:module'
         const required = createRequire(import.meta.url)('kv-binding')
         console.log(KV === required.KV, forRealm === required.forRealm, kvBinding.KV === KV)`,
      ])
      assert.equal(out.trim(), 'true true true')
    })
    check('kv-binding/jest-environment and kv-binding/package.json resolve', () => {
      const out = node([
        '-e',
        `console.log(require.resolve('kv-binding/jest-environment'))
         console.log(require('kv-binding/package.json').name)`,
      ])
      const [environment, name] = out.trim().split('\n')
      assert.equal(environment, path.join(app, 'node_modules', 'kv-binding', 'jest-environment.js'))
      assert.equal(name, 'kv-binding')
    })
    check('the Jest environment loads beside jest-environment-node', () => {
      // A Jest user has jest-environment-node; this project borrows the repo's copy.
      const out = sh(
        process.execPath,
        ['-e', "const E = require('kv-binding/jest-environment'); console.log(typeof E, E.name)"],
        { cwd: app, env: { ...env, NODE_PATH: path.join(ROOT, 'node_modules') } },
      )
      assert.equal(out.trim(), 'function KVEnvironment')
    })
    check('wranglerEnv() reads a wrangler.toml with the parsers the package depends on', () => {
      fs.writeFileSync(
        path.join(app, 'wrangler.toml'),
        '[[kv_namespaces]]\nbinding = "SESSIONS"\nid = "abc"\n',
      )
      const out = node([
        '-e',
        `const env = require('kv-binding').wranglerEnv()
         console.log(Object.keys(env).join())`,
      ])
      assert.equal(out.trim(), 'SESSIONS')
    })
    check('kv-binding/platform gives env from import and require, with .dev.vars read', () => {
      fs.writeFileSync(path.join(app, '.dev.vars'), 'API_KEY=from-dev-vars\n')
      const out = node([
        '--input-type=module',
        '-e',
        `import { getPlatformProxy } from 'kv-binding/platform'
         import { createRequire } from 'node:module'
         const required = createRequire(import.meta.url)('kv-binding/platform')
         const { env, dispose } = await getPlatformProxy({ persist: false })
         await env.SESSIONS.put('k', 'v')
         console.log(required.getPlatformProxy === getPlatformProxy, env.API_KEY, await env.SESSIONS.get('k'))
         await dispose()`,
      ])
      assert.equal(out.trim(), 'true from-dev-vars v')
    })
    check("serve() answers the data browser's page from the package's files", () => {
      const out = node([
        '-e',
        `require('kv-binding').serve({ path: ${JSON.stringify(store)}, port: 0 }).then(async (s) => {
           const paths = ['/', '/ui/main.js', '/ui/app.css']
           console.log((await Promise.all(paths.map((p) => fetch(s.url + p)))).map((r) => r.status))
           await s.close()
         })`,
      ])
      assert.equal(out.trim(), '[ 200, 200, 200 ]')
    })
    check('the kv-binding command runs', () => {
      const bin = path.join(app, 'node_modules', '.bin', 'kv-binding')
      assert.match(sh(bin, ['--help']), /Usage: kv-binding/)
      sh(bin, ['--path', store, 'put', 'cli', 'from the shell'])
      assert.equal(sh(bin, ['--path', store, 'get', 'cli']), 'from the shell')
    })
    for (const [moduleResolution, module] of [
      ['node16', 'node16'],
      ['bundler', 'esnext'],
      ['node10', 'commonjs'],
    ]) {
      check(`TypeScript finds the types (moduleResolution ${moduleResolution})`, () => {
        typecheck(
          path.join(app, `ts-${moduleResolution}`),
          `import { KV, type KVNamespaceListResult } from 'kv-binding'
           const kv = new KV({ path: '.kv', durable: true })
           export async function run(): Promise<string | null> {
             const page: KVNamespaceListResult<unknown> = await kv.list({ prefix: 'a' })
             await kv.put('k', new Uint8Array(1), { expirationTtl: 60 })
             return page.list_complete ? kv.get('k') : null
           }
           // @ts-expect-error: get takes a key
           kv.get(1, 2, 3)
          `,
          { module, moduleResolution },
        )
      })
    }

    // vitest-environment-kv-binding from its own tarball, beside kv-binding's, in the fixture
    // project __test__/vitest-project, under every pool Vitest has: Vitest 4 (the
    // repository's devDependency) on this Node, and Vitest 5 on the Node 22 it needs, both
    // from __test__/vitest5, a project installed from its lock file.
    const vitestEnv = pack(path.join(ROOT, 'packages', 'vitest-environment-kv-binding'), work)
    check('the Vitest environment package holds only what a user needs', () => {
      assert.deepEqual(vitestEnv.info.files.map((f) => f.path).sort(), [
        'index.d.ts',
        'index.js',
        'index.mjs',
        'package.json',
      ])
      // Released together: its version, and the kv-binding it needs, are the main package's.
      const { version } = require(path.join(ROOT, 'package.json'))
      const environment = require(
        path.join(ROOT, 'packages', 'vitest-environment-kv-binding', 'package.json'),
      )
      assert.equal(environment.version, version)
      assert.equal(environment.dependencies['kv-binding'], version)
      const workflow = fs.readFileSync(
        path.join(ROOT, '.github', 'workflows', 'release.yml'),
        'utf8',
      )
      assert.match(workflow, /npm publish packages\/vitest-environment-kv-binding/)
    })
    // Its peer, vitest, is not fetched: the one under test is linked in.
    const vitestApp = project(
      path.join(work, 'vitest-app'),
      [main.file, platform.file, vitestEnv.file],
      ['--legacy-peer-deps'],
    )
    fs.cpSync(path.join(ROOT, '__test__', 'vitest-project'), vitestApp, { recursive: true })
    const vitest5 = path.join(ROOT, '__test__', 'vitest5')
    if (!fs.existsSync(path.join(vitest5, 'node_modules', 'vitest'))) {
      sh('npm', ['ci', '--no-audit', '--no-fund'], { cwd: vitest5 })
    }
    const runners = {
      4: { node: process.execPath, vitest: path.join(ROOT, 'node_modules', 'vitest') },
      5: {
        node: path.join(vitest5, 'node_modules', 'node', 'bin', 'node'),
        vitest: path.join(vitest5, 'node_modules', 'vitest'),
      },
    }
    const vitest = (major, args, extraEnv = {}) => {
      const { node, vitest: dir } = runners[major]
      const link = path.join(vitestApp, 'node_modules', 'vitest')
      fs.rmSync(link, { force: true })
      fs.symlinkSync(dir, link)
      const out = sh(node, [path.join(dir, 'vitest.mjs'), 'run', ...args], {
        cwd: vitestApp,
        env: { ...env, ...extraEnv, CI: 'true', NO_COLOR: '1' },
      })
      assert.match(out, new RegExp(`RUN {2}v${major}\\.`))
      return out
    }
    // 2 files of 6 tests each; the kvPersist test runs only when the run persists.
    const passes = (out, persisting = false) => {
      assert.match(
        out,
        persisting ? /Tests\s+12 passed \(12\)/ : /Tests\s+10 passed \| 2 skipped \(12\)/,
      )
    }
    check('TypeScript sees env, typed by the bindings a project declares', () => {
      typecheck(
        path.join(vitestApp, 'ts'),
        `/// <reference types="vitest-environment-kv-binding" />
         import type { KV } from 'kv-binding'
         import type { KVEnvironmentOptions } from 'vitest-environment-kv-binding'
         declare global {
           interface KVBindings {
             SESSIONS: KV
           }
         }
         export const options: KVEnvironmentOptions = { kvSeed: { SESSIONS: 'seed.json' } }
         export async function read(): Promise<string | null> {
           return env.SESSIONS.get('k')
         }
         // @ts-expect-error: no binding of that name was declared
         env.OTHER.get('k')
        `,
      )
    })
    for (const major of [4, 5]) {
      for (const pool of ['forks', 'threads', 'vmThreads', 'vmForks']) {
        check(`Vitest ${major} runs the environment's fixture in the ${pool} pool`, () => {
          passes(vitest(major, [`--pool=${pool}`]))
        })
      }
      check(`Vitest ${major} runs the fixture with --no-isolate, and with kvPersist`, () => {
        passes(vitest(major, ['--no-isolate']))
        passes(vitest(major, [], { KV_FIXTURE_PERSIST: `.kv-test-${major}` }), true)
        assert.ok(fs.existsSync(path.join(vitestApp, `.kv-test-${major}`)))
      })
      // npm workspaces and `npm link` put the package outside node_modules, behind a link:
      // Vite then runs it through its own module runner instead of Node's.
      check(`Vitest ${major} runs the environment linked from a workspace`, () => {
        const installed = path.join(vitestApp, 'node_modules', 'vitest-environment-kv-binding')
        const workspace = path.join(vitestApp, 'packages', 'env')
        fs.rmSync(workspace, { recursive: true, force: true })
        fs.cpSync(fs.realpathSync(installed), workspace, { recursive: true })
        const saved = `${installed}.installed`
        fs.renameSync(installed, saved)
        try {
          fs.symlinkSync(path.join('..', 'packages', 'env'), installed)
          passes(vitest(major, ['--pool=threads']))
          passes(vitest(major, ['--pool=vmForks']))
        } finally {
          fs.rmSync(installed, { force: true })
          fs.renameSync(saved, installed)
        }
      })
      check(`Vitest ${major} runs the README's recipe without the environment`, () => {
        const out = vitest(major, ['--config', 'vitest.recipe.config.mjs'])
        assert.match(out, /Tests\s+2 passed \(2\)/)
      })
      check(`Vitest ${major} runs the fixture with kvConsistency and kvLimits`, () => {
        const out = vitest(major, ['--config', 'vitest.eventual.config.mjs'])
        assert.match(out, /Tests\s+2 passed \(2\)/)
      })
      check(`Vitest ${major}: a fixture test that expects the wrong state fails the run`, () => {
        assert.throws(
          () => vitest(major, ['--pool=threads'], { KV_FIXTURE_EXPECT_FAILURE: '1' }),
          /each test starts from the seed/,
        )
      })
    }

    check('without the platform package, the error names the platform', () => {
      const bare = project(path.join(work, 'bare'), [main.file])
      let message = ''
      try {
        sh(process.execPath, ['-e', "require('kv-binding')"], { cwd: bare })
      } catch (error) {
        message = error.stderr
      }
      assert.match(message, new RegExp(`no native binary for ${process.platform}-${process.arch}`))
      assert.match(message, /kv-binding-linux-x64-gnu/)
    })
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
  const failed = results.filter(([, error]) => error).length
  console.log(`${results.length - failed} passed, ${failed} failed`)
  process.exitCode = failed ? 1 : 0
}

main()
