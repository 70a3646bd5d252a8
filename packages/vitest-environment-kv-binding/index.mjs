// The ES module entry: Vite runs an environment package that is linked rather than installed
// (npm workspaces, npm link) through its own module runner, where CommonJS has no `require`.
// This entry loads the CommonJS one with Node's own loader, whichever way it is run.
import { createRequire } from 'node:module'

const environment = createRequire(import.meta.url)('./index.js')

export default environment
