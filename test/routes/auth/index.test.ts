import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { bearer, build, capturedLogs, forEachBackend, sessionChangeSeen } from '../../helper.js'

forEachBackend(t, async (t, backend) => {
  t.test('JSON body: 201 with session key, cookie, scheduling fields and PINGTimeout', async (t) => {
    const { app, key, repos } = await build(t, {}, { backend })
    const res = await app.inject({
      method: 'POST',
      url: '/auth',
      payload: {
        apikey: await key('read'),
        device: 'Thermostat',
        location: 'Living Room',
        subscribe: { Light: { location: 'Living Room' }, Alarm: {} }
      }
    })
    t.equal(res.statusCode, 201)
    const body = res.json()
    t.match(body, {
      status: 201,
      message: 'Authenticated',
      id: Number,
      scheduled: { assigned: false, slot: null, period: null },
      PINGTimeout: 240
    })
    t.match(body.sessionKey, /^[0-9a-f]{64}$/)
    const cookie = res.cookies.find((c) => c.name === 'sessionKey')
    t.equal(cookie?.value, body.sessionKey)
    t.equal(cookie?.path, '/')
    t.equal(cookie?.httpOnly, true)
    t.equal(cookie?.sameSite, 'Lax')
    const client = await repos.clients.get(body.id)
    t.match(client, { device: 'Thermostat', location: 'Living Room' })
  })

  t.test('only apikey is required; device and location are stored as null', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: await key('read') } })
    t.equal(res.statusCode, 201)
    const me = await app.inject({ url: '/clients/me', headers: bearer(res.json().sessionKey) })
    const { lastActive: _lastActive, ...client } = me.json().client
    t.same(client, { id: res.json().id, device: null, location: null, uri: `http://localhost:80/clients/${res.json().id}` })
  })

  t.test('missing, unknown or empty apikey is 401 Invalid API Key, checked before other fields', async (t) => {
    const { app } = await build(t, {}, { backend })
    for (const payload of [{}, { apikey: 'nope' }, { apikey: '' }, { apikey: 'nope', device: 'x'.repeat(1000) }, { apikey: 42 }]) {
      const res = await app.inject({ method: 'POST', url: '/auth', payload })
      t.equal(res.statusCode, 401, JSON.stringify(payload).slice(0, 60))
      t.same(res.json(), { status: 401, message: 'Invalid API Key' })
    }
    const none = await app.inject({ method: 'GET', url: '/auth' })
    t.same(none.json(), { status: 401, message: 'Invalid API Key' })
  })

  t.test('form-encoded body with bracket notation, as the original web UI sends it', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const apikey = await key('write')
    const res = await app.inject({
      method: 'POST',
      url: '/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `apikey=${encodeURIComponent(apikey)}&device=Web%20UI&location=Hall&subscribe%5BLight%5D%5Blocation%5D=Hall&subscribe[Door][location]=`
    })
    t.equal(res.statusCode, 201)
    const session = bearer(res.json().sessionKey)
    const me = await app.inject({ url: '/clients/me', headers: session })
    t.match(me.json().client, { device: 'Web UI', location: 'Hall' })
    // subscriptions took effect: Light only from Hall, Door from anywhere
    const writer = await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })
    const post = (event: object) => app.inject({ method: 'POST', url: '/events', headers: bearer(writer.json().sessionKey), payload: { event } })
    const hall = (await post({ name: 'Light', location: 'Hall' })).json().event.id
    await post({ name: 'Light', location: 'Kitchen' })
    const door = (await post({ name: 'Door', location: 'Garage' })).json().event.id
    const subscribed = await app.inject({ url: `/clients/${res.json().id}/subscribedevents`, headers: session })
    t.same(subscribed.json().events.map((e: { id: number }) => e.id), [door, hall])
  })

  t.test('GET /auth with query parameters, nested in bracket notation', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const apikey = await key('read')
    const res = await app.inject({
      method: 'GET',
      url: `/auth?apikey=${encodeURIComponent(apikey)}&device=Lamp&subscribe[Light][location]=Hall&subscribe[Alarm]=`
    })
    t.equal(res.statusCode, 201)
    t.equal(res.json().message, 'Authenticated')
    const me = await app.inject({ url: '/clients/me', headers: bearer(res.json().sessionKey) })
    t.equal(me.json().client.device, 'Lamp')
  })

  t.test('each /auth creates a new client with a new session', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const apikey = await key('read')
    const a = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })).json()
    const b = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })).json()
    t.not(a.id, b.id)
    t.not(a.sessionKey, b.sessionKey)
    t.ok(b.id > a.id)
  })

  t.test('bad field types are 400 naming the field', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const apikey = await key('read')
    const cases: Array<[object, RegExp]> = [
      [{ apikey, device: 'x'.repeat(241) }, /device/],
      [{ apikey, subscribe: 'Light' }, /subscribe/],
      [{ apikey, subscribe: { Light: { location: 'x'.repeat(300) } } }, /subscribe/],
      [{ apikey, device: { nested: true } }, /device/],
      [{ apikey, device: 'Lamp\u0000' }, /device/],
      [{ apikey, subscribe: { 'Li\u0000ght': {} } }, /subscribe/],
      [{ apikey, subscribe: { ['x'.repeat(241)]: {} } }, /subscribe/]
    ]
    for (const [payload, field] of cases) {
      const res = await app.inject({ method: 'POST', url: '/auth', payload })
      t.equal(res.statusCode, 400)
      t.equal(res.json().status, 400)
      t.match(res.json().message, field)
    }
  })

  t.test('scheduler: True assigns a slot in 1..schedulerPeriod', async (t) => {
    const { app, key } = await build(t, { scheduler: true, schedulerPeriod: 3, pingtimeout: 60 }, { backend })
    const apikey = await key('read')
    const slots = []
    for (let i = 0; i < 5; i++) {
      const body = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })).json()
      t.equal(body.scheduled.assigned, true)
      t.equal(body.scheduled.period, 3)
      t.equal(body.PINGTimeout, 60)
      t.ok(body.scheduled.slot >= 1 && body.scheduled.slot <= 3)
      slots.push(body.scheduled.slot)
    }
    t.same(new Set(slots).size, 3, 'clients are spread over every slot')
  })
})

