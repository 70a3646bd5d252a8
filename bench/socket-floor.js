'use strict'

// The floor for a store reached through another process on this machine: a Node process that
// answers over a Unix socket from a Map, and a Node client that pipelines its requests. A
// request and its answer carry what a KV's would (the key, the value), with nothing else
// done: what a store's holder costs beyond this is the holder's own.
//
// Frames, both ways: a 4-byte length, then the body. A request's body is an op byte
// (g get, p put, d delete, l list), a 2-byte key length, the key, then the value (put) or a
// 4-byte limit (list). An answer's body is a status byte (1 found, 0 not) and the value, or
// the listed keys joined by newlines.

const net = require('node:net')
const path = require('node:path')
const { spawn } = require('node:child_process')

/**
 * Calls `onBodies(bodies)` with the frames' bodies each time data from `socket` completes
 * some: chunks are kept as they come and joined once a frame is whole.
 */
function readFrames(socket, onBodies) {
  let chunks = []
  let length = 0
  socket.on('data', (chunk) => {
    chunks.push(chunk)
    length += chunk.length
    const bodies = []
    for (;;) {
      if (length < 4) break
      if (chunks[0].length < 4) chunks = [Buffer.concat(chunks)]
      const needed = 4 + chunks[0].readUInt32LE(0)
      if (length < needed) break
      const whole = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length)
      bodies.push(whole.subarray(4, needed))
      chunks = whole.length > needed ? [whole.subarray(needed)] : []
      length -= needed
    }
    if (bodies.length > 0) onBodies(bodies)
  })
}

/** Runs the server in this process, on the socket `socketPath`. */
function serveFloor(socketPath) {
  const values = new Map()
  const server = net.createServer((socket) => {
    readFrames(socket, (bodies) => {
      socket.write(Buffer.concat(bodies.map((body) => answer(values, body))))
    })
  })
  server.listen(socketPath, () => process.stdout.write('ready\n'))
}

function frame(body) {
  const header = Buffer.alloc(4)
  header.writeUInt32LE(body.length)
  return Buffer.concat([header, body])
}

function answer(values, body) {
  const op = String.fromCharCode(body[0])
  const keyLength = body.readUInt16LE(1)
  const key = body.subarray(3, 3 + keyLength).toString()
  const rest = body.subarray(3 + keyLength)
  if (op === 'g') {
    const value = values.get(key)
    return frame(value === undefined ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), value]))
  }
  if (op === 'p') values.set(key, Buffer.from(rest))
  if (op === 'd') values.delete(key)
  if (op === 'l') {
    const limit = rest.readUInt32LE(0)
    const names = [...values.keys()].filter((name) => name.startsWith(key)).sort()
    return frame(Buffer.concat([Buffer.from([1]), Buffer.from(names.slice(0, limit).join('\n'))]))
  }
  return frame(Buffer.from([1]))
}

/** The adapter (see adapters.js): starts the server in a child process, then connects. */
const socketFloor = {
  name: 'Unix-socket floor (node:net + Map)',
  async open(dir) {
    const socketPath = path.join(dir, 'floor.sock')
    const server = spawn(process.execPath, [__filename, socketPath], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    await new Promise((resolve) => server.stdout.once('data', resolve))
    const socket = net.connect(socketPath)
    await new Promise((resolve) => socket.once('connect', resolve))
    const waiting = []
    readFrames(socket, (bodies) => {
      for (const body of bodies) waiting.shift()(body[0] === 1 ? body.subarray(1) : null)
    })
    const ask = (op, key, rest = Buffer.alloc(0)) => {
      const name = Buffer.from(key)
      const head = Buffer.alloc(3)
      head[0] = op.charCodeAt(0)
      head.writeUInt16LE(name.length, 1)
      socket.write(frame(Buffer.concat([head, name, rest])))
      return new Promise((resolve) => waiting.push(resolve))
    }
    return {
      put: (key, value) => ask('p', key, Buffer.from(value)),
      get: async (key) => (await ask('g', key))?.toString() ?? null,
      getBytes: (key) => ask('g', key),
      delete: (key) => ask('d', key),
      list: async (prefix, limit) => {
        const limitBytes = Buffer.alloc(4)
        limitBytes.writeUInt32LE(limit)
        const names = (await ask('l', prefix, limitBytes)).toString()
        return names === '' ? [] : names.split('\n')
      },
      sync: async () => {},
      close: async () => {
        socket.end()
        server.kill()
      },
    }
  },
}

if (require.main === module) serveFloor(process.argv[2])

module.exports = { socketFloor }
