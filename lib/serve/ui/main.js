// The data browser: namespaces, their keys a page at a time, a key's value, metadata and
// expiration; making, editing, renaming and deleting keys, one or many; import and export
// in wrangler's bulk format; and the live feed of operations.

import { Api, keepToken, takeToken } from './api.js'
import { askText, byId, confirmAction, make, status } from './dom.js'
import { openEditor } from './editor.js'
import { KeyList } from './keys.js'
import { Operations } from './operations.js'
import { describe, showKey } from './value.js'

// How often the page shown asks again for its keys and its open key, for writes made where
// the feed does not reach (another process on Redis, say).
const REFRESH_MS = 2000
// Values longer than this, shown and unchanged in their listing, are not read again by a
// refresh unless the feed reports a write to them.
const REREAD_MAX = 256 * 1024
// Keys a bulk deletion of a prefix asks for and deletes at a time.
const DELETE_BATCH = 1000
const NAMESPACE_KEY = 'kv-binding:namespace'
const THEME_KEY = 'kv-binding:theme'
const THEMES = ['system', 'light', 'dark']

let api
let keys
// The key shown beside the list: { key, buffer, panel }, or null.
let open = null

async function main() {
  applyTheme(localStorage.getItem(THEME_KEY) ?? 'system')
  byId('theme').onclick = () => {
    const now = localStorage.getItem(THEME_KEY) ?? 'system'
    applyTheme(THEMES[(THEMES.indexOf(now) + 1) % THEMES.length])
  }
  const token = takeToken()
  if (token === null) return askToken()
  api = new Api(token)
  keys = new KeyList(api, { onOpen: (key) => openKey(key.name) })
  wire()
  try {
    await loadNamespaces()
  } catch (error) {
    if (error.status === 403) return askToken(error.message)
    throw error
  }
  performance.mark('kv:first-page')
  document.body.dataset.ready = 'true'
  const operations = new Operations(api, {
    onWrite: (operation) => {
      if (open !== null && operation.key === open.key.name) open.written = true
      soon()
    },
  })
  operations
    .listen()
    .catch((error) => status(`The operations feed stopped: ${error.message}`, true))
  setInterval(() => {
    if (document.visibilityState === 'visible' && !anyDialogOpen()) refresh()
  }, REFRESH_MS)
}

function applyTheme(theme) {
  localStorage.setItem(THEME_KEY, theme)
  if (theme === 'system') delete document.documentElement.dataset.theme
  else document.documentElement.dataset.theme = theme
  byId('theme').textContent = `Theme: ${theme}`
}

function askToken(problem) {
  const form = byId('token-form')
  form.hidden = false
  byId('keys-view').hidden = true
  if (problem) status(problem, true)
  form.onsubmit = (event) => {
    event.preventDefault()
    keepToken(byId('token-input').value.trim())
    location.reload()
  }
  byId('token-input').focus()
}

async function loadNamespaces() {
  const namespaces = await api.namespaces()
  const select = byId('namespace')
  select.replaceChildren(
    ...namespaces.map(({ id, title }) => new Option(id === title ? title : `${title} (${id})`, id)),
  )
  const wanted = new URLSearchParams(location.search).get('namespace')
  const kept = localStorage.getItem(NAMESPACE_KEY)
  const ids = namespaces.map(({ id }) => id)
  select.value = [wanted, kept].find((id) => ids.includes(id)) ?? ids[0] ?? ''
  await keys.show(select.value, byId('prefix').value)
}

function wire() {
  byId('namespace').onchange = async (event) => {
    localStorage.setItem(NAMESPACE_KEY, event.target.value)
    closeKey()
    await run(() => keys.show(event.target.value, byId('prefix').value))
  }
  let typing = null
  byId('prefix').oninput = (event) => {
    clearTimeout(typing)
    typing = setTimeout(() => run(() => keys.show(keys.namespace, event.target.value)), 150)
  }
  byId('search').onsubmit = (event) => event.preventDefault()
  byId('new-key').onclick = () => editKey(null)
  byId('delete-selected').onclick = () => deleteSelected()
  byId('delete-prefix').onclick = () => deletePrefix()
  byId('export').onclick = () => exportKeys()
  byId('import').onclick = () => byId('import-file').click()
  byId('import-file').onchange = (event) => importFile(event.target)
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.onclick = () => selectTab(tab)
  }
  document.addEventListener('keydown', onShortcut)
}