t.test('sessions: bearer header, cookie, or JSON body field; anything else is 401 Not Authenticated', async (t) => {
  const { app, session } = await build(t)
  const { sessionKey } = await session('write')
  const viaHeader = await app.inject({ url: '/events', headers: bearer(sessionKey) })
  t.equal(viaHeader.statusCode, 200)
  const viaCookie = await app.inject({ url: '/events', cookies: { sessionKey } })
  t.equal(viaCookie.statusCode, 200)
  const viaBody = await app.inject({ method: 'POST', url: '/events', payload: { sessionKey, event: { name: 'Light' } } })
  t.equal(viaBody.statusCode, 201)
  for (const headers of [{}, bearer('0'.repeat(64)), { authorization: 'Basic abc' }, { cookie: 'sessionKey=wrong' }]) {
    const res = await app.inject({ url: '/events', headers })
    t.equal(res.statusCode, 401)
    t.same(res.json(), { status: 401, message: 'Not Authenticated' })
  }
  const bodyWrong = await app.inject({ method: 'POST', url: '/events', payload: { sessionKey: 'wrong', event: { name: 'Light' } } })
  t.same(bodyWrong.json(), { status: 401, message: 'Not Authenticated' })
})

t.test('the session cookie path is approot', async (t) => {
  const { app, key } = await build(t, { approot: '/ignored-when-embedded' }, { prefix: '/cred' })
  const res = await app.inject({ method: 'POST', url: '/cred/auth', payload: { apikey: await key('read') } })
  t.equal(res.cookies.find((c) => c.name === 'sessionKey')?.path, '/cred')
})

