'use strict'

// The files the CLI reads and writes: bulk JSON parsed as it arrives, exports written whole
// or not at all, standard input, and a progress bar on stderr.

const fs = require('node:fs')
const path = require('node:path')

/** A progress bar on stderr, drawn only when someone is watching (or --progress). */
function progressBar(label, total, forced) {
  const shown = forced || process.stderr.isTTY
  let last = -1
  return {
    update(done) {
      const percent = total === 0 ? 100 : Math.floor((done / total) * 100)
      if (!shown || percent === last) return
      last = percent
      const width = 30
      const filled = Math.round((percent / 100) * width)
      process.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}% ${done}/${total}`,
      )
    },
    end() {
      if (shown) process.stderr.write('\n')
    },
  }
}

/**
 * The entries of a bulk JSON file (or standard input for `-`), parsed as the bytes arrive and
 * handed on a chunk at a time, so that a file of any size can be imported holding a part of
 * it in memory (one JSON string of it all would also stop at V8's longest string, about
 * 512 MiB). A file that is not JSON, or not an array, throws once that is known: bulkPut then
 * writes none of the entries handed on before. `read.entries` counts them.
 */
async function* entriesOf(file, progress, read) {
  const { JSONParser } = require('@streamparser/json')
  const name = file === '-' ? 'standard input' : file
  const input = file === '-' ? process.stdin : fs.createReadStream(file)
  const bar = progressBar(
    'reading',
    file === '-' ? 0 : fs.statSync(file).size,
    progress && file !== '-',
  )
  // Only the array's elements are asked for: a parser asked for the whole document too
  // keeps all of it until the end. What the document is, its first byte says.
  const parser = new JSONParser({ paths: ['$.*'], keepStack: false })
  let parsed = []
  let first
  let failure = null
  parser.onValue = ({ value }) => {
    if (first === '[') parsed.push(value)
  }
  parser.onError = (error) => {
    failure ??= error
  }
  const handOn = () => {
    const ready = parsed
    parsed = []
    read.entries += ready.length
    return ready
  }
  let bytes = 0
  try {
    for await (const chunk of input) {
      // After the array, the parser reports anything but white space as an error.
      first ??= firstByte(chunk)
      if (failure === null) parser.write(chunk)
      bar.update((bytes += chunk.length))
      if (failure === null) yield* handOn()
    }
    if (failure === null && !parser.isEnded) parser.end()
  } catch (error) {
    failure ??= error
  } finally {
    bar.end()
  }
  if (failure === null && first === undefined) failure = new Error('it holds no JSON value')
  if (failure !== null) {
    throw new Error(`${name} is not JSON: ${failure.message}`, { cause: failure })
  }
  if (first !== '[') throw new Error(`${name} must hold a JSON array of entries`)
  yield* handOn()
}

/** The first character of `chunk` that is not JSON white space, if any. */
function firstByte(chunk) {
  const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1')
  const found = /[^ \t\n\r]/.exec(text)
  return found === null ? undefined : found[0]
}

/**
 * Where export writes, opened before any work so that a path that cannot be written fails
 * first. A regular file (or a path where none is yet) is written under a temporary name
 * beside it and renamed over it once whole, so a failed export leaves the previous file as
 * it was and nothing half-written. Anything else (standard output, a pipe, a device) is
 * written directly, and never removed. Writes are gathered into large chunks; any error,
 * such as a full disk, rejects with the path named.
 */
function openOutput(file) {
  const toStdout = file === undefined || file === '-'
  const name = toStdout ? 'standard output' : file
  const fail = (error) => new Error(`cannot write ${name}: ${error.message}`, { cause: error })
  let out = process.stdout
  let target = null
  let temporary = null
  if (!toStdout) {
    try {
      let existing = null
      try {
        existing = fs.statSync(file)
      } catch (error) {
        if (error.code !== 'ENOENT') throw error
      }
      if (existing === null || existing.isFile()) {
        target = existing === null ? file : fs.realpathSync(file)
        temporary = path.join(
          path.dirname(target),
          `.${path.basename(target)}.${process.pid}.kv-binding-export`,
        )
      }
      const fd = fs.openSync(temporary ?? file, temporary === null ? 'w' : 'wx')
      out = fs.createWriteStream(null, { fd })
    } catch (error) {
      throw fail(error)
    }
    // Every error also reaches the callback of the write or end it failed.
    out.on('error', () => {})
  }
  let pending = ''
  const flush = () => {
    const text = pending
    pending = ''
    return new Promise((resolve, reject) =>
      out.write(text, (error) => (error ? reject(fail(error)) : resolve())),
    )
  }
  return {
    async write(text) {
      pending += text
      if (pending.length >= 1 << 20) await flush()
    },
    async close() {
      await flush()
      if (toStdout) return
      await new Promise((resolve, reject) =>
        out.end((error) => (error ? reject(fail(error)) : resolve())),
      )
      if (temporary !== null) {
        try {
          fs.renameSync(temporary, target)
        } catch (error) {
          throw fail(error)
        }
      }
    },
    // Leaves nothing half-written behind when the export fails.
    abandon() {
      if (toStdout) return
      out.destroy()
      if (temporary !== null) fs.rmSync(temporary, { force: true })
    },
  }
}

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return Buffer.concat(chunks)
}

module.exports = { entriesOf, openOutput, progressBar, readStdin }