function selectTab(chosen) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab === chosen
    tab.setAttribute('aria-selected', String(selected))
    byId(tab.getAttribute('aria-controls')).hidden = !selected
  }
}

const anyDialogOpen = () => byId('editor').open || byId('confirm').open

// Shortcuts, when no field has the keyboard and no dialog is open.
function onShortcut(event) {
  if (anyDialogOpen() || event.ctrlKey || event.metaKey || event.altKey) return
  const typing = event.target.closest?.('input, textarea, select')
  if (typing && event.key !== 'Escape') return
  const actions = {
    '/': () => byId('prefix').focus(),
    n: () => editKey(null),
    e: () => open && editKey(open),
    r: () => open && renameKey(open),
    Delete: () => open && deleteKey(open.key.name),
    '[': () => run(() => keys.previousPage()),
    ']': () => run(() => keys.nextPage()),
  }
  const action = actions[event.key]
  if (action === undefined) return
  event.preventDefault()
  action()
}

// Runs `task`, showing its failure in the status line.
async function run(task) {
  try {
    return await task()
  } catch (error) {
    status(error.message, true)
    return undefined
  }
}

// What is shown, asked for again: the page of keys and the open key. A failure shows until a
// refresh succeeds again; what the person's own actions said stays.
let refreshFailed = false
async function refresh() {
  try {
    await keys.refresh()
    if (open !== null) await openKey(open.key.name, { quiet: true })
    if (refreshFailed) status('')
    refreshFailed = false
  } catch (error) {
    refreshFailed = true
    status(error.message, true)
  }
}

// A refresh soon after a write the feed reported, one for many writes in a burst.
let pending = null
function soon() {
  pending ??= setTimeout(() => {
    pending = null
    refresh()
  }, 100)
}

function closeKey() {
  open?.panel.stop()
  open = null
  keys.setCurrent(null)
  byId('detail').replaceChildren(
    Object.assign(document.createElement('p'), {
      className: 'empty',
      textContent: 'Choose a key to see its value, metadata and expiration.',
    }),
  )
}

/**
 * Shows key `name`; `quiet` (a refresh) re-renders only when it changed. A refresh reads a
 * large value again only when its listing changed or the feed reported a write to it: not
 * megabytes every two seconds to find them the same.
 */
async function openKey(name, { quiet = false } = {}) {
  const namespace = keys.namespace
  const shown = open?.key.name === name ? open : null
  const listed = await api.listed(namespace, name, { quiet })
  const unchanged =
    quiet &&
    shown !== null &&
    !shown.written &&
    shown.buffer.byteLength > REREAD_MAX &&
    JSON.stringify(shown.key) === JSON.stringify(listed)
  if (unchanged) return
  const buffer = listed === null ? null : await api.value(namespace, name, { quiet })
  if (keys.namespace !== namespace) return
  if (buffer === null || listed === null) {
    if (open?.key.name === name) closeKey()
    if (!quiet) status(`${name} is gone.`, true)
    return
  }
  if (quiet && open !== null && sameKey(open, listed, buffer)) return
  const preferred = open?.key.name === name ? open.panel.view() : null
  open?.panel.stop()
  const panel = showKey(
    byId('detail'),
    listed,
    buffer,
    [
      { textContent: 'Edit', title: 'Edit (e)', onclick: () => editKey(open) },
      { textContent: 'Rename', title: 'Rename (r)', onclick: () => renameKey(open) },
      {
        textContent: 'Delete',
        title: 'Delete (Delete)',
        className: 'danger',
        onclick: () => deleteKey(name),
      },
    ],
    preferred,
  )
  open = { key: listed, buffer, panel }
  keys.setCurrent(name)
}

function sameKey(shown, listed, buffer) {
  if (JSON.stringify(shown.key) !== JSON.stringify(listed)) return false
  const a = new Uint8Array(shown.buffer)
  const b = new Uint8Array(buffer)
  return a.length === b.length && a.every((byte, i) => byte === b[i])
}