forEachBackend(t, async (t, backend) => {
  t.test('DELETE /auth ends the calling session: 204, cookie cleared, key refused, client inactive', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const me = await session('read')
    const other = await session('read')
    const res = await app.inject({ method: 'DELETE', url: '/auth', headers: bearer(me.sessionKey) })
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    const cookie = res.cookies.find((c) => c.name === 'sessionKey')
    t.equal(cookie?.value, '', 'the cookie is cleared')
    t.ok(cookie?.expires !== undefined && cookie.expires.getTime() < Date.now(), 'and expired')
    t.equal(cookie?.maxAge, 0)
    t.equal(cookie?.path, '/', 'on the path it was set on')
    t.same((await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })).json(), { status: 401, message: 'Not Authenticated' })
    const active = (await app.inject({ url: '/clients', headers: bearer(other.sessionKey) })).json().clients.map((c: { id: number }) => c.id)
    t.same(active, [other.id], 'the ended client is no longer active')
    t.equal((await app.inject({ method: 'DELETE', url: '/auth', headers: bearer(me.sessionKey) })).statusCode, 401, 'ending it twice is 401')
    t.equal((await app.inject({ method: 'DELETE', url: '/auth' })).statusCode, 401)
  })

  t.test('a session used a moment ago (answered from memory) is checked as fully as on its first request', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const reader = await session('read')
    const other = await session('read')
    const payload = { event: { name: 'Light' } }
    for (let i = 0; i < 3; i++) {
      t.equal((await app.inject({ url: '/clients/me', headers: bearer(reader.sessionKey) })).json().client.id, reader.id, 'its own client')
      t.equal((await app.inject({ url: '/clients/me', headers: bearer(other.sessionKey) })).json().client.id, other.id, 'and the other its own')
      const post = await app.inject({ method: 'POST', url: '/events', headers: bearer(reader.sessionKey), payload })
      t.same([post.statusCode, post.json()], [403, { status: 403, message: 'Insufficient Permissions' }], 'read may not post')
    }
    t.equal((await app.inject({ method: 'DELETE', url: '/auth', headers: bearer(reader.sessionKey) })).statusCode, 204)
    t.same((await app.inject({ url: '/clients/me', headers: bearer(reader.sessionKey) })).json(), { status: 401, message: 'Not Authenticated' }, 'ended: refused at once')
    t.equal((await app.inject({ url: '/clients/me', headers: bearer(other.sessionKey) })).statusCode, 200, 'the other session still works')
  })

  t.test('sessionTimeout: a session unused for longer is refused', async (t) => {
    const { app, session, repos } = await build(t, { sessionTimeout: 60 }, { backend })
    const me = await session('read')
    t.equal((await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })).statusCode, 200)
    // "last active" is moved back through another connection
    const settle = () => sessionChangeSeen(backend)
    await repos.clients.touch(me.id, Date.now() - 61_000)
    await settle()
    t.same((await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })).json(), { status: 401, message: 'Not Authenticated' })
    await repos.clients.touch(me.id, Date.now() - 57_000)
    await settle()
    t.equal((await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })).statusCode, 200, 'used within the timeout: fine')
  })
})

t.test('sessions never expire by default', async (t) => {
  const { app, session, repos } = await build(t)
  const me = await session('read')
  await repos.clients.touch(me.id, Date.now() - 30 * 24 * 3600_000)
  t.equal((await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })).statusCode, 200)
})

t.test('failed /auth attempts are limited per IP with 429 and Retry-After; successes are not', async (t) => {
  const { app, key } = await build(t, { authRateLimit: 3 })
  const good = await key('read')
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/auth', payload: { apikey: good } })).statusCode, 201, 'successes do not count')
  }
  for (let i = 0; i < 3; i++) {
    const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: `wrong-${i}` } })
    t.equal(res.statusCode, 401, `failure ${i + 1} is still 401`)
  }
  const limited = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'wrong-again' } })
  t.equal(limited.statusCode, 429)
  t.match(limited.json(), { status: 429, message: /Too many failed authentication attempts/ })
  const retry = Number(limited.headers['retry-after'])
  t.ok(retry > 0 && retry <= 60, `Retry-After: ${retry}`)
  const elsewhere = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'wrong' }, remoteAddress: '10.9.8.7' })
  t.equal(elsewhere.statusCode, 401, 'other addresses are not affected')
  const getForm = await app.inject({ method: 'GET', url: '/auth?apikey=nope' })
  t.equal(getForm.statusCode, 429, 'GET /auth counts too')
  const noKey = await app.inject({ method: 'POST', url: '/auth', payload: {} })
  t.equal(noKey.statusCode, 429, 'and so does a request without a key')
})

