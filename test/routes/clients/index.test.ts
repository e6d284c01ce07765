import t from 'tap'
import { bearer, build, forEachBackend, sessionChangeSeen } from '../../helper.js'

forEachBackend(t, async (t, backend) => {
  t.test('GET /clients lists only clients active within pingtimeout, newest first', async (t) => {
    const { app, session, repos } = await build(t, { pingtimeout: 60 }, { backend })
    const idle = await session('read', { device: 'Idle', location: 'Attic' })
    const busy = await session('read', { device: 'Busy', location: 'Hall' })
    const me = await session('read', { device: 'Me' })
    await repos.clients.touch(idle.id, Date.now() - 61_000)
    const res = await app.inject({ url: '/clients', headers: bearer(me.sessionKey) })
    t.equal(res.statusCode, 200)
    t.same(res.json(), {
      status: 200,
      message: 'OK',
      clients: [me.id, busy.id].map((id) => ({ id, uri: `http://localhost:80/clients/${id}` }))
    })
    const full = await app.inject({ url: '/clients?full=true', headers: bearer(me.sessionKey) })
    const busyActive = new Date((await repos.clients.get(busy.id))!.lastActive).toISOString()
    t.same(full.json().clients[1], { id: busy.id, device: 'Busy', location: 'Hall', lastActive: busyActive, uri: `http://localhost:80/clients/${busy.id}` })
    const limited = await app.inject({ url: `/clients?before=${me.id}`, headers: bearer(me.sessionKey) })
    t.same(limited.json().clients.map((c: { id: number }) => c.id), [busy.id])

    // any authenticated request makes a client active again
    await app.inject({ url: '/clients/me', headers: bearer(idle.sessionKey) })
    const again = await app.inject({ url: '/clients', headers: bearer(me.sessionKey) })
    t.same(again.json().clients.map((c: { id: number }) => c.id), [me.id, busy.id, idle.id])
  })

  t.test('browsers signed in with viewer: true are listed apart from the devices', async (t) => {
    const { app, session, key } = await build(t, {}, { backend })
    const thermostat = await session('write', { device: 'Thermostat', location: 'Hall' })
    const apikey = await key('read')
    const viewers: number[] = []
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, device: 'Dashboard', location: 'Web browser', viewer: true } })
      t.equal(res.statusCode, 201, 'a viewer signs in as any client does')
      viewers.unshift(res.json().id)
    }
    const viewer = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, viewer: true } })
    const sessionKey = viewer.json().sessionKey as string
    viewers.unshift(viewer.json().id)
    const ids = async (url: string) => {
      const res = await app.inject({ url, headers: bearer(sessionKey) })
      t.equal(res.statusCode, 200, url)
      return res.json().clients.map((client: { id: number }) => client.id)
    }
    t.same(await ids('/clients'), [thermostat.id], 'GET /clients: the devices only, however often a browser signed in')
    t.same(await ids('/clients?viewers=true'), viewers, 'GET /clients?viewers=true: the viewers, newest first')
    t.same(await ids('/clients?viewers=1&limit=2'), viewers.slice(0, 2), 'with the list parameters')
    t.same(await ids('/clients?viewers=false'), [thermostat.id])
    const me = await app.inject({ url: '/clients/me', headers: bearer(sessionKey) })
    t.same(me.json().client.id, viewers[0], 'a viewer is a client for every other route')
    const device = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, device: 'Lamp', viewer: false } })
    t.same(await ids('/clients'), [device.json().id, thermostat.id], 'viewer: false is a device')
    const metrics = await app.inject({ url: '/metrics' })
    t.match(metrics.body, /^cred_clients_active 2$/m, 'the metric counts the devices, as GET /clients lists them')
    const wrong = await app.inject({ url: '/clients?viewers=maybe', headers: bearer(sessionKey) })
    t.same(wrong.json(), { status: 400, message: 'querystring/viewers must be true or false (or 1 or 0)' })
    const notBoolean = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, viewer: 'yes' } })
    t.same(notBoolean.json(), { status: 400, message: 'body/viewer must be boolean' })
  })

  t.test('last_active is written at most once a second per client', async (t) => {
    const { app, session, repos } = await build(t, {}, { backend })
    const me = await session('read')
    const stamp = Date.now() - 500
    await repos.clients.touch(me.id, stamp)
    await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })
    t.equal((await repos.clients.get(me.id))?.lastActive, stamp, 'a read within a second is not a write')
    await repos.clients.touch(me.id, stamp - 1000)
    await sessionChangeSeen(backend)
    await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })
    t.ok((await repos.clients.get(me.id))!.lastActive >= stamp + 400, 'an older stamp is refreshed')
  })

  t.test('GET /clients/me and /clients/:id give the full client; /clients/:id adds its subscriptions', async (t) => {
    const { app, session, repos } = await build(t, {}, { backend })
    const me = await session('read', { device: 'Thermostat', location: 'Living Room' })
    const other = await session('read', { device: 'Lamp', subscribe: { Motion: { location: 'Hall' }, Alarm: {} } })
    const lastActive = async (id: number) => new Date((await repos.clients.get(id))!.lastActive).toISOString()
    const mine = await app.inject({ url: '/clients/me', headers: bearer(me.sessionKey) })
    t.same(mine.json(), {
      status: 200,
      message: 'OK',
      client: { id: me.id, device: 'Thermostat', location: 'Living Room', lastActive: await lastActive(me.id), uri: `http://localhost:80/clients/${me.id}` }
    })
    const theirs = await app.inject({ url: `/clients/${other.id}`, headers: bearer(me.sessionKey) })
    t.same(theirs.json().client, {
      id: other.id,
      device: 'Lamp',
      location: null,
      lastActive: await lastActive(other.id),
      subscriptions: [{ name: 'Alarm', location: null }, { name: 'Motion', location: 'Hall' }],
      uri: `http://localhost:80/clients/${other.id}`
    })
    const myself = await app.inject({ url: `/clients/${me.id}`, headers: bearer(me.sessionKey) })
    t.same(myself.json().client.subscriptions, [], 'no subscriptions: an empty list')
    const missing = await app.inject({ url: '/clients/9999', headers: bearer(me.sessionKey) })
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { status: 404, message: 'Client Not Found' })
    for (const url of ['/clients/9999/events', '/clients/9999/subscribedevents']) {
      const res = await app.inject({ url, headers: bearer(me.sessionKey) })
      t.same(res.json(), { status: 404, message: 'Client Not Found' }, url)
    }
    for (const url of ['/clients/0', '/clients/0/events', '/clients/0/subscribedevents', '/clients/0/subscribedevents/stream']) {
      const res = await app.inject({ url, headers: bearer(me.sessionKey) })
      t.equal(res.statusCode, 404, url)
      t.same(res.json(), { status: 404, message: 'Client Not Found' }, `${url}: 0 is looked up like any id`)
    }
    for (const id of ['abc', `0x${me.id.toString(16)}`, '-0']) {
      const bad = await app.inject({ url: `/clients/${id}`, headers: bearer(me.sessionKey) })
      t.equal(bad.statusCode, 400, id)
    }
    const anonymous = await app.inject({ url: '/clients/me' })
    t.same(anonymous.json(), { status: 401, message: 'Not Authenticated' })
  })

  t.test('GET /clients/:id/events lists the events that client posted', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const a = await session('write', { device: 'A' })
    const b = await session('write', { device: 'B' })
    const post = async (s: { sessionKey: string }, name: string) =>
      (await app.inject({ method: 'POST', url: '/events', headers: bearer(s.sessionKey), payload: { event: { name } } })).json().event.id as number
    const a1 = await post(a, 'One')
    await post(b, 'Two')
    const a2 = await post(a, 'Three')
    const res = await app.inject({ url: `/clients/${a.id}/events?full=true`, headers: bearer(b.sessionKey) })
    t.same(res.json().events.map((e: { id: number, device: string }) => [e.id, e.device]), [[a2, 'A'], [a1, 'A']])
    const page = await app.inject({ url: `/clients/${a.id}/events?limit=1&offset=1`, headers: bearer(b.sessionKey) })
    t.same(page.json().events, [{ id: a1, uri: `http://localhost:80/events/${a1}` }])
  })

  t.test('GET /clients/:id/subscribedevents merges all subscriptions into one list', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const thermostat = await session('read', {
      device: 'Thermostat',
      subscribe: { Light: { location: 'Living Room' }, Alarm: {}, Window: { location: null } }
    })
    const sensor = await session('write', { device: 'Sensor' })
    const post = async (name: string, location?: string) =>
      (await app.inject({ method: 'POST', url: '/events', headers: bearer(sensor.sessionKey), payload: { event: { name, location } } })).json().event.id as number
    const light = await post('Light', 'Living Room')
    await post('Light', 'Kitchen')
    const alarm1 = await post('Alarm', 'Garage')
    await post('Door', 'Living Room')
    const alarm2 = await post('Alarm')
    const window = await post('Window', 'Bedroom')
    const url = `/clients/${thermostat.id}/subscribedevents`
    const ids = async (query = '') =>
      (await app.inject({ url: url + query, headers: bearer(thermostat.sessionKey) })).json().events.map((e: { id: number }) => e.id)
    t.same(await ids(), [window, alarm2, alarm1, light], 'newest first over every subscription')
    t.same(await ids(`?after=${alarm1}`), [window, alarm2])
    t.same(await ids(`?before=${alarm2}`), [alarm1, light])
    t.same(await ids('?limit=2&offset=1'), [alarm2, alarm1])
    t.same(await ids(`?after=${window}`), [], 'nothing new')

    // the polling pattern of API.md: first limit=1, then after=<highest seen>
    const first = (await app.inject({ url: `${url}?full=true&limit=1`, headers: bearer(thermostat.sessionKey) })).json()
    t.match(first.events, [{ id: window, name: 'Window', location: 'Bedroom', device: 'Sensor' }])
    const newer = await post('Alarm', 'Hall')
    const next = (await app.inject({ url: `${url}?full=true&after=${first.events[0].id}`, headers: bearer(thermostat.sessionKey) })).json()
    t.same(next.events.map((e: { id: number }) => e.id), [newer])

    const unsubscribed = await session('read')
    t.same((await app.inject({ url: `/clients/${unsubscribed.id}/subscribedevents`, headers: bearer(thermostat.sessionKey) })).json().events, [])
  })
})
