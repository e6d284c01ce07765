import t from 'tap'
import { bearer, build, forEachBackend } from '../helper.js'

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
    const client = await repos.clients.get(body.id)
    t.match(client, { device: 'Thermostat', location: 'Living Room' })
  })

  t.test('only apikey is required; device and location are stored as null', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: await key('read') } })
    t.equal(res.statusCode, 201)
    const me = await app.inject({ url: '/clients/me', headers: bearer(res.json().sessionKey) })
    t.same(me.json().client, { id: res.json().id, device: null, location: null, uri: `http://localhost:80/clients/${res.json().id}` })
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
