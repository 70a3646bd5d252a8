'use strict'

// The native addon, loaded through the generated loader (binding.js), which picks this
// machine's binary.

// The platforms whose prebuilt binary ships as a kv-binding-<platform> package.
const PLATFORMS = [
  'linux-x64-gnu',
  'linux-arm64-gnu',
  'darwin-x64',
  'darwin-arm64',
  'win32-x64-msvc',
]

// The generated loader (binding.js) picks this machine's binary; without one, say which
// platform this is and what to do.
function loadNative() {
  try {
    return require('../binding.js')
  } catch (error) {
    throw new Error(
      `kv-binding has no native binary for ${process.platform}-${process.arch} ` +
        `(Node ${process.versions.node}). Prebuilt binaries come in the packages ` +
        `${PLATFORMS.map((p) => `kv-binding-${p}`).join(', ')}: check that the one for this ` +
        'machine was installed (npm skips optional dependencies when the lock file was made ' +
        'on another platform), or build kv-binding from source (see its README, "Install").',
      { cause: error },
    )
  }
}

module.exports = loadNative()