forEachBackend(t, async (t, backend) => {
  t.test('a right key is always admitted, even from an address blocked for its failures', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const good = await key('write')
    const statuses = []
    for (let i = 0; i < 11; i++) statuses.push((await app.inject({ method: 'POST', url: '/auth', payload: { apikey: `guess-${i}` } })).statusCode)
    t.same(statuses, [...Array(10).fill(401), 429], 'authRateLimit (10) failures, then blocked')
    const device = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: good, device: 'Lamp' } })
    t.equal(device.statusCode, 201, 'a device behind the same address signs in')
    t.equal((await app.inject({ method: 'GET', url: `/auth?apikey=${encodeURIComponent(good)}` })).statusCode, 201, 'GET /auth too')
    const post = await app.inject({ method: 'POST', url: '/events', headers: bearer(device.json().sessionKey), payload: { event: { name: 'Light' } } })
    t.equal(post.statusCode, 201, 'and its session works')
    const guess = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'guess-again' } })
    t.equal(guess.statusCode, 429, 'the next wrong key is still refused')
    const retry = Number(guess.headers['retry-after'])
    t.ok(retry > 0 && retry <= 60, `with Retry-After: ${retry}`)
  })
})

t.test('trustProxy: behind a trusted proxy the limit is per real client (X-Forwarded-For); without it the header is ignored', async (t) => {
  const proxy = '10.0.0.2'
  const attempt = (app: FastifyInstance, client: string, apikey = 'wrong') =>
    app.inject({ method: 'POST', url: '/auth', payload: { apikey }, remoteAddress: proxy, headers: { 'x-forwarded-for': client } })

  const behind = await build(t, { authRateLimit: 2 }, { server: { trustProxy: proxy } })
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push((await attempt(behind.app, '192.0.2.1')).statusCode)
  t.same(statuses, [401, 401, 429], 'the first client is blocked')
  t.equal((await attempt(behind.app, '192.0.2.2')).statusCode, 401, 'the second, behind the same proxy, is not')
  t.equal((await attempt(behind.app, '192.0.2.1', await behind.key('read'))).statusCode, 201, 'and a right key is admitted for the first')
  const spoofed = await behind.app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'wrong' }, remoteAddress: '192.0.2.1', headers: { 'x-forwarded-for': '192.0.2.99' } })
  t.equal(spoofed.statusCode, 429, 'a client that is not the proxy cannot pick its address with the header')

  const direct = await build(t, { authRateLimit: 2 })
  statuses.length = 0
  for (let i = 0; i < 3; i++) statuses.push((await attempt(direct.app, '192.0.2.1')).statusCode)
  t.same(statuses, [401, 401, 429])
  t.equal((await attempt(direct.app, '192.0.2.2')).statusCode, 429, 'without trustProxy, every client of the proxy is the proxy')
})

t.test('more subscriptions than maxSubscriptions is 400', async (t) => {
  const { app, key } = await build(t, { maxSubscriptions: 3 })
  const apikey = await key('read')
  const subscribe = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`Event${i}`, {}]))
  t.equal((await app.inject({ method: 'POST', url: '/auth', payload: { apikey, subscribe: subscribe(3) } })).statusCode, 201)
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, subscribe: subscribe(4) } })
  t.equal(res.statusCode, 400)
  t.same(res.json(), { status: 400, message: 'subscribe: at most 3 event names per client' })
})

