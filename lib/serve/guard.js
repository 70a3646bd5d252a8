'use strict'

// Who may use the server: requests for the address served (not another name that resolves to
// it: DNS rebinding), not sent by another site's page, with the server's token.

const crypto = require('node:crypto')
const { ApiError, CODES } = require('./http.js')

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost'])

/** Whether `host` (an address to listen on) is this machine alone. */
function isLoopback(host) {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/** A fresh token: 32 random bytes, base64url. */
function newToken() {
  return crypto.randomBytes(32).toString('base64url')
}

const refused = (message) => new ApiError(403, CODES.AUTHENTICATION, message)

/**
 * The check every request passes before it is answered: `host` and `port` are where the
 * server listens, `token` what clients must send as `Authorization: Bearer <token>` (all but
 * the browser's page, which holds no data and is how a person gives the token). The check is
 * `(req, tokenNeeded = true)` and returns the error to answer with, or null.
 */
function guardFor({ host, port, token }) {
  const names = isLoopback(host) ? ['127.0.0.1', 'localhost', '[::1]'] : [bracketed(host)]
  const hosts = new Set(names.map((name) => `${name}:${port}`))
  const expected = Buffer.from(`Bearer ${token}`)
  return (req, tokenNeeded = true) => {
    const hostHeader = req.headers.host
    if (!hosts.has(hostHeader)) {
      return new ApiError(
        421,
        CODES.AUTHENTICATION,
        `This server answers requests for ${[...hosts].join(', ')}, not for ${JSON.stringify(hostHeader ?? '')}.`,
      )
    }
    // The browser's page and scripts hold no data: any page may link to them.
    if (!tokenNeeded) return null
    // A page of another site may send requests but not read them: it may not write either.
    const site = req.headers['sec-fetch-site']
    if (site === 'cross-site' || site === 'same-site') {
      return refused('Requests from another site are refused.')
    }
    const origin = req.headers.origin
    if (origin !== undefined && origin !== `http://${hostHeader}`) {
      return refused(`Requests from ${origin} are refused.`)
    }
    const given = Buffer.from(req.headers.authorization ?? '')
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
      return refused('Authentication error')
    }
    return null
  }
}

function bracketed(host) {
  return host.includes(':') ? `[${host}]` : host
}

module.exports = { guardFor, isLoopback, newToken }