// Opens the editor on `shown` (the open key) or, given null, on a new key.
async function editKey(shown) {
  const existing = shown === null ? null : { key: shown.key, value: describe(shown.buffer) }
  const namespace = keys.namespace
  const saved = await openEditor(existing, async (name, body, options) => {
    if (shown === null && (await api.listed(namespace, name)) !== null) {
      const replace = await confirmAction({
        title: 'Replace it?',
        text: `${name} exists. Replace its value, metadata and expiration?`,
        action: 'Replace',
      })
      if (!replace) throw new Error(`${name} exists; nothing was written.`)
    }
    await api.put(namespace, name, body, options)
  })
  if (saved === null) return
  status(`Saved ${saved}.`)
  await run(async () => {
    await keys.refresh()
    await openKey(saved)
  })
}

// Rename: the value, metadata and expiration written under the new name, then the old deleted.
async function renameKey(shown) {
  const from = shown.key
  const to = await askText({
    title: 'Rename',
    text: 'Its value, metadata and expiration are written under the new name, then the old key is deleted.',
    action: 'Rename',
    label: 'New name',
    initial: from.name,
  })
  if (to === null || to === from.name || to === '') return
  await run(async () => {
    if ((await api.listed(keys.namespace, to)) !== null) {
      const replace = await confirmAction({
        title: 'Replace it?',
        text: `${to} exists. Renaming ${from.name} replaces it.`,
        action: 'Replace',
      })
      if (!replace) return
    }
    await api.put(keys.namespace, to, new Blob([shown.buffer]), {
      metadata: from.metadata,
      expiration: from.expiration,
    })
    await api.delete(keys.namespace, from.name)
    status(`Renamed ${from.name} to ${to}.`)
    await keys.refresh()
    await openKey(to)
  })
}

async function deleteKey(name) {
  const sure = await confirmAction({ title: 'Delete this key?', text: `Delete ${name}?` })
  if (!sure) return
  await run(async () => {
    await api.delete(keys.namespace, name)
    keys.unselect([name])
    closeKey()
    status(`Deleted ${name}.`)
    await keys.refresh()
  })
}

async function deleteSelected() {
  const names = keys.selected
  const sure = await confirmAction({
    title: `Delete ${names.length} keys?`,
    text: `Delete ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}?`,
  })
  if (!sure) return
  await run(async () => {
    for (let at = 0; at < names.length; at += 10_000) {
      await api.deleteMany(keys.namespace, names.slice(at, at + 10_000))
    }
    keys.unselect(names)
    if (open !== null && names.includes(open.key.name)) closeKey()
    status(`Deleted ${names.length} keys.`)
    await keys.refresh()
  })
}

async function deletePrefix() {
  const prefix = byId('prefix').value
  if (prefix === '') {
    status('Type the prefix whose keys to delete in the search field first.', true)
    return
  }
  const sure = await confirmAction({
    title: 'Delete every key under a prefix?',
    text: `Delete every key of ${keys.namespace} that starts with ${JSON.stringify(prefix)}?`,
    typed: prefix,
    label: 'Type the prefix to confirm',
  })
  if (!sure) return
  await run(async () => {
    let deleted = 0
    for (;;) {
      const page = await api.keys(keys.namespace, { prefix, limit: DELETE_BATCH })
      if (page.keys.length === 0) break
      await api.deleteMany(
        keys.namespace,
        page.keys.map((key) => key.name),
      )
      deleted += page.keys.length
      status(`Deleted ${deleted} keys…`)
    }
    closeKey()
    status(`Deleted ${deleted} keys under ${JSON.stringify(prefix)}.`)
    await keys.show(keys.namespace, prefix)
  })
}

async function exportKeys() {
  await run(async () => {
    const { text, count } = await api.export(keys.namespace, keys.prefix)
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }))
    const name = `${keys.namespace}${keys.prefix ? `-${keys.prefix}` : ''}.json`
    const link = make('a', { href: url, download: name.replace(/[\\/:*?"<>|]/g, '_') })
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(url), 60_000)
    status(`Exported ${count} keys.`)
  })
}

async function importFile(input) {
  const file = input.files[0]
  input.value = ''
  if (file === undefined) return
  await run(async () => {
    const text = await file.text()
    let entries
    try {
      entries = JSON.parse(text)
    } catch {
      throw new Error(`${file.name} is not JSON: nothing was imported.`)
    }
    if (!Array.isArray(entries)) {
      throw new Error(`${file.name} is not an array of { key, value }: nothing was imported.`)
    }
    const count = await api.import(keys.namespace, text)
    status(`Imported ${count} keys from ${file.name}.`)
    await keys.refresh()
  })
}

main().catch((error) => status(error.message, true))
