'use strict'

// The data browser that `serve()` answers at `/`, driven in real Chromium (Debian's
// `chromium` package, which .ci/run installs) through playwright-core: browsing, searching,
// values of every kind, editing that keeps what was not changed, deleting one key, picked
// keys and a prefix, import and export, paging through 10,000 keys, a write from another
// process appearing live, and the operations view.

const fs = require('node:fs')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { KV, serve } = require('..')
const { tempDir } = require('./helpers')

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ROOT = path.resolve(__dirname, '..')
// A 4×4 PNG, red: what an image value looks like.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP4z8CAB+GTG8HSALfKY52fOpfsAAAAAElFTkSuQmCC',
  'base64',
)

const haveChromium = fs.existsSync(CHROMIUM)
if (!haveChromium) {
  if (process.env.CI === 'true') {
    throw new Error(`Chromium is not at ${CHROMIUM}: .ci/run installs Debian's chromium package.`)
  }
  console.warn(
    `browser.test.js skips: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH).`,
  )
}
const describeWithChromium = haveChromium ? describe : describe.skip

// A page's test takes a second or two alone, several on a machine busy with the other suites.
jest.setTimeout(15_000)

describeWithChromium('the data browser', () => {
  let browser, dir, server, kv, context, page
  const soon = Math.floor(Date.now() / 1000) + 3600

  beforeAll(async () => {
    const { chromium } = require('playwright-core')
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    dir = tempDir()
    kv = new KV({ path: dir, namespace: 'KV' })
    await kv.put('config', JSON.stringify({ theme: 'dark', flags: [1, 2] }))
    await kv.put('session:alice', 'alice data', {
      metadata: { role: 'admin' },
      expiration: soon,
    })
    await kv.put('session:bob', 'bob data', { metadata: { role: 'user' } })
    await kv.put('blob', new Uint8Array([0, 1, 2, 0xfe, 0xff, 0x41]))
    await kv.put('logo.png', PNG)
    const pages = new KV({ path: dir, namespace: 'PAGES' })
    await pages.bulkPut(
      Array.from({ length: 10_000 }, (_, i) => ({
        key: `k${String(i).padStart(5, '0')}`,
        value: `${i}`,
      })),
    )
    server = await serve({ path: dir, port: 0 })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    await kv?.close()
  })

  beforeEach(async () => {
    context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      acceptDownloads: true,
    })
    page = await context.newPage()
    page.on('pageerror', (error) => {
      throw error
    })
  })

  afterEach(async () => {
    await context?.close()
  })

  // Opens the page on namespace `namespace` with the token in the address, as the CLI prints it.
  async function open(namespace = 'KV') {
    await page.goto(`${server.url}/?namespace=${namespace}#token=${server.token}`)
    await page.waitForSelector('body[data-ready="true"]')
  }
  const rows = () =>
    page.locator('#key-rows tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.key))
  const keyButton = (name) =>
    page.locator('#key-rows tr', { has: page.locator(`text="${name}"`) }).locator('.key-name')

  test('takes the token from the address once, drops it from the address, and keeps it', async () => {
    await open()
    expect(page.url()).not.toContain(server.token)
    expect(await rows()).toEqual(['blob', 'config', 'logo.png', 'session:alice', 'session:bob'])
    await page.goto(`${server.url}/`)
    await page.waitForSelector('body[data-ready="true"]')
    expect(await rows()).toHaveLength(5)
  })

  test('without a token, asks for one; a wrong one is refused', async () => {
    await page.goto(`${server.url}/#token=not-the-token-at-all`)
    await page.waitForSelector('#token-form:not([hidden])')
    expect(await page.textContent('#status')).toBe('Authentication error')
    await page.fill('#token-input', server.token)
    await page.click('#token-form button')
    await page.waitForSelector('body[data-ready="true"]')
    expect(await rows()).toHaveLength(5)
  })

  test('searches by prefix', async () => {
    await open()
    await page.fill('#prefix', 'session:')
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 2)
    expect(await rows()).toEqual(['session:alice', 'session:bob'])
  })

  test('shows JSON pretty, text, bytes as hex and images as images, with metadata and expiration', async () => {
    await open()
    await keyButton('config').click()
    await page.waitForSelector('#detail-key >> text=config')
    expect(await page.textContent('[data-view="json"]')).toBe(
      JSON.stringify({ theme: 'dark', flags: [1, 2] }, null, 2),
    )
    await keyButton('session:alice').click()
    await page.waitForSelector('#detail-key >> text=session:alice')
    expect(await page.textContent('[data-view="text"]')).toBe('alice data')
    expect(JSON.parse(await page.textContent('#detail-metadata'))).toEqual({ role: 'admin' })
    expect(await page.textContent('#detail-expiration')).toMatch(/\(in (59 m|1 h)/)
    expect(await page.getAttribute('#detail-expiration', 'title')).toBe(
      new Date(soon * 1000).toISOString(),
    )
    await keyButton('blob').click()
    await page.waitForSelector('[data-view="hex"]')
    expect(await page.textContent('[data-view="hex"]')).toBe(
      `00000000  ${'00 01 02 fe ff 41'.padEnd(47)}  .....A`,
    )
    await keyButton('logo.png').click()
    const image = page.locator('[data-view="image"] img')
    await image.waitFor()
    expect(await image.evaluate((img) => img.decode().then(() => img.naturalWidth))).toBe(4)
  })

  test('an edit of the value keeps the metadata and expiration', async () => {
    await kv.put('edit-me', 'before', { metadata: { keep: true }, expiration: soon })
    await open()
    await keyButton('edit-me').click()
    await page.click('#detail button:text("Edit")')
    expect(await page.inputValue('#editor-value')).toBe('before')
    await page.fill('#editor-value', 'after')
    await page.click('#editor button[type=submit]')
    await page.waitForSelector('[data-view="text"] >> text=after')
    const read = await kv.getWithMetadata('edit-me')
    expect([read.value, read.metadata]).toEqual(['after', { keep: true }])
    const [listed] = (await kv.list({ prefix: 'edit-me' })).keys
    expect(listed.expiration).toBe(soon)
  })

  test('makes a key with metadata and a time to live; refuses bad metadata', async () => {
    await open()
    await page.keyboard.press('n')
    await page.fill('#editor-key', 'made')
    await page.fill('#editor-value', 'new value')
    await page.fill('#editor-metadata', '{not json')
    await page.check('input[name="expires"][value="ttl"]')
    await page.fill('#editor-ttl', '600')
    await page.click('#editor button[type=submit]')
    expect(await page.textContent('#editor-error')).toBe('The metadata is not valid JSON.')
    expect(await kv.get('made')).toBeNull()
    await page.fill('#editor-metadata', '{"by":"page"}')
    // A name that exists is replaced only once confirmed.
    await page.fill('#editor-key', 'config')
    await page.click('#editor button[type=submit]')
    await page.click('#confirm-no')
    expect(await page.textContent('#editor-error')).toBe('config exists; nothing was written.')
    expect(await kv.get('config')).toBe(JSON.stringify({ theme: 'dark', flags: [1, 2] }))
    await page.fill('#editor-key', 'made')
    await page.click('#editor button[type=submit]')
    await page.waitForSelector('#detail-key >> text=made')
    // What the action did stays said, though the list changed with it.
    expect(await page.textContent('#status')).toBe('Saved made.')
    const [listed] = (await kv.list({ prefix: 'made' })).keys
    expect(listed.metadata).toEqual({ by: 'page' })
    expect(Math.abs(listed.expiration - (Date.now() / 1000 + 600))).toBeLessThan(30)
    expect(await kv.get('made')).toBe('new value')
  })

  test('deletes a key only once confirmed', async () => {
    await kv.put('doomed', 'x')
    await open()
    await keyButton('doomed').click()
    await page.waitForSelector('#detail-key >> text=doomed')
    await page.keyboard.press('Delete')
    await page.click('#confirm-no')
    expect(await kv.get('doomed')).toBe('x')
    await page.click('#detail button:text("Delete")')
    await page.click('#confirm-yes')
    await page.waitForFunction(() => !document.querySelector('#detail-key'))
    expect(await kv.get('doomed')).toBeNull()
    expect(await rows()).not.toContain('doomed')
  })

  test('renames a key with its metadata and expiration', async () => {
    await kv.put('old-name', 'moved', { metadata: { n: 1 }, expiration: soon })
    await open()
    await keyButton('old-name').click()
    await page.waitForSelector('#detail-key >> text=old-name')
    await page.keyboard.press('r')
    await page.fill('#confirm-input', 'new-name')
    await page.click('#confirm-yes')
    await page.waitForSelector('#detail-key >> text=new-name')
    expect(await kv.get('old-name')).toBeNull()
    const [listed] = (await kv.list({ prefix: 'new-name' })).keys
    expect(listed).toEqual({ name: 'new-name', metadata: { n: 1 }, expiration: soon })
    expect(await kv.get('new-name')).toBe('moved')
  })

  test('deletes the keys picked, and every key under a prefix once the prefix is typed', async () => {
    await kv.bulkPut(
      ['tmp:a', 'tmp:b', 'tmp:c', 'gone:1', 'gone:2'].map((key) => ({ key, value: key })),
    )
    await open()
    await page.fill('#prefix', 'tmp:')
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 3)
    await page.check('#key-rows tr[data-key="tmp:a"] input')
    await page.check('#key-rows tr[data-key="tmp:c"] input')
    await page.click('#delete-selected')
    await page.click('#confirm-yes')
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 1)
    expect(await kv.get(['tmp:a', 'tmp:b', 'tmp:c'])).toEqual(
      new Map([
        ['tmp:a', null],
        ['tmp:b', 'tmp:b'],
        ['tmp:c', null],
      ]),
    )
    await page.fill('#prefix', 'gone:')
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 2)
    await page.click('#delete-prefix')
    await page.fill('#confirm-input', 'gone')
    await page.click('#confirm-yes')
    expect(await page.textContent('#confirm-error')).toBe('Type "gone:" to go on.')
    expect((await kv.list({ prefix: 'gone:' })).keys).toHaveLength(2)
    await page.fill('#confirm-input', 'gone:')
    await page.click('#confirm-yes')
    await page.waitForSelector('#no-keys:not([hidden])')
    expect((await kv.list({ prefix: 'gone:' })).keys).toHaveLength(0)
  })

  test('exports wrangler bulk JSON and imports it all or nothing', async () => {
    await open()
    await page.fill('#prefix', 'session:')
    await page.waitForFunction(() => document.querySelectorAll('#key-rows tr').length === 2)
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')])
    const exported = JSON.parse(fs.readFileSync(await download.path(), 'utf8'))
    expect(exported).toEqual((await kv.dump()).filter(({ key }) => key.startsWith('session:')))
    await page.waitForSelector('#status >> text=Exported 2 keys.')

    const file = path.join(tempDir(), 'import.json')
    const good = [
      { key: 'imported:1', value: 'one', metadata: { from: 'file' } },
      { key: 'imported:2', value: Buffer.from([0xff, 0]).toString('base64'), base64: true },
    ]
    fs.writeFileSync(file, JSON.stringify([...good, { key: 'imported:3', value: 3 }]))
    await page.setInputFiles('#import-file', file)
    await page.waitForFunction(() => document.querySelector('#status').classList.contains('error'))
    expect(await page.textContent('#status')).toContain('Entry 2 (key "imported:3") was refused')
    expect((await kv.list({ prefix: 'imported:' })).keys).toHaveLength(0)

    fs.writeFileSync(file, JSON.stringify(good))
    await page.setInputFiles('#import-file', file)
    await page.waitForSelector('#status >> text=Imported 2 keys')
    expect(await kv.getWithMetadata('imported:1')).toMatchObject({
      value: 'one',
      metadata: { from: 'file' },
    })
    expect(new Uint8Array(await kv.get('imported:2', 'arrayBuffer'))).toEqual(
      new Uint8Array([0xff, 0]),
    )
  })

  test('pages through 10,000 keys a hundred at a time, never more in the page', async () => {
    await open('PAGES')
    expect(await rows()).toHaveLength(100)
    expect((await rows())[0]).toBe('k00000')
    await page.click('#next')
    await page.waitForSelector('#key-rows tr[data-key="k00100"]')
    expect(await page.textContent('#page-info')).toBe('Page 2 · keys 101–200')
    await page.locator('#key-rows .key-name').first().focus()
    for (let i = 2; i < 100; i++) {
      await page.keyboard.press(']')
      await page.waitForSelector(`#key-rows tr[data-key="k${String(i * 100).padStart(5, '0')}"]`)
    }
    expect(await page.textContent('#page-info')).toBe('Page 100 · keys 9901–10000 (the last)')
    expect(await page.locator('#key-rows tr').count()).toBe(100)
    expect(await page.isDisabled('#next')).toBe(true)
    await page.click('#previous')
    await page.waitForSelector('#key-rows tr[data-key="k09800"]')
  }, 60_000)

  test('a key written by another process appears without a reload, and in the operations view', async () => {
    await open()
    expect(await rows()).not.toContain('from-elsewhere')
    // The feed is open, so the holder logs what it answers for others from now on.
    await page.waitForSelector('body[data-feed="open"]')
    // A second process, reaching the store through this one, which holds it.
    const writer = spawn(process.execPath, [
      '-e',
      `const kv = new (require(${JSON.stringify(ROOT)}).KV)({ path: ${JSON.stringify(dir)}, namespace: 'KV' })
       kv.put('from-elsewhere', 'hello').then(() => kv.close())`,
    ])
    const exited = await new Promise((resolve) => writer.once('exit', resolve))
    expect(exited).toBe(0)
    await page.waitForSelector('#key-rows tr[data-key="from-elsewhere"]', { timeout: 10_000 })
    // The holder (this process) answered the write for the other: the operations view
    // shows it, with the other's pid.
    await page.click('#tab-operations')
    const row = page.locator('#operation-rows tr[data-op="put"]', { hasText: 'from-elsewhere' })
    await row.waitFor({ timeout: 10_000 })
    const cells = await row.locator('td').allTextContents()
    expect(cells.slice(1, 6)).toEqual([String(writer.pid), 'put', 'KV', 'from-elsewhere', '5 B'])
  })

  test('the operations view shows operations as they happen, with cache status and location', async () => {
    const eventual = new KV({ consistency: 'eventual' })
    const local = await serve({ namespaces: { KV: eventual }, port: 0 })
    try {
      await page.goto(`${local.url}/#token=${local.token}`)
      await page.waitForSelector('body[data-ready="true"]')
      await page.click('#tab-operations')
      await page.waitForSelector('#operations-view:not([hidden])')
      await eventual.put('seen', 'twelve bytes')
      await eventual.location('NRT').getWithMetadata('seen')
      await eventual.location('NRT').getWithMetadata('seen')
      const row = page.locator('#operation-rows tr[data-op="put"]', { hasText: 'seen' })
      await row.waitFor()
      expect(await row.locator('td').allTextContents()).toEqual([
        expect.stringMatching(/^\d\d:\d\d:\d\d\.\d{3}$/),
        `${process.pid} (here)`,
        'put',
        'default',
        'seen',
        '12 B',
        expect.stringMatching(/^\d+\.\d\d ms$/),
        '',
        '',
        'ok',
      ])
      const reads = page.locator('#operation-rows tr[data-op="getWithMetadata"]')
      await page.waitForFunction(
        () =>
          document.querySelectorAll('#operation-rows tr[data-op="getWithMetadata"]').length === 2,
      )
      const cells = async (i) => (await reads.nth(i).locator('td').allTextContents()).slice(7, 10)
      // Newest first: the second read was served from NRT's cache.
      expect(await cells(0)).toEqual(['HIT', 'NRT', 'ok'])
      expect(await cells(1)).toEqual(['MISS', 'NRT', 'ok'])
      // The page's own refreshes are not operations anyone asked for: they are left out.
      await page.waitForTimeout(2500)
      expect(await page.locator('#operation-rows tr[data-op="list"]').count()).toBe(0)
      await page.fill('#operations-filter', 'nothing-like-this')
      expect(await page.locator('#operation-rows tr:not([hidden])').count()).toBe(0)
    } finally {
      await local.close()
      await eventual.close()
    }
  })

  test('a large value shown is read again only when it was written, not at every refresh', async () => {
    await kv.put('big', 'b'.repeat(300_000))
    await open()
    await page.waitForSelector('body[data-feed="open"]')
    await keyButton('big').click()
    await page.waitForSelector('#detail-key >> text=big')
    const reads = []
    page.on('request', (request) => {
      if (request.url().includes('/values/big')) reads.push(request.url())
    })
    // Two refreshes go by: the listing is asked for, the 300 KB value is not.
    await page.waitForTimeout(4500)
    expect(reads).toEqual([])
    await kv.put('big', 'c'.repeat(300_000))
    await page.waitForSelector('[data-view="text"] >> text=/^c+$/')
    expect(reads.length).toBeGreaterThan(0)
    // The keys the other tests expect, as they were.
    await kv.delete('big')
  }, 20_000)

  test('is usable from the keyboard', async () => {
    await open()
    await page.keyboard.press('/')
    expect(await page.evaluate(() => document.activeElement.id)).toBe('prefix')
    await page.locator('#key-rows .key-name').first().focus()
    await page.keyboard.press('ArrowDown')
    await page.keyboard.press('Enter')
    await page.waitForSelector('#detail-key >> text=config')
    await page.keyboard.press('e')
    expect(await page.evaluate(() => document.querySelector('#editor').open)).toBe(true)
    await page.keyboard.press('Escape')
    expect(await page.evaluate(() => document.querySelector('#editor').open)).toBe(false)
  })

  test('reads in light and dark, as the system is or as picked', async () => {
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    await page.emulateMedia({ colorScheme: 'dark' })
    await open()
    expect(await background()).toBe('rgb(21, 23, 26)')
    await page.click('#theme')
    expect(await page.textContent('#theme')).toBe('Theme: light')
    expect(await background()).toBe('rgb(255, 255, 255)')
    await page.reload()
    await page.waitForSelector('body[data-ready="true"]')
    expect(await background()).toBe('rgb(255, 255, 255)')
    if (process.env.KV_SCREENSHOT) {
      await keyButton('session:alice').click()
      await page.waitForSelector('#detail-key >> text=session:alice')
      await page.screenshot({ path: process.env.KV_SCREENSHOT })
    }
  })
})
