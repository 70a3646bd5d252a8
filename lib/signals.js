'use strict'

// flushOnSignals(): Ctrl-C and SIGTERM flush every open store before the process ends.

const native = require('./native.js')

const SIGNALS = ['SIGINT', 'SIGTERM']
let flushingOnSignals = false

// Flushes every store, then lets the signal do what it would have done: when nobody else
// listens for it, the process ends by it (exit status 128 + its number), as without us; when
// the program has handlers of its own, they decide.
function flushThenPassOn(signal) {
  try {
    native.flushAllStores()
  } catch (error) {
    process.stderr.write(`kv-binding: could not flush on ${signal}: ${error.message}\n`)
  }
  if (process.listenerCount(signal) === 1) {
    for (const other of SIGNALS) process.removeListener(other, flushThenPassOn)
    flushingOnSignals = false
    process.kill(process.pid, signal)
  }
}

/**
 * Makes Ctrl-C (SIGINT) and SIGTERM flush every open store before the process ends, so that
 * writes of the last flush window (`flushEveryMs`) are not lost. The process then ends as it
 * would have: by the signal, or as the program's own handlers for it decide. Calling it again
 * does nothing.
 */
function flushOnSignals() {
  if (flushingOnSignals) return
  flushingOnSignals = true
  for (const signal of SIGNALS) process.on(signal, flushThenPassOn)
}

module.exports = { flushOnSignals }