// Cross-site request forgery: a page of another origin (another site, or another port of this
// host) makes the visitor's browser send a request with its sessionKey cookie.
const foreign = 'http://evil.example'
const refused = { status: 403, message: 'Cross-origin request refused: the page\'s origin is neither this server\'s nor listed in the cors setting' }
/** What a browser sends from a page that is not cred's own (app.inject's Host is localhost:80). */
const foreignPages: Array<Record<string, string>> = [
  { origin: foreign }, { origin: 'http://localhost:8080' }, { origin: 'https://localhost' }, { origin: 'null' },
  { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { origin: foreign, 'sec-fetch-site': 'same-origin' }
]
/** What a device, a script or cred's own page sends. */
const ownOrNoPage: Array<Record<string, string>> = [
  {}, { origin: 'http://localhost' }, { 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }
]

t.test('CSRF: a POST or DELETE with the session cookie from a page of another origin is 403; nothing changes', async (t) => {
  const { logger, lines } = capturedLogs()
  const { app, session, repos } = await build(t, {}, { server: { logger } })
  const writer = await session('write')
  const admin = await session('admin')
  const latest = await repos.events.latestId()
  for (const headers of foreignPages) {
    const post = await app.inject({ method: 'POST', url: '/events', cookies: { sessionKey: writer.sessionKey }, headers, payload: { event: { name: 'Light' } } })
    t.same([post.statusCode, post.json()], [403, refused], `POST /events ${JSON.stringify(headers)}`)
  }
  t.equal(await repos.events.latestId(), latest, 'no event stored')
  const { id } = await repos.apikeys.create('read')
  const keys = await repos.apikeys.count()
  const asAdmin = { cookies: { sessionKey: admin.sessionKey }, headers: { origin: foreign } }
  const create = await app.inject({ method: 'POST', url: '/apikeys', ...asAdmin, payload: { permission: 'admin' } })
  t.same([create.statusCode, create.json()], [403, refused], 'POST /apikeys')
  t.equal(await repos.apikeys.count(), keys, 'no key created')
  const revoke = await app.inject({ method: 'DELETE', url: `/apikeys/${id}`, ...asAdmin })
  t.same([revoke.statusCode, revoke.json()], [403, refused], 'DELETE /apikeys/{id}')
  t.equal((await repos.apikeys.get(id))?.revoked, null, 'the key is not revoked')
  const signOut = await app.inject({ method: 'DELETE', url: '/auth', ...asAdmin })
  t.same([signOut.statusCode, signOut.json()], [403, refused], 'DELETE /auth')
  t.equal((await app.inject({ url: '/clients/me', headers: bearer(admin.sessionKey) })).statusCode, 200, 'the session is not ended')

  const line = lines.find((entry) => entry.msg === 'cross-origin request refused')
  t.match(line, { level: 30, origin: foreign, serverOrigin: 'http://localhost' }, 'logged with the origins compared')
})

t.test('CSRF: devices, scripts and cred\'s own page post with the cookie; bearer and body sessions and reads are not checked', async (t) => {
  const { app, session } = await build(t)
  const writer = await session('write')
  const payload = { event: { name: 'Light' } }
  for (const headers of ownOrNoPage) {
    const post = await app.inject({ method: 'POST', url: '/events', cookies: { sessionKey: writer.sessionKey }, headers, payload })
    t.equal(post.statusCode, 201, `cookie ${JSON.stringify(headers)}`)
  }
  const viaBearer = await app.inject({ method: 'POST', url: '/events', headers: { ...bearer(writer.sessionKey), origin: foreign }, payload })
  t.equal(viaBearer.statusCode, 201, 'a bearer token is never sent by a browser on its own')
  const viaBody = await app.inject({ method: 'POST', url: '/events', headers: { origin: foreign }, payload: { ...payload, sessionKey: writer.sessionKey } })
  t.equal(viaBody.statusCode, 201, 'nor a JSON body (which another origin cannot send without a preflight)')
  const read = await app.inject({ url: '/events', cookies: { sessionKey: writer.sessionKey }, headers: { origin: foreign, 'sec-fetch-site': 'cross-site' } })
  t.equal(read.statusCode, 200, 'a read changes nothing (CORS keeps its answer from the page)')
  t.equal(read.headers['access-control-allow-origin'], undefined)
})

t.test('CSRF: a listed origin may post with the cookie; with cors \'*\' every origin may', async (t) => {
  const listed = await build(t, { cors: ['https://ui.example'] })
  const listedSession = await listed.session('write')
  const post = (app: FastifyInstance, sessionKey: string, origin: string) =>
    app.inject({ method: 'POST', url: '/events', cookies: { sessionKey }, headers: { origin }, payload: { event: { name: 'Light' } } })
  t.equal((await post(listed.app, listedSession.sessionKey, 'https://ui.example')).statusCode, 201, 'listed')
  t.equal((await post(listed.app, listedSession.sessionKey, foreign)).statusCode, 403, 'not listed')
  const any = await build(t, { cors: '*' })
  const anySession = await any.session('write')
  t.equal((await post(any.app, anySession.sessionKey, foreign)).statusCode, 201, "'*'")
})

t.test('CSRF behind a reverse proxy: the own origin is the one the browser used (trustProxy), or the Host header', async (t) => {
  const proxied = { remoteAddress: '10.0.0.2', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'cred.example', origin: 'https://cred.example' } }
  const trusting = await build(t, {}, { server: { trustProxy: '10.0.0.2' } })
  const viaProxy = async ({ app, session }: Awaited<ReturnType<typeof build>>) =>
    app.inject({ method: 'POST', url: '/events', ...proxied, cookies: { sessionKey: (await session('write')).sessionKey }, payload: { event: { name: 'Light' } } })
  t.equal((await viaProxy(trusting)).statusCode, 201, 'with trustProxy')
  t.equal((await viaProxy(await build(t))).statusCode, 403, 'without it the forwarded headers mean nothing')
  const { app, session } = await build(t)
  const { sessionKey } = await session('write')
  const passingHost = await app.inject({
    method: 'POST', url: '/events', cookies: { sessionKey }, headers: { host: 'cred.example:5000', origin: 'http://cred.example:5000' }, payload: { event: { name: 'Light' } }
  })
  t.equal(passingHost.statusCode, 201, 'a proxy that passes Host and serves plain HTTP needs nothing')
})

