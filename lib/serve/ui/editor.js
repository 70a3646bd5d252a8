// The dialog that makes or edits a key. An edit starts from what the key holds (value,
// metadata, expiration) and writes back what the person did not change as it was.

import { byId, formatTime } from './dom.js'

// Production refuses an expiration less than this far ahead.
const MIN_TTL_SECONDS = 60

// `<input type="datetime-local">`'s form of a Unix time, in local time.
function localInput(seconds) {
  const date = new Date(seconds * 1000)
  const pad = (n) => String(n).padStart(2, '0')
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  )
}

/**
 * Opens the editor. `existing` is null for a new key, else `{ key, value }`: the key as listed
 * (name, expiration, metadata) and its value as `describe()` gives it. `save(name, body,
 * options)` writes; the dialog stays open with the error when it fails. Resolves the name
 * written, or null when the person cancels.
 */
export function openEditor(existing, save) {
  const dialog = byId('editor')
  const form = byId('editor-form')
  const name = byId('editor-key')
  const value = byId('editor-value')
  const file = byId('editor-file')
  const metadata = byId('editor-metadata')
  const error = byId('editor-error')
  const binaryNote = byId('editor-binary')
  const keep = form.querySelector('input[value="keep"]')
  const choose = (which) => {
    form.querySelector(`input[name="expires"][value="${which}"]`).checked = true
  }

  const key = existing?.key ?? null
  const binary = existing !== null && existing.value.text === null
  byId('editor-title').textContent = key === null ? 'New key' : `Edit ${key.name}`
  name.value = key?.name ?? ''
  name.readOnly = key !== null
  value.value = existing?.value.text ?? ''
  value.hidden = binary
  value.labels[0].hidden = binary
  binaryNote.hidden = !binary
  binaryNote.textContent = binary
    ? `The value is ${existing.value.bytes.length} bytes that are not text: it is kept unless a file replaces it.`
    : ''
  file.value = ''
  metadata.value = key?.metadata === undefined ? '' : JSON.stringify(key.metadata, null, 2)
  error.textContent = ''
  const hasExpiration = key?.expiration !== undefined
  byId('editor-keep-label').hidden = !hasExpiration
  byId('editor-keep-at').textContent = hasExpiration ? `(${formatTime(key.expiration).local})` : ''
  byId('editor-at').value = localInput(Math.floor(Date.now() / 1000) + 3600)
  choose(hasExpiration ? 'keep' : 'never')
  keep.disabled = !hasExpiration

  return new Promise((resolve) => {
    const finish = (saved) => {
      form.removeEventListener('submit', onSubmit)
      byId('editor-cancel').removeEventListener('click', onCancel)
      dialog.removeEventListener('close', onClose)
      if (dialog.open) dialog.close()
      resolve(saved)
    }
    const onCancel = () => finish(null)
    const onClose = () => finish(null)
    const onSubmit = async (event) => {
      event.preventDefault()
      error.textContent = ''
      let options
      try {
        options = readOptions(form, metadata.value, key)
      } catch (problem) {
        error.textContent = problem.message
        return
      }
      const chosen = file.files[0]
      const body = chosen ?? (binary ? new Blob([existing.value.bytes]) : value.value)
      try {
        await save(name.value, body, options)
      } catch (problem) {
        error.textContent = problem.message
        return
      }
      finish(name.value)
    }
    form.addEventListener('submit', onSubmit)
    byId('editor-cancel').addEventListener('click', onCancel)
    dialog.addEventListener('close', onClose)
    dialog.showModal()
    ;(key === null ? name : binary ? metadata : value).focus()
  })
}

// The metadata and expiration the form asks for.
function readOptions(form, metadataText, key) {
  const options = {}
  if (metadataText.trim() !== '') {
    try {
      options.metadata = JSON.parse(metadataText)
    } catch {
      throw new Error('The metadata is not valid JSON.')
    }
  }
  const expires = form.querySelector('input[name="expires"]:checked').value
  if (expires === 'keep') options.expiration = key.expiration
  if (expires === 'at') {
    const at = new Date(form.querySelector('#editor-at').value).getTime()
    if (!Number.isFinite(at)) throw new Error('Give the date and time it expires at.')
    options.expiration = Math.floor(at / 1000)
  }
  if (expires === 'ttl') {
    const ttl = Number(form.querySelector('#editor-ttl').value)
    if (!Number.isInteger(ttl) || ttl < MIN_TTL_SECONDS) {
      throw new Error(`The time to live is a whole number of seconds, at least ${MIN_TTL_SECONDS}.`)
    }
    options.expirationTtl = ttl
  }
  return options
}
