// Live delivery of a client's subscribed events: GET /clients/{id}/subscribedevents/stream.
import t from 'tap'
import { bearer, build, forEachBackend, listen, postEvent as post } from '../../helper.js'
import { openStream } from '../../sse-client.js'

const ids = (messages: Array<{ id?: string }>) => messages.map((m) => Number(m.id))
forEachBackend(t, async (t, backend) => {
  t.test('the subscribed stream sends only matching events; a cookie session works (EventSource)', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const base = await listen(app)
    const thermostat = await session('read', { subscribe: { Light: { location: 'Living Room' }, Alarm: {} } })
    const sensor = await session('write')
    const stream = await openStream(`${base}/clients/${thermostat.id}/subscribedevents/stream`, { cookie: `sessionKey=${thermostat.sessionKey}` })
    t.teardown(stream.close)
    t.equal(stream.status, 200)
    const wanted = []
    wanted.push(await post(app, sensor.sessionKey, { name: 'Light', location: 'Living Room' }))
    await post(app, sensor.sessionKey, { name: 'Light', location: 'Kitchen' })
    await post(app, sensor.sessionKey, { name: 'Door' })
    wanted.push(await post(app, sensor.sessionKey, { name: 'Alarm', location: 'Garage' }))
    const last = await post(app, sensor.sessionKey, { name: 'Alarm' })
    wanted.push(last)
    t.same(ids(await stream.received(3)), wanted)
    t.equal(stream.messages.length, 3, 'nothing else')
  })

  t.test('stream permissions: any session may stream any client\'s subscriptions, as over REST; the session is checked on connect', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const base = await listen(app)
    const a = await session('read', { subscribe: { Light: {} } })
    const b = await session('read')
    const admin = await session('admin')
    const writer = await session('write')
    const other = await openStream(`${base}/clients/${a.id}/subscribedevents/stream`, bearer(b.sessionKey))
    t.teardown(other.close)
    t.equal(other.status, 200, 'a read key streams another client\'s subscribed events')
    await post(app, writer.sessionKey, { name: 'Door' })
    const light = await post(app, writer.sessionKey, { name: 'Light' })
    t.same(ids(await other.received(1)), [light], 'the events matching that client\'s subscriptions')
    const rest = await app.inject({ url: `/clients/${a.id}/subscribedevents?after=${light - 2}`, headers: bearer(b.sessionKey) })
    t.same(rest.json().events.map((e: { id: number }) => e.id), [light], 'the same as over REST')
    const byAdmin = await openStream(`${base}/clients/${a.id}/subscribedevents/stream`, bearer(admin.sessionKey))
    t.teardown(byAdmin.close)
    t.equal(byAdmin.status, 200)
    const anonymous = await openStream(`${base}/events/stream`)
    t.equal(anonymous.status, 401)
    t.same(JSON.parse(anonymous.body), { status: 401, message: 'Not Authenticated' })
    const missing = await openStream(`${base}/clients/9999/subscribedevents/stream`, bearer(admin.sessionKey))
    t.same(JSON.parse(missing.body), { status: 404, message: 'Client Not Found' })
    const bad = await openStream(`${base}/events/stream`, { ...bearer(admin.sessionKey), 'last-event-id': 'abc' })
    t.equal(bad.status, 400)
    t.match(JSON.parse(bad.body).message, /last-event-id/)
  })
})
