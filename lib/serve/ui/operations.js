// The operations view: every KV operation the server's process makes or serves (its own
// requests, the API's, a demo's worker), newest first, as they happen.

import { byId, formatBytes, make } from './dom.js'

// Rows kept in the table; older ones are dropped.
const ROWS_KEPT = 500
// How long to wait before connecting again after the feed broke, at most.
const RETRY_MAX_MS = 10_000

const WRITES = new Set(['put', 'delete', 'bulkPut'])

export class Operations {
  #api
  #rows = []
  #paused = false
  #filter = ''
  #onWrite

  /** `onWrite(operation)` is called for each write seen, to refresh what shows its key. */
  constructor(api, { onWrite }) {
    this.#api = api
    this.#onWrite = onWrite
    byId('operations-pause').onclick = (event) => {
      this.#paused = !this.#paused
      event.target.setAttribute('aria-pressed', String(this.#paused))
      event.target.textContent = this.#paused ? 'Resume' : 'Pause'
    }
    byId('operations-clear').onclick = () => {
      this.#rows = []
      byId('operation-rows').replaceChildren()
      this.#count()
    }
    byId('operations-filter').oninput = (event) => {
      this.#filter = event.target.value.toLowerCase()
      for (const row of this.#rows) row.hidden = !this.#matches(row)
    }
  }

  /** Listens to the server's feed, connecting again when it breaks. */
  async listen() {
    let wait = 500
    for (;;) {
      try {
        const onOpen = () => {
          document.body.dataset.feed = 'open'
        }
        await this.#api.operations(
          (operation) => {
            wait = 500
            this.#add(operation)
          },
          { onOpen },
        )
      } catch (error) {
        if (error.status === 403) throw error
      }
      await new Promise((resolve) => setTimeout(resolve, wait))
      wait = Math.min(wait * 2, RETRY_MAX_MS)
    }
  }

  #add(operation) {
    if (WRITES.has(operation.op) && !operation.error) this.#onWrite(operation)
    if (this.#paused) return
    const time = new Date(operation.at)
    const row = make(
      'tr',
      { 'data-op': operation.op },
      make(
        'td',
        { title: time.toISOString() },
        time.toLocaleTimeString(undefined, { hour12: false }) +
          `.${String(time.getMilliseconds()).padStart(3, '0')}`,
      ),
      make(
        'td',
        { title: operation.here ? 'the serving process' : 'a client of the store' },
        operation.here ? `${operation.process} (here)` : String(operation.process ?? ''),
      ),
      make('td', {}, operation.op),
      make('td', {}, operation.namespace ?? ''),
      make('td', { title: operation.key }, operation.key),
      make('td', { className: 'number' }, sizeText(operation)),
      make('td', { className: 'number' }, `${operation.ms.toFixed(2)} ms`),
      make(
        'td',
        { className: operation.cacheStatus === 'HIT' ? 'hit' : '' },
        operation.cacheStatus ?? '',
      ),
      make('td', {}, operation.location ?? ''),
      make(
        'td',
        { className: operation.error ? 'failed' : '', title: operation.error ?? '' },
        operation.error ?? 'ok',
      ),
    )
    row.dataset.text = `${operation.op} ${operation.namespace} ${operation.key}`.toLowerCase()
    row.hidden = !this.#matches(row)
    this.#rows.unshift(row)
    byId('operation-rows').prepend(row)
    while (this.#rows.length > ROWS_KEPT) this.#rows.pop().remove()
    this.#count()
  }

  #matches(row) {
    return this.#filter === '' || row.dataset.text.includes(this.#filter)
  }

  #count() {
    const count = this.#rows.length
    byId('operations-count').textContent = count === 1 ? '1 operation' : `${count} operations`
    byId('operations-empty').hidden = count > 0
  }
}

// What an operation read or wrote: bytes of a value, or a count of keys.
function sizeText({ size, keys }) {
  if (typeof keys === 'number') return keys === 1 ? '1 key' : `${keys} keys`
  return typeof size === 'number' ? formatBytes(size) : ''
}
