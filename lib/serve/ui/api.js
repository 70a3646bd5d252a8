// The server, as the page uses it: Cloudflare's KV API for the data, /_kv/ for the feed of
// operations and for export and import. Every request carries the token the page was given.

const TOKEN_KEY = 'kv-binding:token'
const NAMESPACES = '/client/v4/accounts/local/storage/kv/namespaces'

/**
 * The token: taken from the address's fragment (`#token=...`) the first time, then kept for
 * this server's origin. The fragment is removed from the address bar (and from history).
 */
export function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1))
  const given = fragment.get('token')
  if (given) {
    localStorage.setItem(TOKEN_KEY, given)
    history.replaceState(null, '', location.pathname + location.search)
  }
  return localStorage.getItem(TOKEN_KEY)
}

export function keepToken(token) {
  localStorage.setItem(TOKEN_KEY, token)
}

/** A failed request: the API's message, its HTTP status and error code. */
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message)
    this.status = status
    this.code = code
  }
}

const part = encodeURIComponent

export class Api {
  #token

  constructor(token) {
    this.#token = token
  }

  async #fetch(path, { method = 'GET', body, headers = {}, signal, quiet = false } = {}) {
    // The page's own refreshes are left out of the operations view.
    if (quiet) headers = { ...headers, 'x-kv-refresh': '1' }
    const response = await fetch(path, {
      method,
      body,
      signal,
      headers: { ...headers, authorization: `Bearer ${this.#token}` },
      cache: 'no-store',
    })
    if (response.ok) return response
    let message = `${response.status} ${response.statusText}`
    let code = null
    try {
      const envelope = await response.json()
      if (envelope?.errors?.[0]) ({ message, code } = envelope.errors[0])
    } catch {
      // Not the API's envelope: the status says what there is to say.
    }
    throw new ApiError(message, response.status, code)
  }

  async #result(path, options) {
    const envelope = await (await this.#fetch(path, options)).json()
    return envelope
  }

  /** Every namespace: `[{ id, title }]`. */
  async namespaces() {
    return (await this.#result(`${NAMESPACES}?per_page=1000`)).result
  }

  /**
   * A page of keys: `{ keys: [{ name, expiration?, metadata? }], cursor }` ('' at the end).
   * `quiet`: a refresh of what is shown, not shown in the operations view (so for `value`).
   */
  async keys(namespace, { prefix = '', cursor = '', limit = 100, quiet = false } = {}) {
    const query = new URLSearchParams({ limit: String(limit) })
    if (prefix) query.set('prefix', prefix)
    if (cursor) query.set('cursor', cursor)
    const path = `${NAMESPACES}/${part(namespace)}/keys?${query}`
    const envelope = await this.#result(path, { quiet })
    return { keys: envelope.result, cursor: envelope.result_info?.cursor ?? '' }
  }

  /** The key `name` as listed (name, expiration, metadata), read without its value; or null. */
  async listed(namespace, name, { quiet = false } = {}) {
    const page = await this.keys(namespace, { prefix: name, limit: 10, quiet })
    return page.keys.find((key) => key.name === name) ?? null
  }

  /** A key's value as bytes (an ArrayBuffer), or null when there is none. */
  async value(namespace, key, { quiet = false } = {}) {
    try {
      const path = `${NAMESPACES}/${part(namespace)}/values/${part(key)}`
      const response = await this.#fetch(path, { quiet })
      return await response.arrayBuffer()
    } catch (error) {
      if (error.status === 404) return null
      throw error
    }
  }

  /**
   * Writes `value` (text, bytes or a Blob) with `metadata` (undefined for none) and
   * `expiration` (Unix seconds) or `expirationTtl` (seconds from now), at most one.
   */
  async put(namespace, key, value, { metadata, expiration, expirationTtl } = {}) {
    const form = new FormData()
    form.set('value', value instanceof Blob ? value : new Blob([value]))
    if (metadata !== undefined) form.set('metadata', JSON.stringify(metadata))
    const query = new URLSearchParams()
    if (expiration !== undefined) query.set('expiration', String(expiration))
    if (expirationTtl !== undefined) query.set('expiration_ttl', String(expirationTtl))
    const path = `${NAMESPACES}/${part(namespace)}/values/${part(key)}?${query}`
    await this.#fetch(path, { method: 'PUT', body: form })
  }

  async delete(namespace, key) {
    await this.#fetch(`${NAMESPACES}/${part(namespace)}/values/${part(key)}`, { method: 'DELETE' })
  }

  /** Deletes up to 10,000 keys at once; a bad key deletes none. */
  async deleteMany(namespace, keys) {
    await this.#fetch(`${NAMESPACES}/${part(namespace)}/bulk/delete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(keys),
    })
  }

  /**
   * Every entry of the namespace under `prefix`, in wrangler's bulk format: `{ text, count }`,
   * the JSON text and how many entries it holds.
   */
  async export(namespace, prefix = '') {
    const query = prefix ? `?${new URLSearchParams({ prefix })}` : ''
    const response = await this.#fetch(`/_kv/export/${part(namespace)}${query}`)
    const count = Number(response.headers.get('x-kv-entries'))
    return { text: await response.text(), count }
  }

  /** Writes wrangler's bulk JSON `text` all at once: an entry refused writes none. */
  async import(namespace, text) {
    const envelope = await this.#result(`/_kv/import/${part(namespace)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
    })
    return envelope.result.successful_key_count
  }

  /**
   * Calls `onOperation(operation)` for each KV operation the server's process makes or
   * serves, until `signal` aborts; `onOpen()` once the feed is open. Resolves when the feed
   * ends, rejects when it fails.
   */
  async operations(onOperation, { signal, onOpen } = {}) {
    const response = await this.#fetch('/_kv/events', { signal })
    onOpen?.()
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffered = ''
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      buffered += value
      let end
      while ((end = buffered.indexOf('\n\n')) !== -1) {
        const event = buffered.slice(0, end)
        buffered = buffered.slice(end + 2)
        const data = event
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice(6))
          .join('\n')
        if (data) onOperation(JSON.parse(data))
      }
    }
  }
}
