'use strict'

// What getPlatformProxy() gives besides `env`, shaped as wrangler's: a request's `cf`
// properties (a fixed placeholder: no request came through Cloudflare), an execution context
// whose `waitUntil` work dispose() waits for, and a Cache API that caches nothing.

/** Freezes `value` and everything it holds. */
function deepFreeze(value) {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) deepFreeze(inner)
  }
  return Object.freeze(value)
}

/**
 * The `cf` object of a request, as a Cloudflare location would fill it in, for one served
 * from San Francisco over TLS 1.3. Fields a worker reads to decide things (country, colo,
 * timezone, bot score) have plausible values; certificates are absent.
 */
function placeholderCf() {
  return deepFreeze({
    asn: 13335,
    asOrganization: 'Cloudflare',
    colo: 'SFO',
    country: 'US',
    city: 'San Francisco',
    continent: 'NA',
    region: 'California',
    regionCode: 'CA',
    metroCode: '807',
    postalCode: '94107',
    timezone: 'America/Los_Angeles',
    latitude: '37.78040',
    longitude: '-122.39070',
    httpProtocol: 'HTTP/1.1',
    requestPriority: '',
    tlsVersion: 'TLSv1.3',
    tlsCipher: 'AEAD-AES128-GCM-SHA256',
    clientTcpRtt: 1,
    clientAcceptEncoding: 'gzip, deflate, br',
    edgeRequestKeepAliveStatus: 1,
    verifiedBotCategory: '',
    botManagement: {
      score: 99,
      verifiedBot: false,
      staticResource: false,
      corporateProxy: false,
      ja3Hash: '',
      ja4: '',
      detectionIds: [],
    },
    tlsClientAuth: {
      certPresented: '0',
      certVerified: 'NONE',
      certRevoked: '0',
      certIssuerDN: '',
      certSubjectDN: '',
      certIssuerDNRFC2253: '',
      certSubjectDNRFC2253: '',
      certIssuerDNLegacy: '',
      certSubjectDNLegacy: '',
      certSerial: '',
      certIssuerSerial: '',
      certSKI: '',
      certIssuerSKI: '',
      certFingerprintSHA1: '',
      certFingerprintSHA256: '',
      certNotBefore: '',
      certNotAfter: '',
    },
  })
}

// How long dispose() waits for waitUntil work, as production lets a worker's waitUntil work
// run for 30 s after its response.
const WAIT_UNTIL_LIMIT_MS = 30_000

/**
 * A worker's `ctx`. `waitUntil(promise)` keeps the promise for `settle()`, which dispose()
 * awaits; a promise that rejects is reported on stderr, as the runtime logs it, and never
 * becomes an unhandled rejection. Detached from its object, a method throws, as in workerd.
 */
class ExecutionContext {
  #pending = new Set()
  props = {}

  // The context a method was called on; anything else (a detached method) is refused.
  static #own(ctx) {
    if (typeof ctx !== 'object' || ctx === null || !(#pending in ctx)) {
      throw new TypeError('Illegal invocation')
    }
    return ctx.#pending
  }

  waitUntil(promise) {
    const pending = ExecutionContext.#own(this)
    const settled = Promise.resolve(promise).then(
      () => {},
      (error) => console.error('kv-binding: a promise given to ctx.waitUntil() rejected:', error),
    )
    pending.add(settled)
    settled.then(() => pending.delete(settled))
  }

  passThroughOnException() {
    // There is no origin to pass a request through to.
    ExecutionContext.#own(this)
  }

  /**
   * Resolves once every promise given to waitUntil has settled, those given meanwhile too,
   * or after `limitMs` (production's 30 s for work after a response): a promise that never
   * settles is then reported on stderr and no longer waited for.
   */
  static async settle(ctx, limitMs = WAIT_UNTIL_LIMIT_MS) {
    const pending = ExecutionContext.#own(ctx)
    let timer
    const limit = new Promise((resolve) => {
      timer = setTimeout(resolve, limitMs)
      timer.unref?.()
    })
    try {
      while (pending.size > 0) {
        const outcome = await Promise.race([Promise.all(pending).then(() => 'settled'), limit])
        if (outcome !== 'settled') {
          console.error(
            `kv-binding: dispose() stopped waiting for ${pending.size} ctx.waitUntil() ` +
              `promise(s) after ${limitMs / 1000} s, as production stops a worker's work then.`,
          )
          return
        }
      }
    } finally {
      clearTimeout(timer)
    }
  }
}

/** A cache that holds nothing: every lookup misses, as when no cache sits in front. */
class Cache {
  async match() {
    return undefined
  }

  async put() {}

  async delete() {
    return false
  }
}

/** `caches`: `caches.default` and `caches.open(name)` are caches that hold nothing. */
class CacheStorage {
  get default() {
    return new Cache()
  }

  async open() {
    return new Cache()
  }
}

module.exports = { placeholderCf, ExecutionContext, CacheStorage }
