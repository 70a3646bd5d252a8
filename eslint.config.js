'use strict'

const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  { ignores: ['target/', 'node_modules/', 'binding.js', 'binding.d.ts', '**/*.ts'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      ecmaVersion: 2024,
      globals: { ...globals.node },
    },
  },
  {
    files: ['__test__/**/*.js'],
    languageOptions: { globals: { ...globals.jest } },
  },
  {
    // Its functions passed to page.evaluate() run in the browser.
    files: ['__test__/browser.test.js', 'bench/serve.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    // The data browser's scripts: ES modules run by the browser.
    files: ['lib/serve/ui/**/*.js'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2024, globals: { ...globals.browser } },
  },
  {
    // ES modules run by Node: the Vitest fixture project.
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2024, globals: { ...globals.node } },
  },
]
