'use strict'

// Cloudflare's API v4 KV routes, under /client/v4/accounts/:account_id/storage/kv/namespaces,
// answered from kv-binding namespaces: the same paths, bodies, envelopes and limits as
// production's, so that wrangler, the `cloudflare` SDK and other clients work unchanged.

const native = require('../native.js')
const { errorsFor } = require('../errors.js')
const { CODES, ApiError, invalid, sendResult, readBody, readJson } = require('./http.js')

// Production's limits on the REST API.
const BULK_WRITE_PAIRS = 10_000
const BULK_WRITE_BYTES = 100 * 1000 * 1000
const BULK_DELETE_KEYS = 10_000
const BULK_GET_KEYS = 100
const LIST_LIMIT_MIN = 10
const LIST_LIMIT_MAX = 1000
const NAMESPACES_PER_PAGE_MAX = 1000
// A value's body may carry a multipart envelope and its metadata besides the value.
const VALUE_BODY_MAX = native.MAX_VALUE_SIZE + (64 << 10)
const { fromNative } = errorsFor(globalThis)
const SMALL_BODY_MAX = 1 << 20

const PREFIX = '/client/v4/accounts/'
// What may follow a namespace's id in a path.
const NAMESPACE_ROUTES = new Set(['keys', 'values', 'metadata', 'bulk'])

const keyNotFound = (operation) =>
  new ApiError(404, CODES.KEY_NOT_FOUND, `${operation}: 'key not found'`)
const noRoute = () => new ApiError(404, CODES.NO_ROUTE, 'No route for that URI')

/** Decodes one part of a path, refusing what is not percent-encoded UTF-8. */
function decodePart(raw, what) {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw invalid(`The ${what} in the path is not valid percent-encoded UTF-8.`)
  }
}

/** A KV's error as the API's: the status production's binding gives it, its message. */
function fromKv(error) {
  if (error instanceof ApiError) return error
  const message = error?.message ?? ''
  // A bulk write's refusal names its entry before the binding's message: kept whole.
  const failed = /KV \w+ failed: (\d{3}) (.*)$/s.exec(message)
  if (failed !== null) {
    const status = Number(failed[1])
    const code = status === 413 ? CODES.TOO_LARGE : CODES.INVALID
    return new ApiError(status, code, failed.index === 0 ? failed[2] : message)
  }
  if (error instanceof TypeError || error instanceof SyntaxError) {
    return invalid(error.message)
  }
  return new ApiError(500, CODES.INTERNAL, String(error?.message ?? error))
}

/** A whole number from the query, or `fallback` when absent. */
function wholeParam(query, name, fallback, min, max) {
  const text = query.get(name)
  if (text === null || text === '') return fallback
  const number = Number(text)
  if (!/^\d+$/.test(text) || number < min || number > max) {
    throw invalid(`${name} must be a whole number from ${min} to ${max}.`)
  }
  return number
}

/** An expiration given in the query (seconds), or undefined. */
function secondsParam(query, name) {
  const text = query.get(name)
  if (text === null || text === '') return undefined
  if (!/^-?\d+(\.\d+)?$/.test(text)) throw invalid(`Invalid ${name} of ${text}.`)
  return Number(text)
}

function keysOf(body, max, what) {
  if (!Array.isArray(body)) throw invalid(`The ${what} must be a JSON array of keys.`)
  if (body.length > max) throw invalid(`A ${what} takes at most ${max} keys.`)
  for (const key of body) {
    if (typeof key !== 'string') throw invalid(`Each key of the ${what} must be a string.`)
  }
  return body
}

/**
 * Finds what a path's namespace id (raw, as in the path) reaches in `namespaces`:
 * `{ id, name, kv }`, or throws production's 404.
 */
function resolverFor(namespaces) {
  return async function namespaceOf(rawId) {
    const id = decodePart(rawId, 'namespace id')
    const name = await namespaces.resolve(id)
    if (name === null) {
      throw new ApiError(404, CODES.NAMESPACE_NOT_FOUND, 'namespace not found')
    }
    return { id, name, kv: namespaces.kv(name) }
  }
}

/**
 * The handler of the API's routes over `namespaces` (see namespaces.js): answers `req`, or
 * throws an ApiError for the caller to send.
 */
