// The ES module entry: the same classes as the CommonJS one, so `import` and `require` give
// one `KV`, sharing one process-wide store registry.
import kvBinding from './index.js'

export const { KV, forRealm, flushOnSignals, wranglerEnv, serve } = kvBinding
export default kvBinding
