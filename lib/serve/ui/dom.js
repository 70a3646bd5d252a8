// What every part of the page uses: finding elements, making them, and showing sizes and times.

/** The element with id `id`. */
export const byId = (id) => document.getElementById(id)

/**
 * A new element: `attributes` become properties when the element has them (`textContent`,
 * `onclick`, `hidden`), attributes otherwise (`aria-label`, `data-key`); `children` are
 * elements or text.
 */
export function make(tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name in element && !name.includes('-')) element[name] = value
    else element.setAttribute(name, value === true ? '' : String(value))
  }
  element.append(...children.filter((child) => child !== null && child !== undefined))
  return element
}

/** `bytes` for a person: 512 B, 1.5 KiB, 25.0 MiB. */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** How long until `seconds` (a Unix time): "in 4 m 10 s", or "expired". */
export function countdown(seconds, now = Date.now()) {
  let left = Math.round(seconds - now / 1000)
  if (left <= 0) return 'expired'
  const parts = []
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ]) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)} ${unit}`)
      left %= size
    }
  }
  if (parts.length < 2) parts.push(`${left} s`)
  return `in ${parts.slice(0, 2).join(' ')}`
}

/** A Unix time in seconds as local date and time, with its UTC form for the tooltip. */
export function formatTime(seconds) {
  const date = new Date(seconds * 1000)
  return { local: date.toLocaleString(), iso: date.toISOString() }
}

/** Writes `message` to the bar's status line, as an error when `failed`. */
export function status(message, failed = false) {
  const line = byId('status')
  line.textContent = message
  line.classList.toggle('error', failed)
}

/**
 * Asks the person to confirm: resolves true when they press the action button. With
 * `typed`, they must first type that text (a prefix to delete, say).
 */
export async function confirmAction({ title, text, action = 'Delete', typed = null, label = '' }) {
  const answer = await ask({
    title,
    text,
    action,
    label,
    initial: typed === null ? null : '',
    typed,
  })
  return answer !== null
}

/** Asks for a text, shown first as `initial`: resolves what was typed, or null. */
export function askText({ title, text, action, label, initial }) {
  return ask({ title, text, action, label, initial, typed: null })
}

// The confirm dialog: resolves null when cancelled, else the text typed (or '' without one).
function ask({ title, text, action, label, initial, typed }) {
  const dialog = byId('confirm')
  byId('confirm-title').textContent = title
  byId('confirm-text').textContent = text
  const yes = byId('confirm-yes')
  yes.textContent = action
  yes.className = action === 'Delete' ? 'danger' : 'primary'
  byId('confirm-error').textContent = ''
  const input = byId('confirm-input')
  byId('confirm-input-label').hidden = initial === null
  byId('confirm-input-text').textContent = label
  input.value = initial ?? ''
  return new Promise((resolve) => {
    const form = dialog.querySelector('form')
    const finish = (answer) => {
      form.removeEventListener('submit', onSubmit)
      dialog.removeEventListener('close', onClose)
      if (dialog.open) dialog.close()
      resolve(answer)
    }
    const onSubmit = (event) => {
      event.preventDefault()
      if (event.submitter?.value === 'no') return finish(null)
      if (typed !== null && input.value !== typed) {
        byId('confirm-error').textContent = `Type ${JSON.stringify(typed)} to go on.`
        return
      }
      finish(initial === null ? '' : input.value)
    }
    const onClose = () => finish(null)
    form.addEventListener('submit', onSubmit)
    dialog.addEventListener('close', onClose)
    dialog.showModal()
    if (initial === null) byId('confirm-no').focus()
    else {
      input.focus()
      input.select()
    }
  })
}