function apiFor(namespaces, namespaceOf = resolverFor(namespaces)) {
  const routes = {
    async namespaces(req, res, query) {
      if (req.method === 'GET') {
        const all = await namespaces.list()
        const perPage = wholeParam(query, 'per_page', 20, 1, NAMESPACES_PER_PAGE_MAX)
        const page = wholeParam(query, 'page', 1, 1, Number.MAX_SAFE_INTEGER)
        const order = query.get('order') ?? 'title'
        if (order !== 'id' && order !== 'title') throw invalid('order must be id or title.')
        const direction = query.get('direction') ?? 'asc'
        if (direction !== 'asc' && direction !== 'desc') {
          throw invalid('direction must be asc or desc.')
        }
        const bytes = (namespace) => Buffer.from(namespace[order])
        all.sort((a, b) => Buffer.compare(bytes(a), bytes(b)))
        if (direction === 'desc') all.reverse()
        const shown = all.slice((page - 1) * perPage, page * perPage)
        const result = shown.map(({ id, title }) => ({ id, title, supports_url_encoding: true }))
        return sendResult(res, result, {
          page,
          per_page: perPage,
          count: result.length,
          total_count: all.length,
          total_pages: Math.ceil(all.length / perPage),
        })
      }
      if (req.method === 'POST') {
        const { title } = (await readJson(req, SMALL_BODY_MAX, 'request body')) ?? {}
        if (typeof title !== 'string') throw invalid('A namespace needs a title, a string.')
        if (!namespaces.fromStore) throw invalid('This server serves a fixed set of namespaces.')
        let made
        try {
          made = await namespaces.create(title)
        } catch (error) {
          throw fromKv(error)
        }
        if (!made) {
          throw new ApiError(
            400,
            CODES.NAMESPACE_EXISTS,
            "create namespace: 'A namespace with this account ID and title already exists'",
          )
        }
        return sendResult(res, { id: title, title, supports_url_encoding: true })
      }
      throw noRoute()
    },

    async namespace(req, res, query, [rawId]) {
      const { id, name } = await namespaceOf(rawId)
      if (req.method === 'GET') {
        return sendResult(res, { id, title: name, supports_url_encoding: true })
      }
      if (req.method === 'DELETE') {
        if (!namespaces.fromStore) throw invalid('This server serves a fixed set of namespaces.')
        await namespaces.remove(name)
        return sendResult(res, {})
      }
      throw noRoute()
    },

    async keys(req, res, query, [rawId]) {
      if (req.method !== 'GET') throw noRoute()
      const { kv } = await namespaceOf(rawId)
      const limit = wholeParam(query, 'limit', LIST_LIMIT_MAX, LIST_LIMIT_MIN, LIST_LIMIT_MAX)
      const prefix = query.get('prefix') ?? undefined
      const cursor = query.get('cursor') || undefined
      const page = await kv.list({ prefix, limit, cursor })
      const result = page.keys.map(({ name, expiration, metadata }) => {
        const key = { name }
        if (expiration !== undefined) key.expiration = expiration
        if (metadata !== undefined) key.metadata = metadata
        return key
      })
      return sendResult(res, result, {
        count: result.length,
        cursor: page.list_complete ? '' : page.cursor,
      })
    },

    async values(req, res, query, [rawId, ...rawKey]) {
      const { kv } = await namespaceOf(rawId)
      const key = decodePart(rawKey.join('/'), 'key')
      if (req.method === 'GET') {
        const value = await kv.get(key, 'arrayBuffer')
        if (value === null) throw keyNotFound('get')
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': value.byteLength,
          'cache-control': 'no-store',
        })
        return res.end(Buffer.from(value))
      }
      if (req.method === 'PUT') {
        const expiration = secondsParam(query, 'expiration')
        const expirationTtl = secondsParam(query, 'expiration_ttl')
        const { value, metadata } = await valueOf(req)
        await kv.put(key, value, { expiration, expirationTtl, metadata })
        return sendResult(res, {})
      }
      if (req.method === 'DELETE') {
        await kv.delete(key)
        return sendResult(res, {})
      }
      throw noRoute()
    },

    async metadata(req, res, query, [rawId, ...rawKey]) {
      if (req.method !== 'GET') throw noRoute()
      const { kv } = await namespaceOf(rawId)
      const key = decodePart(rawKey.join('/'), 'key')
      // The first key listed under a prefix is the prefix itself, when it exists: its
      // metadata without reading its value.
      const [first] = (await kv.list({ prefix: key, limit: 1 })).keys
      if (first?.name !== key) throw keyNotFound('metadata')
      return sendResult(res, first.metadata ?? null)
    },

    async bulk(req, res, query, [rawId, action]) {
      const { kv } = await namespaceOf(rawId)
      if (action === undefined && req.method === 'PUT') {
        const entries = await readJson(req, BULK_WRITE_BYTES, 'bulk write')
        if (!Array.isArray(entries)) {
          throw invalid('A bulk write takes a JSON array of { key, value } objects.')
        }
        if (entries.length > BULK_WRITE_PAIRS) {
          throw invalid(`A bulk write takes at most ${BULK_WRITE_PAIRS} pairs.`)
        }
        await kv.bulkPut(entries)
        return sendResult(res, { successful_key_count: entries.length, unsuccessful_keys: [] })
      }
      const deleting =
        (action === undefined && req.method === 'DELETE') ||
        (action === 'delete' && req.method === 'POST')
      if (deleting) {
        const body = await readJson(req, SMALL_BODY_MAX * 16, 'bulk delete')
        const keys = keysOf(body, BULK_DELETE_KEYS, 'bulk delete')
        // Every key is checked before any is deleted: a bad one deletes none.
        try {
          for (const key of keys) native.validatePutKey(key)
        } catch (error) {
          throw fromKv(fromNative(error))
        }
        await Promise.all(keys.map((key) => kv.delete(key)))
        return sendResult(res, { successful_key_count: keys.length, unsuccessful_keys: [] })
      }
      if (action === 'get' && req.method === 'POST') {
        const body = await readJson(req, SMALL_BODY_MAX, 'bulk get')
        if (body === null || typeof body !== 'object') {
          throw invalid('A bulk get takes { keys, type?, withMetadata? }.')
        }
        const { type = 'text', withMetadata = false } = body
        const keys = keysOf(body.keys, BULK_GET_KEYS, 'bulk get')
        if (type !== 'text' && type !== 'json') throw invalid('type must be text or json.')
        if (typeof withMetadata !== 'boolean') throw invalid('withMetadata must be true or false.')
        const found = withMetadata ? await kv.getWithMetadata(keys, type) : await kv.get(keys, type)
        const values = {}
        for (const [key, value] of found) values[key] = value
        return sendResult(res, { values })
      }
      throw noRoute()
    },
  }

  // The value and metadata of a value write: the body itself, or its multipart `value` and
  // `metadata` fields.
  async function valueOf(req) {
    const type = req.headers['content-type'] ?? ''
    const body = await readBody(req, VALUE_BODY_MAX, 'value')
    if (!/^multipart\/form-data\s*;/i.test(type)) return { value: body, metadata: undefined }
    let form
    try {
      form = await new Response(body, { headers: { 'content-type': type } }).formData()
    } catch {
      throw invalid('The multipart body could not be read.')
    }
    const field = form.get('value')
    if (field === null) throw invalid('A multipart value write needs a value field.')
    const value = typeof field === 'string' ? field : new Uint8Array(await field.arrayBuffer())
    const text = form.get('metadata')
    let metadata
    if (text !== null) {
      try {
        metadata = JSON.parse(typeof text === 'string' ? text : await text.text())
      } catch {
        throw invalid('The metadata field is not valid JSON.')
      }
    }
    return { value, metadata }
  }

  /** Answers `req`, whose path is `path` (raw) and query `query`. */
  return async function answer(req, res, path, query) {
    if (!path.startsWith(PREFIX)) throw noRoute()
    const [account, ...parts] = path.slice(PREFIX.length).split('/')
    if (account === '' || parts.slice(0, 3).join('/') !== 'storage/kv/namespaces') {
      throw noRoute()
    }
    const [id, route, ...rest] = parts.slice(3)
    try {
      if (id === undefined || (id === '' && route === undefined)) {
        return await routes.namespaces(req, res, query)
      }
      if (id === '') throw noRoute()
      if (route === undefined) return await routes.namespace(req, res, query, [id])
      const handler = NAMESPACE_ROUTES.has(route) && routes[route]
      if (!handler || (route === 'keys' && rest.length > 0)) throw noRoute()
      if (route === 'bulk' && rest.length > 1) throw noRoute()
      if ((route === 'values' || route === 'metadata') && rest.join('/') === '') throw noRoute()
      return await handler(req, res, query, [id, ...rest])
    } catch (error) {
      throw fromKv(error)
    }
  }
}

module.exports = { apiFor, resolverFor, fromKv }
