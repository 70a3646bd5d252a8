// A worker in service-worker syntax, as it would run on Cloudflare: it reaches its KV
// namespace through `env.KV` and serves the three use cases of the product brief.
//
//   POST /login?user=NAME   starts a session (cookie `session`, expires in an hour)
//   GET  /me                session check from the Cookie header
//   GET  /checkout          feature flags: which checkout flow this request gets
//   PUT  /flags             replaces the feature flags (JSON body)
//   GET  /api               rate limited per CF-Connecting-IP (RATE_LIMIT requests a minute)
//
// Any request may add ?colo=XYZ (a three-letter location code): under the demo's --eventual,
// it is then served from that Cloudflare location, whose KV reads are cached there (see
// kvAt below). In production, and without --eventual, every request sees the same data.

/* global env, addEventListener */

const SESSION_TTL = 3600
const RATE_WINDOW = 60

addEventListener('fetch', (event) => {
  event.respondWith(route(event.request))
})

async function route(request) {
  const response = await serve(request, kvAt(request))
  const colo = new URL(request.url).searchParams.get('colo')
  if (colo !== null) response.headers.set('X-KV-Location', colo)
  return response
}

// The KV namespace as the request's location sees it: `location()` is kv-binding's, which
// production's KV does not have, so there every request gets env.KV.
function kvAt(request) {
  const colo = new URL(request.url).searchParams.get('colo')
  if (colo === null || typeof env.KV.location !== 'function') return env.KV
  return /^[A-Z]{3}$/.test(colo) ? env.KV.location(colo) : env.KV
}

async function serve(request, kv) {
  const { pathname } = new URL(request.url)
  const endpoint = `${request.method} ${pathname}`
  switch (endpoint) {
    case 'GET /':
      return text(
        'kv-binding demo: POST /login?user=NAME, GET /me, GET /checkout, PUT /flags, GET /api',
      )
    case 'POST /login':
      return login(request, kv)
    case 'GET /me':
      return me(request, kv)
    case 'GET /checkout':
      return checkout(kv)
    case 'PUT /flags':
      return setFlags(request, kv)
    case 'GET /api':
      return rateLimited(request, kv)
    default:
      return text('Not found', 404)
  }
}

async function login(request, kv) {
  const user = new URL(request.url).searchParams.get('user')
  if (!user) return text('Give a user: POST /login?user=NAME', 400)
  const id = crypto.randomUUID().replaceAll('-', '')
  await kv.put(`session:${id}`, JSON.stringify({ user, since: Date.now() }), {
    expirationTtl: SESSION_TTL,
  })
  return new Response(`Welcome, ${user}\n`, {
    headers: { 'Set-Cookie': `session=${id}; HttpOnly; Path=/; Max-Age=${SESSION_TTL}` },
  })
}

async function me(request, kv) {
  const sessionId = request.headers.get('Cookie')?.match(/(?:^|;\s*)session=([^;]*)/)?.[1]
  if (sessionId === undefined) return text('Unauthorized', 401)
  // Only ids /login hands out can name a session: anything else is not worth a KV read (and
  // might not even be a valid key).
  if (!/^[0-9a-f]{32}$/.test(sessionId)) return text('Bad session cookie', 400)
  const session = await kv.get(`session:${sessionId}`, 'json')
  if (!session) return text('Session expired', 401)
  return json(session)
}

async function checkout(kv) {
  const flags = (await kv.get('feature-flags', 'json')) || {}
  return text(flags.newCheckout ? 'new checkout flow' : 'classic checkout flow')
}

async function setFlags(request, kv) {
  let flags
  try {
    flags = await request.json()
  } catch {
    return text('The body must be JSON', 400)
  }
  await kv.put('feature-flags', JSON.stringify(flags))
  return json(flags)
}

async function rateLimited(request, kv) {
  const ip = request.headers.get('CF-Connecting-IP') || 'unknown'
  if (ip.length > 45 || !/^[\w.:]+$/.test(ip)) return text('Bad CF-Connecting-IP header', 400)
  const window = Math.floor(Date.now() / 1000 / RATE_WINDOW)
  const key = `ratelimit:${ip}:${window}`
  const count = parseInt((await kv.get(key)) || '0', 10)
  if (count >= env.RATE_LIMIT) return text('Too many requests', 429)
  // The counter outlives its window by a minute, then expires on its own. Production takes
  // one write a second to a key: in a burst from one client the others fail with a 429, and
  // the request goes on uncounted. A KV counter is approximate anyway (another location may
  // not see this write for a minute); an exact limit needs a Durable Object.
  try {
    await kv.put(key, String(count + 1), { expirationTtl: RATE_WINDOW * 2 })
  } catch (error) {
    if (!error.message.includes(' 429 ')) throw error
  }
  return json({ ok: true, remaining: env.RATE_LIMIT - count - 1 })
}

function text(body, status = 200) {
  return new Response(`${body}\n`, { status, headers: { 'Content-Type': 'text/plain' } })
}

function json(value, status = 200) {
  return new Response(JSON.stringify(value), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}
