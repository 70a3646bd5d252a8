'use strict'

// What every route of the REST API shares: the envelope production's API answers in, its
// errors, and reading a request's body within a limit.

// Error codes of production's API where it has one for the case; the others are ours, listed
// in the README.
const CODES = {
  AUTHENTICATION: 10000,
  INVALID: 10001,
  KEY_NOT_FOUND: 10009,
  TOO_LARGE: 10011,
  NAMESPACE_NOT_FOUND: 10013,
  NAMESPACE_EXISTS: 10014,
  NO_ROUTE: 7003,
  INTERNAL: 10002,
}

/** An answer other than success: its HTTP status, code and message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

const invalid = (message) => new ApiError(400, CODES.INVALID, message)

/** Sends `body` as JSON with `status`. */
function sendJson(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}

/** Answers with production's success envelope around `result`. */
function sendResult(res, result, resultInfo) {
  const body = { success: true, errors: [], messages: [], result }
  if (resultInfo !== undefined) body.result_info = resultInfo
  sendJson(res, 200, body)
}

/** Answers with production's failure envelope. */
function sendError(res, error) {
  const { status, code, message } = error
  sendJson(res, status, { success: false, errors: [{ code, message }], messages: [], result: null })
}

/**
 * The request's body, whole, refused with 413 once it passes `limit` bytes (by its
 * Content-Length, or as it arrives) and with 400 when the client stops sending it.
 */
function readBody(req, limit, what) {
  const tooLarge = () =>
    new ApiError(413, CODES.TOO_LARGE, `The ${what} is larger than the limit of ${limit} bytes.`)
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge())
  return new Promise((resolve, reject) => {
    const chunks = []
    let length = 0
    // What is left of a refused body is not read: the server closes the connection once
    // it has answered (see index.js).
    const fail = (error) => {
      req.removeAllListeners('data')
      req.pause()
      reject(error)
    }
    req.on('data', (chunk) => {
      length += chunk.length
      if (length > limit) fail(tooLarge())
      else chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks, length)))
    req.on('close', () => {
      if (!req.complete) fail(invalid('The request body ended before its end.'))
    })
    req.on('error', fail)
  })
}

/** The request's body parsed as JSON, within `limit` bytes. */
async function readJson(req, limit, what) {
  const body = await readBody(req, limit, what)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw invalid(`The ${what} is not valid JSON.`)
  }
}

module.exports = { CODES, ApiError, invalid, sendResult, sendError, readBody, readJson }
