// The list of keys: one page at a time (never more than a page in the page's DOM, however
// many keys there are), found by prefix, paged by the API's cursors, kept current by asking
// again while the page is open, with keys picked for bulk deletion.

import { byId, countdown, make } from './dom.js'

// Keys a page shows.
export const PAGE_SIZE = 100

export class KeyList {
  #api
  #namespace = null
  #prefix = ''
  // The cursor of each page shown so far: [''] for the first.
  #cursors = ['']
  #next = ''
  #keys = []
  #shownAs = ''
  #selected = new Set()
  #current = null
  #onOpen
  #loading = null

  /** `onOpen(key)` is called when a key is opened (clicked, or Enter). */
  constructor(api, { onOpen }) {
    this.#api = api
    this.#onOpen = onOpen
    byId('next').onclick = () => this.nextPage()
    byId('previous').onclick = () => this.previousPage()
    byId('select-all').onchange = (event) => {
      for (const key of this.#keys) {
        if (event.target.checked) this.#selected.add(key.name)
        else this.#selected.delete(key.name)
      }
      this.#render()
    }
    byId('key-rows').addEventListener('keydown', (event) => this.#onKey(event))
  }

  get namespace() {
    return this.#namespace
  }

  get prefix() {
    return this.#prefix
  }

  /** The keys picked, of every page seen. */
  get selected() {
    return [...this.#selected]
  }

  /** The key of this page named `name`, as listed. */
  find(name) {
    return this.#keys.find((key) => key.name === name) ?? null
  }

  /** Shows the first page of `namespace` under `prefix`. */
  async show(namespace, prefix = '') {
    if (namespace !== this.#namespace) this.#selected.clear()
    this.#namespace = namespace
    this.#prefix = prefix
    this.#cursors = ['']
    await this.#load()
  }

  async nextPage() {
    if (!this.#next) return
    this.#cursors.push(this.#next)
    await this.#load()
  }

  async previousPage() {
    if (this.#cursors.length === 1) return
    this.#cursors.pop()
    await this.#load()
  }

  /** Asks again for the page shown; re-renders only when it changed. */
  async refresh() {
    await this.#load(true)
  }

  /** Marks `name` as the key shown beside the list. */
  setCurrent(name) {
    this.#current = name
    for (const row of byId('key-rows').rows) {
      row.setAttribute('aria-current', String(row.dataset.key === name))
    }
  }

  /** Forgets picked keys that are gone. */
  unselect(names) {
    for (const name of names) this.#selected.delete(name)
    this.#render()
  }

  async #load(quiet = false) {
    const namespace = this.#namespace
    const cursor = this.#cursors[this.#cursors.length - 1]
    const query = { prefix: this.#prefix, cursor, limit: PAGE_SIZE, quiet }
    const loading = this.#api.keys(namespace, query)
    this.#loading = loading
    let page
    try {
      page = await loading
    } catch (error) {
      // A cursor of a page that no longer exists: start again from the first.
      if (error.status === 400 && this.#cursors.length > 1) {
        this.#cursors = ['']
        return this.#load()
      }
      throw error
    }
    // A later request (another prefix typed meanwhile) has the last word.
    if (this.#loading !== loading) return
    this.#next = page.cursor
    const shownAs = JSON.stringify([namespace, this.#prefix, cursor, page.keys])
    if (shownAs === this.#shownAs) return
    this.#shownAs = shownAs
    this.#keys = page.keys
    this.#render()
  }

  #render() {
    const rows = this.#keys.map((key) => this.#row(key))
    const focused = document.activeElement?.closest?.('tr')?.dataset.key
    byId('key-rows').replaceChildren(...rows)
    if (focused !== undefined) this.#rowOf(focused)?.querySelector('.key-name').focus()
    byId('no-keys').hidden = this.#keys.length > 0
    const page = this.#cursors.length
    const first = (page - 1) * PAGE_SIZE + 1
    byId('page-info').textContent =
      this.#keys.length === 0
        ? `Page ${page}`
        : `Page ${page} · keys ${first}–${first + this.#keys.length - 1}${this.#next ? '' : ' (the last)'}`
    byId('previous').disabled = page === 1
    byId('next').disabled = !this.#next
    byId('select-all').checked =
      this.#keys.length > 0 && this.#keys.every((key) => this.#selected.has(key.name))
    byId('delete-selected').disabled = this.#selected.size === 0
    byId('delete-selected').textContent =
      this.#selected.size === 0 ? 'Delete selected' : `Delete ${this.#selected.size} selected`
    this.setCurrent(this.#current)
  }

  #row(key) {
    const pick = make('input', {
      type: 'checkbox',
      checked: this.#selected.has(key.name),
      'aria-label': `Select ${key.name}`,
      tabIndex: -1,
      onchange: (event) => {
        if (event.target.checked) this.#selected.add(key.name)
        else this.#selected.delete(key.name)
        this.#render()
      },
    })
    const open = make('button', {
      type: 'button',
      className: 'key-name',
      textContent: key.name,
      title: key.name,
      onclick: () => this.#onOpen(key),
    })
    const expires =
      key.expiration === undefined
        ? make('td', { className: 'muted' }, '—')
        : make(
            'td',
            { title: new Date(key.expiration * 1000).toISOString() },
            countdown(key.expiration),
          )
    const metadata = key.metadata === undefined ? '' : JSON.stringify(key.metadata)
    return make(
      'tr',
      { 'data-key': key.name },
      make('td', { className: 'pick' }, pick),
      make('td', {}, open),
      expires,
      make('td', { className: 'mono', title: metadata }, metadata),
    )
  }

  #rowOf(name) {
    return [...byId('key-rows').rows].find((row) => row.dataset.key === name) ?? null
  }

  // Arrows move between keys, Space picks one; Enter opens it (the button's own click).
  #onKey(event) {
    const row = event.target.closest('tr')
    if (row === null) return
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault()
      const next = event.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling
      next?.querySelector('.key-name').focus()
    } else if (event.key === ' ') {
      event.preventDefault()
      const pick = row.querySelector('input[type="checkbox"]')
      pick.checked = !pick.checked
      pick.dispatchEvent(new Event('change'))
    }
  }
}
