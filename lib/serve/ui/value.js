// A key's detail: its value shown as text, pretty JSON, hex or an image, its size, metadata
// and expiration (the local time and a countdown).

import { countdown, formatBytes, formatTime, make } from './dom.js'

// What is shown of a long value: the whole value is in the store and in an export.
const TEXT_SHOWN = 1 << 20
const HEX_SHOWN = 4096

// Image formats a browser shows, by the bytes they start with.
const IMAGES = [
  ['image/png', [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ['image/jpeg', [0xff, 0xd8, 0xff]],
  ['image/gif', [0x47, 0x49, 0x46, 0x38]],
  ['image/webp', [0x52, 0x49, 0x46, 0x46, null, null, null, null, 0x57, 0x45, 0x42, 0x50]],
]

function imageType(bytes) {
  for (const [type, magic] of IMAGES) {
    if (bytes.length >= magic.length && magic.every((b, i) => b === null || bytes[i] === b)) {
      return type
    }
  }
  return null
}

/**
 * What a value is: `{ bytes, text, json, image }`: its text when it is UTF-8, its parsed JSON
 * when it is JSON, its image type when it starts as an image does.
 */
export function describe(buffer) {
  const bytes = new Uint8Array(buffer)
  const image = imageType(bytes)
  let text = null
  if (image === null) {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
    } catch {
      text = null
    }
  }
  let json
  if (text !== null && text.length <= TEXT_SHOWN) {
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
  }
  return { bytes, text, json, image }
}

/** The views a value has, the first being the one shown at first. */
export function viewsOf(value) {
  const views = []
  if (value.image !== null) views.push('image')
  if (value.json !== undefined) views.push('json')
  if (value.text !== null) views.push('text')
  views.push('hex')
  return views
}

/** Rows of a hex dump: offset, 16 bytes in hex, and those bytes as ASCII. */
export function hexDump(bytes, limit = HEX_SHOWN) {
  const lines = []
  const shown = Math.min(bytes.length, limit)
  for (let at = 0; at < shown; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, shown))
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ')
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.'))
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii.join('')}`)
  }
  return lines.join('\n')
}

// The element that shows `value` as `view`, and what to free when it goes.
function shown(value, view) {
  if (view === 'image') {
    const url = URL.createObjectURL(new Blob([value.bytes], { type: value.image }))
    const box = make('div', { className: 'value', 'data-view': 'image' })
    box.append(make('img', { src: url, alt: `The value, a ${value.image} image` }))
    return { element: box, free: () => URL.revokeObjectURL(url) }
  }
  if (view === 'hex') {
    const more =
      value.bytes.length > HEX_SHOWN ? `\n… the first ${formatBytes(HEX_SHOWN)} shown` : ''
    const text = hexDump(value.bytes) + more
    return { element: make('pre', { className: 'value hex', 'data-view': 'hex' }, text) }
  }
  let text = view === 'json' ? JSON.stringify(value.json, null, 2) : value.text
  if (text.length > TEXT_SHOWN) {
    text = `${text.slice(0, TEXT_SHOWN)}\n… the first ${formatBytes(TEXT_SHOWN)} shown`
  }
  return { element: make('pre', { className: 'value', 'data-view': view }, text) }
}

/**
 * Fills `panel` with `key` (as listed: name, expiration, metadata) and its value's bytes;
 * `actions` are the buttons to show ({ label, title, onclick }). Returns a function that stops
 * the countdown and frees what the panel holds.
 */
export function showKey(panel, key, buffer, actions, preferred = null) {
  const value = describe(buffer)
  const views = viewsOf(value)
  let view = views.includes(preferred) ? preferred : views[0]
  let current = null
  const area = make('div', { className: 'value-area' })
  const buttons = views.map((name) =>
    make('button', {
      type: 'button',
      textContent: { image: 'Image', json: 'JSON', text: 'Text', hex: 'Hex' }[name],
      'aria-pressed': String(name === view),
      onclick: () => {
        view = name
        for (const b of buttons) b.setAttribute('aria-pressed', String(b === buttonOf(name)))
        render()
      },
    }),
  )
  const buttonOf = (name) => buttons[views.indexOf(name)]
  const render = () => {
    current?.free?.()
    current = shown(value, view)
    area.replaceChildren(current.element)
  }

  const expires = make('dd', { id: 'detail-expiration' })
  const tick = () => {
    if (key.expiration === undefined) {
      expires.textContent = 'never'
      return
    }
    const { local, iso } = formatTime(key.expiration)
    expires.textContent = `${local} (${countdown(key.expiration)})`
    expires.title = iso
  }
  tick()
  const timer = key.expiration === undefined ? null : setInterval(tick, 1000)
  const metadata = key.metadata === undefined ? 'none' : JSON.stringify(key.metadata, null, 2)
  panel.replaceChildren(
    make('h2', { id: 'detail-key', textContent: key.name }),
    make(
      'div',
      { className: 'toolbar' },
      ...actions.map((action) => make('button', { type: 'button', ...action })),
    ),
    make(
      'dl',
      { className: 'facts' },
      make('dt', {}, 'Size'),
      make('dd', { id: 'detail-size' }, formatBytes(value.bytes.length)),
      make('dt', {}, 'Expires'),
      expires,
      make('dt', {}, 'Metadata'),
      make('dd', {}, make('pre', { id: 'detail-metadata', className: 'mono' }, metadata)),
    ),
    make(
      'div',
      { className: 'views', role: 'group', 'aria-label': 'Show the value as' },
      ...buttons,
    ),
    area,
  )
  render()
  return {
    view: () => view,
    stop() {
      clearInterval(timer)
      current?.free?.()
    },
  }
}
