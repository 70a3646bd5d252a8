'use strict'

// The README's examples run as written, through the package name.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.resolve(__dirname, '..')
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')
const blocks = [...README.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1])

// Runs a block as a CommonJS script whose top level may await, and returns what it logged.
function run(code) {
  const helpers = 'const mapsAsEntries = (_, v) => (v instanceof Map ? [...v] : v)'
  const script = `${helpers}\n;(async () => {\n${code}\n})().catch((error) => { console.error(error); process.exit(1) })`
  return execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' })
}

test('the opening example runs, and every commented result is what it returns', () => {
  const example = blocks[0]
  expect(example).toContain("require('kv-binding')")
  // Each line `await expr // result` is checked: the expression's value is logged (Maps as
  // their entries) and compared with what the comment says.
  const checked = example.replace(
    /^(await .+?) \/\/ (.+)$/gm,
    (_, expression, comment) =>
      `console.log(JSON.stringify([${JSON.stringify(comment)}, ${expression.replace(/^await /, 'await (')})], mapsAsEntries))`,
  )
  const lines = run(checked)
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
  expect(lines.length).toBeGreaterThanOrEqual(5)
  const [json, withMetadata, bulk, list, rejected] = lines
  expect(json[1]).toEqual({ name: 'Ada' })
  expect(withMetadata[1]).toEqual({ value: '{"name":"Ada"}', metadata: null, cacheStatus: null })
  expect(bulk[1]).toEqual([
    ['user:1', '{"name":"Ada"}'],
    ['user:2', null],
  ])
  expect(list[1]).toMatchObject({ keys: [{ name: 'user:1' }], list_complete: true })
  expect(rejected[1]).toBe('Key name cannot be empty.')
})

test("the eventual-consistency example fails under 'eventual' and passes under 'strong'", () => {
  const example = blocks.find((block) => block.includes('a revoked session is refused everywhere'))
  expect(example).toBeDefined()
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'kv-binding-readme-'))
  try {
    fs.writeFileSync(path.join(dir, 'session.test.js'), `/* global env */\n${example}`)
    const jest = (options) => {
      const config = {
        rootDir: dir,
        testEnvironment: path.join(ROOT, 'jest-environment.js'),
        testEnvironmentOptions: options,
      }
      const args = [require.resolve('jest/bin/jest'), '--ci', '--config', JSON.stringify(config)]
      try {
        execFileSync(process.execPath, args, { cwd: dir, encoding: 'utf8', stdio: 'pipe' })
        return 'passed'
      } catch (error) {
        return error.stderr
      }
    }
    expect(jest({})).toBe('passed')
    const failure = jest({ kvConsistency: 'eventual' })
    expect(failure).toContain('a revoked session is refused everywhere')
    expect(failure).toMatch(/toBeNull\(\)\s+Received: "alice"/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