t.test('login CSRF: POST and GET /auth from a page of another origin are 403 and set no cookie', async (t) => {
  const { app, key, repos } = await build(t)
  const apikey = await key('admin')
  const form = `apikey=${encodeURIComponent(apikey)}`
  const latest = await repos.clients.countActive(0)
  for (const headers of foreignPages) {
    const attempts = [
      await app.inject({ method: 'POST', url: '/auth', headers, payload: { apikey } }),
      await app.inject({ method: 'POST', url: '/auth', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, payload: form }),
      await app.inject({ method: 'GET', url: `/auth?${form}`, headers })
    ]
    for (const [i, res] of attempts.entries()) {
      t.same([res.statusCode, res.json()], [403, refused], `${['POST JSON', 'POST form', 'GET'][i]} ${JSON.stringify(headers)}`)
      t.equal(res.headers['set-cookie'], undefined, 'no cookie')
    }
  }
  t.equal(await repos.clients.countActive(0), latest, 'no client created')
})

t.test('/auth from devices, the address bar and cred\'s own page signs in', async (t) => {
  const { app, key } = await build(t)
  const apikey = await key('read')
  for (const headers of ownOrNoPage) {
    for (const res of [
      await app.inject({ method: 'POST', url: '/auth', headers, payload: { apikey } }),
      await app.inject({ method: 'GET', url: `/auth?apikey=${encodeURIComponent(apikey)}`, headers })
    ]) {
      t.equal(res.statusCode, 201, `${res.raw.req.method} ${JSON.stringify(headers)}`)
      t.ok(res.cookies.some((cookie) => cookie.name === 'sessionKey'), 'with the cookie')
    }
  }
})

forEachBackend(t, async (t, backend) => {
  t.test('the original web UI served from another origin works with its origin listed in cors', async (t) => {
    const webUi = 'http://192.168.1.20:8000'
    const { app, key } = await build(t, { cors: [webUi] }, { backend })
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/auth',
      headers: { origin: webUi, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
    })
    t.equal(preflight.statusCode, 204, 'the preflight of a JSON request')
    t.equal(preflight.headers['access-control-allow-origin'], webUi)
    t.equal(preflight.headers['access-control-allow-credentials'], 'true')
    t.match(preflight.headers['access-control-allow-methods'], /\bPOST\b/)
    t.match(preflight.headers['access-control-allow-headers'], /content-type/i)

    const signIn = await app.inject({
      method: 'POST',
      url: '/auth',
      headers: { origin: webUi, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `apikey=${encodeURIComponent(await key('write'))}&device=Web%20UI&subscribe[Light][location]=Hall`
    })
    t.equal(signIn.statusCode, 201, 'its form-encoded sign-in')
    t.equal(signIn.headers['access-control-allow-origin'], webUi)
    t.equal(signIn.headers['access-control-allow-credentials'], 'true')
    const cookie = signIn.cookies.find((c) => c.name === 'sessionKey')
    t.equal(cookie?.value, signIn.json().sessionKey, 'Set-Cookie: the session')

    const sessionKey = cookie!.value
    const post = await app.inject({ method: 'POST', url: '/events', cookies: { sessionKey }, headers: { origin: webUi }, payload: { event: { name: 'Light', location: 'Hall' } } })
    t.equal(post.statusCode, 201, 'then posts with the cookie')
    t.equal(post.headers['access-control-allow-origin'], webUi)
    const subscribed = await app.inject({ url: `/clients/${signIn.json().id}/subscribedevents`, cookies: { sessionKey }, headers: { origin: webUi } })
    t.same(subscribed.json().events.map((e: { id: number }) => e.id), [post.json().event.id], 'and reads what it subscribed to')
    t.equal(subscribed.headers['access-control-allow-origin'], webUi)
  })
})
