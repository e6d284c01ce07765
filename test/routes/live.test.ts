import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import { backends, bearer, build, forEachBackend, postgresAdmin, testPostgres, type TestApp } from '../helper.js'
import { openStream } from '../sse-client.js'

async function listen (app: FastifyInstance): Promise<string> {
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return address
}

const post = async (app: FastifyInstance, sessionKey: string, event: Record<string, unknown>) => {
  const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
  if (res.statusCode !== 201) throw new Error(`post failed: ${res.body}`)
  return res.json().event.id as number
}

const ids = (messages: Array<{ id?: string }>) => messages.map((m) => Number(m.id))

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** true when `promise` settles before `deadline` does */
const before = (promise: Promise<unknown>, deadline: Promise<unknown>): Promise<boolean> =>
  Promise.race([promise.then(() => true, () => true), deadline.then(() => false)])

/** A gauge of this instance's metrics: open streams, or long polls waiting. */
async function gauge (app: FastifyInstance, name: 'cred_streams_open' | 'cred_long_polls_waiting'): Promise<number> {
  const res = await app.inject({ url: '/metrics' })
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(res.body)
  if (match === null) throw new Error(`no ${name} in /metrics: ${res.statusCode}`)
  return Number(match[1])
}

/** Resolves once `count` long polls wait on `app`; rejects after 5 s. */
async function pollsWaiting (app: FastifyInstance, count: number): Promise<void> {
  const end = Date.now() + 5000
  while (await gauge(app, 'cred_long_polls_waiting') !== count) {
    if (Date.now() > end) throw new Error(`${count} long polls were not waiting within 5 s`)
    await delay(5)
  }
}

/** A long poll over HTTP: its status and JSON body once it answers. */
const longPoll = (url: string, sessionKey: string) =>
  fetch(url, { headers: bearer(sessionKey) }).then(async (res) => ({ status: res.status, body: await res.json() as unknown }))

/** Runs `work` on a connection of its own to the test database `database` (what a hand-written UPDATE is). */
async function postgresAt (database: string, work: (sql: postgres.Sql) => Promise<void>): Promise<void> {
  const sql = postgres({ ...testPostgres, database, max: 1, onnotice: () => {} })
  try {
    await work(sql)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

const notAuthenticated = { status: 401, body: { status: 401, message: 'Not Authenticated' } }

/** Authenticates with `apikey`: the client id and session key. */
async function authWith (app: FastifyInstance, apikey: string, body: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, ...body } })
  if (res.statusCode !== 201) throw new Error(`auth failed: ${res.body}`)
  return res.json() as { id: number, sessionKey: string }
}

forEachBackend(t, async (t, backend) => {
  t.test('GET /events/stream sends each new event, full form, in order', async (t) => {
    const test: TestApp = await build(t, {}, { backend })
    const { app, session } = test
    const base = await listen(app)
    const writer = await session('write', { device: 'Switch' })
    const before = await post(app, writer.sessionKey, { name: 'Old' })
    const stream = await openStream(`${base}/events/stream`, bearer(writer.sessionKey))
    t.teardown(stream.close)
    t.equal(stream.status, 200)
    t.match(stream.headers['content-type'], /^text\/event-stream/)
    const posted = [
      await post(app, writer.sessionKey, { name: 'Light', location: 'Hall', action: 'Toggled', value: 'On' }),
      await post(app, writer.sessionKey, { name: 'Door', value: 3 }),
      await post(app, writer.sessionKey, { name: 'Light', location: 'Kitchen' })
    ]
    const messages = await stream.received(3)
    t.same(ids(messages), posted, 'only events after the connection, ascending')
    t.ok(posted.every((id) => id > before))
    t.same(messages.map((m) => m.event), ['event', 'event', 'event'])
    const first = JSON.parse(messages[0]!.data)
    t.match(first, { id: posted[0], device: 'Switch', name: 'Light', location: 'Hall', action: 'Toggled', value: 'On', uri: `${base}/events/${posted[0]}` })
    t.match(first.time, /Z$/)
    t.equal(JSON.parse(messages[1]!.data).value, '3')
  })

  t.test('reconnecting with Last-Event-ID or ?after= gets exactly the missed events, then live ones', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const base = await listen(app)
    const writer = await session('write')
    const first = await openStream(`${base}/events/stream`, bearer(writer.sessionKey))
    const a = await post(app, writer.sessionKey, { name: 'A' })
    t.same(ids(await first.received(1)), [a])
    first.close()
    const missed = [await post(app, writer.sessionKey, { name: 'B' }), await post(app, writer.sessionKey, { name: 'C' })]

    const again = await openStream(`${base}/events/stream`, { ...bearer(writer.sessionKey), 'last-event-id': String(a) })
    t.teardown(again.close)
    t.same(ids(await again.received(2)), missed, 'the missed events first, in order')
    const next = await post(app, writer.sessionKey, { name: 'D' })
    t.same(ids(await again.received(3)), [...missed, next], 'then live ones, no duplicate')

    const byQuery = await openStream(`${base}/events/stream?after=${missed[0]}`, bearer(writer.sessionKey))
    t.teardown(byQuery.close)
    t.same(ids(await byQuery.received(2)), [missed[1], next])

    const fromStart = await openStream(`${base}/events/stream`, { ...bearer(writer.sessionKey), 'last-event-id': '0' })
    t.teardown(fromStart.close)
    t.same(ids(await fromStart.received(4)), [a, ...missed, next], 'Last-Event-ID: 0 is everything')
  })

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

  t.test('long polling: wait= holds an empty answer until a matching event arrives', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const reader = await session('read', { subscribe: { Light: {} } })
    const writer = await session('write')
    const latest = await post(app, writer.sessionKey, { name: 'Light' })

    const subscribed = app.inject({ url: `/clients/${reader.id}/subscribedevents?full=true&after=${latest}&wait=30`, headers: bearer(reader.sessionKey) })
    const all = app.inject({ url: `/events?after=${latest}&wait=30`, headers: bearer(reader.sessionKey) })
    const byClient = app.inject({ url: `/clients/${writer.id}/events?after=${latest}&wait=30`, headers: bearer(reader.sessionKey) })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const door = await post(app, writer.sessionKey, { name: 'Door' })
    const allRes = await all
    t.same(allRes.json().events.map((e: { id: number }) => e.id), [door], 'any event wakes /events')
    t.same((await byClient).json().events.map((e: { id: number }) => e.id), [door], 'the client\'s own event wakes its list')
    const light = await post(app, writer.sessionKey, { name: 'Light' })
    const subscribedRes = await subscribed
    t.same(subscribedRes.json().events.map((e: { id: number }) => e.id), [light], 'Door did not wake the Light subscriber; Light did')
    t.equal(subscribedRes.json().events[0].name, 'Light')

    const timedOut = await app.inject({ url: `/events?after=${light}&wait=0.2`, headers: bearer(reader.sessionKey) })
    t.same(timedOut.json(), { status: 200, message: 'OK', events: [] }, 'empty when the time runs out')
    const immediate = await app.inject({ url: `/events?after=${latest}&wait=30`, headers: bearer(reader.sessionKey) })
    t.equal(immediate.json().events.length, 2, 'answers at once when something matches already')
    for (const wait of ['61', '-1', 'soon']) {
      const res = await app.inject({ url: `/events?wait=${wait}`, headers: bearer(reader.sessionKey) })
      t.equal(res.statusCode, 400, `wait=${wait}`)
      t.match(res.json().message, /wait/)
    }
  })

  t.test('closing the server ends open streams and long polls', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const base = await listen(app)
    const reader = await session('read')
    const stream = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
    const poll = fetch(`${base}/events?after=999999&wait=60`, { headers: bearer(reader.sessionKey) })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await app.close()
    await stream.ended
    t.pass('the stream ended')
    t.same(await (await poll).json(), { status: 200, message: 'OK', events: [] }, 'the long poll answered')
  })
})

forEachBackend(t, async (t, backend) => {
  t.test('DELETE /auth closes the session\'s streams and answers its long polls 401 within a second; an event posted right after never reaches them', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const base = await listen(app)
    const reader = await session('read', { subscribe: { Light: {} } })
    const bystander = await session('read')
    const writer = await session('write')
    const streams = [
      await openStream(`${base}/events/stream`, bearer(reader.sessionKey)),
      await openStream(`${base}/clients/${reader.id}/subscribedevents/stream`, { cookie: `sessionKey=${reader.sessionKey}` })
    ]
    const other = await openStream(`${base}/events/stream`, bearer(bystander.sessionKey))
    t.teardown(() => { for (const stream of [...streams, other]) stream.close() })
    const first = await post(app, writer.sessionKey, { name: 'Light' })
    for (const stream of [...streams, other]) t.same(ids(await stream.received(1)), [first], 'live before the sign-out')
    const polls = [
      longPoll(`${base}/events?after=${first}&wait=30`, reader.sessionKey),
      longPoll(`${base}/clients/${reader.id}/subscribedevents?after=${first}&wait=30`, reader.sessionKey)
    ]
    await pollsWaiting(app, 2)

    const res = await app.inject({ method: 'DELETE', url: '/auth', headers: bearer(reader.sessionKey) })
    t.equal(res.statusCode, 204)
    const oneSecond = delay(1000)
    const later = await post(app, writer.sessionKey, { name: 'Light' })
    t.ok(await before(Promise.all([...streams.map((stream) => stream.ended), ...polls]), oneSecond), 'streams closed and long polls answered within a second')
    for (const poll of polls) t.same(await poll, notAuthenticated, 'the long poll answers 401')
    t.same(ids(await other.received(2)), [first, later], 'another session\'s stream gets the later event')
    for (const stream of streams) t.same(ids(stream.messages), [first], 'nothing after the sign-out reached the ended session')
    t.equal(await gauge(app, 'cred_streams_open'), 1, 'only the other session\'s stream is open')
  })

  t.test('DELETE /apikeys/{id} ends the streams and long polls of every session of the key within a second; nothing posted after reaches them', async (t) => {
    const { app, session, repos } = await build(t, {}, { backend })
    const base = await listen(app)
    const key = await repos.apikeys.create('read')
    const first = await authWith(app, key.apikey, { subscribe: { Light: {} } })
    const second = await authWith(app, key.apikey)
    const bystander = await session('read')
    const writer = await session('write')
    const admin = await session('admin')
    const streams = [
      await openStream(`${base}/events/stream`, bearer(first.sessionKey)),
      await openStream(`${base}/clients/${first.id}/subscribedevents/stream`, bearer(first.sessionKey)),
      await openStream(`${base}/events/stream`, bearer(second.sessionKey))
    ]
    const other = await openStream(`${base}/events/stream`, bearer(bystander.sessionKey))
    t.teardown(() => { for (const stream of [...streams, other]) stream.close() })
    const latest = await post(app, writer.sessionKey, { name: 'Light' })
    for (const stream of [...streams, other]) t.same(ids(await stream.received(1)), [latest])
    const polls = [
      longPoll(`${base}/clients/${writer.id}/events?after=${latest}&wait=30`, first.sessionKey),
      longPoll(`${base}/events?after=${latest}&wait=30`, second.sessionKey)
    ]
    await pollsWaiting(app, 2)

    const res = await app.inject({ method: 'DELETE', url: `/apikeys/${key.id}`, headers: bearer(admin.sessionKey) })
    t.equal(res.statusCode, 200)
    const oneSecond = delay(1000)
    const later = await post(app, writer.sessionKey, { name: 'Light' })
    t.ok(await before(Promise.all([...streams.map((stream) => stream.ended), ...polls]), oneSecond), 'all of them ended within a second')
    for (const poll of polls) t.same(await poll, notAuthenticated)
    t.same(ids(await other.received(2)), [latest, later], 'a session of another key keeps receiving')
    for (const stream of streams) t.same(ids(stream.messages), [latest], 'nothing after the revocation reached a session of the key')
  })

  t.test('a revocation written to the database by hand (no notification) ends streams and long polls within a second', async (t) => {
    const { app, repos, config } = await build(t, {}, { backend })
    const base = await listen(app)
    const key = await repos.apikeys.create('read')
    const revoked = await authWith(app, key.apikey)
    const ended = await authWith(app, await (await repos.apikeys.create('read')).apikey)
    const stream = await openStream(`${base}/events/stream`, bearer(revoked.sessionKey))
    const endedStream = await openStream(`${base}/events/stream`, bearer(ended.sessionKey))
    t.teardown(() => { stream.close(); endedStream.close() })
    const poll = longPoll(`${base}/events?after=999999&wait=30`, revoked.sessionKey)
    await pollsWaiting(app, 1)
    await delay(600) // a sweep or so with nothing to find
    t.equal(await gauge(app, 'cred_streams_open'), 2, 'nothing ended while the sessions are valid')

    const now = Date.now()
    if (backend === 'sqlite') {
      const db = new Database(config.database.database)
      db.prepare('update apikeys set revoked = ? where id = ?').run(now, key.id)
      db.prepare('update clients set ended = ? where id = ?').run(now, ended.id)
      db.close()
    } else {
      await postgresAt(config.database.database, async (sql) => {
        await sql`update apikeys set revoked = ${now} where id = ${key.id}`
        await sql`update clients set ended = ${now} where id = ${ended.id}`
      })
    }
    t.ok(await before(Promise.all([stream.ended, endedStream.ended, poll]), delay(1000)), 'ended within a second, by the sweep')
    t.same(await poll, notAuthenticated)
  })

  t.test('long polls count toward maxStreamsPerSession with streams; maxStreamsPerKey bounds all sessions of a key (429)', async (t) => {
    const { app, session, repos } = await build(t, { maxStreamsPerSession: 2, maxStreamsPerKey: 3 }, { backend })
    const base = await listen(app)
    const key = await repos.apikeys.create('read')
    const a = await authWith(app, key.apikey)
    const b = await authWith(app, key.apikey)
    const perSession = { status: 429, message: 'Too many open streams and long polls: at most 2 per session' }
    const perKey = { status: 429, message: 'Too many open streams and long polls: at most 3 per API key' }
    const open: Array<{ close: () => void }> = []
    t.teardown(() => { for (const stream of open) stream.close() })

    const streamA = await openStream(`${base}/events/stream`, bearer(a.sessionKey))
    open.push(streamA)
    const pollA = longPoll(`${base}/events?wait=30`, a.sessionKey) // no event yet: it waits
    await pollsWaiting(app, 1)
    const third = await openStream(`${base}/events/stream`, bearer(a.sessionKey))
    t.equal(third.status, 429, 'a stream beyond a stream and a long poll of the session')
    t.same(JSON.parse(third.body), perSession)
    t.same(await longPoll(`${base}/events?after=999999&wait=30`, a.sessionKey), { status: 429, body: perSession }, 'and a long poll')
    const noWait = await app.inject({ url: '/events?after=999999', headers: bearer(a.sessionKey) })
    t.equal(noWait.statusCode, 200, 'a list without wait is not limited')

    const streamB = await openStream(`${base}/events/stream`, bearer(b.sessionKey))
    open.push(streamB)
    t.equal(streamB.status, 200, 'another session of the key: the third of the key')
    const overKey = await openStream(`${base}/events/stream`, bearer(b.sessionKey))
    t.equal(overKey.status, 429, 'a fourth for the key, though its session has only one')
    t.same(JSON.parse(overKey.body), perKey)
    t.same(await longPoll(`${base}/clients/${b.id}/subscribedevents?after=999999&wait=30`, b.sessionKey), { status: 429, body: perKey }, 'a long poll too')
    const otherKey = await session('read')
    const fine = await openStream(`${base}/events/stream`, bearer(otherKey.sessionKey))
    open.push(fine)
    t.equal(fine.status, 200, 'another key is not affected')

    const writer = await session('write')
    const id = await post(app, writer.sessionKey, { name: 'Wake' })
    t.same(await pollA, { status: 200, body: { status: 200, message: 'OK', events: [{ id, uri: `${base}/events/${id}` }] } }, 'the waiting poll answers as usual')
    await pollsWaiting(app, 0)
    const again = await openStream(`${base}/events/stream`, bearer(b.sessionKey))
    open.push(again)
    t.equal(again.status, 200, 'an answered long poll frees its place')
  })
})

t.test('on PostgreSQL, ending a session or revoking a key on one instance ends its streams and long polls on another within a second; nothing posted after reaches them', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const a = await build(t, {}, { backend: 'postgresql' })
  const b = await build(t, {}, { backend: 'postgresql', database: a.database })
  const baseB = await listen(b.app)
  const key = await a.repos.apikeys.create('read')
  const revokedSession = await authWith(b.app, key.apikey, { subscribe: { Light: {} } })
  const endedSession = await authWith(b.app, (await a.repos.apikeys.create('read')).apikey)
  const bystander = await b.session('read')
  const writer = await a.session('write')
  const admin = await a.session('admin')
  const revokedStreams = [
    await openStream(`${baseB}/events/stream`, bearer(revokedSession.sessionKey)),
    await openStream(`${baseB}/clients/${revokedSession.id}/subscribedevents/stream`, bearer(revokedSession.sessionKey))
  ]
  const endedStream = await openStream(`${baseB}/events/stream`, bearer(endedSession.sessionKey))
  const other = await openStream(`${baseB}/events/stream`, bearer(bystander.sessionKey))
  t.teardown(() => { for (const stream of [...revokedStreams, endedStream, other]) stream.close() })
  const first = await post(a.app, writer.sessionKey, { name: 'Light' })
  for (const stream of [...revokedStreams, endedStream, other]) t.same(ids(await stream.received(1)), [first], 'live on B')

  const ended = await a.app.inject({ method: 'DELETE', url: '/auth', headers: bearer(endedSession.sessionKey) })
  t.equal(ended.statusCode, 204, 'the session ended through A')
  const oneSecond = delay(1000)
  const afterEnd = await post(a.app, writer.sessionKey, { name: 'Light' })
  t.ok(await before(endedStream.ended, oneSecond), 'B closed its stream within a second')
  t.same(ids(await other.received(2)), [first, afterEnd])
  t.same(ids(endedStream.messages), [first], 'B never delivered the event posted after the sign-out')

  for (const stream of revokedStreams) t.same(ids(await stream.received(2)), [first, afterEnd], 'before the revocation, the key\'s sessions on B receive it')
  const poll = longPoll(`${baseB}/events?after=${afterEnd}&wait=30`, revokedSession.sessionKey)
  await pollsWaiting(b.app, 1)
  const revoked = await a.app.inject({ method: 'DELETE', url: `/apikeys/${key.id}`, headers: bearer(admin.sessionKey) })
  t.equal(revoked.statusCode, 200, 'the key revoked on A')
  const anotherSecond = delay(1000)
  const afterRevoke = await post(a.app, writer.sessionKey, { name: 'Light' })
  t.ok(await before(Promise.all([...revokedStreams.map((stream) => stream.ended), poll]), anotherSecond), 'B ended them within a second')
  t.same(await poll, notAuthenticated, 'the long poll on B answers 401')
  t.same(ids(await other.received(3)), [first, afterEnd, afterRevoke], 'B delivered the later event to a valid session')
  for (const stream of revokedStreams) t.same(ids(stream.messages), [first, afterEnd], 'and never to the revoked key\'s')
})

t.test('a stream that stops reading is cut off at the buffer limit; others keep receiving', async (t) => {
  const { app, session } = await build(t, { streamBufferLimit: 20 })
  const base = await listen(app)
  const writer = await session('write')
  const slow = await openStream(`${base}/events/stream`, bearer(writer.sessionKey))
  const fast = await openStream(`${base}/events/stream`, bearer(writer.sessionKey))
  t.teardown(() => { slow.close(); fast.close() })
  slow.pause()
  const big = { name: 'Bulk', location: 'l'.repeat(240), action: 'a'.repeat(240), value: 'v'.repeat(4096) }
  const total = 3000
  let last = 0
  for (let i = 0; i < total; i++) last = await post(app, writer.sessionKey, big)
  const received = await fast.received(total, 30_000)
  t.equal(Number(received.at(-1)!.id), last, 'the reading stream got every event')
  slow.resume()
  await slow.ended
  t.ok(slow.messages.length < total, `the stalled stream was closed after ${slow.messages.length} of ${total}`)
  const ordered = ids(slow.messages).every((id, i, all) => i === 0 || id > all[i - 1]!)
  t.ok(ordered, 'what it did get was in order')
})

t.test('a session may hold at most maxStreamsPerSession streams', async (t) => {
  const { app, session } = await build(t, { maxStreamsPerSession: 2 })
  const base = await listen(app)
  const reader = await session('read', { subscribe: { Light: {} } })
  const first = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
  const second = await openStream(`${base}/clients/${reader.id}/subscribedevents/stream`, bearer(reader.sessionKey))
  t.teardown(() => { first.close(); second.close() })
  const third = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
  t.equal(third.status, 429)
  t.same(JSON.parse(third.body), { status: 429, message: 'Too many open streams and long polls: at most 2 per session' })
  const otherSession = await session('read')
  const fine = await openStream(`${base}/events/stream`, bearer(otherSession.sessionKey))
  t.teardown(fine.close)
  t.equal(fine.status, 200, 'other sessions are not affected')
  first.close()
  await first.ended
  let again = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
  for (let i = 0; i < 20 && again.status === 429; i++) {
    // the server notices the closed connection a moment later
    await new Promise((resolve) => setTimeout(resolve, 50))
    again = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
  }
  t.teardown(again.close)
  t.equal(again.status, 200, 'a closed stream frees its place')
})

t.test('idle streams get heartbeat comments at the configured interval', async (t) => {
  const { app, session } = await build(t, { streamHeartbeat: 1 })
  const base = await listen(app)
  const reader = await session('read')
  const stream = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
  t.teardown(stream.close)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.ok(stream.comments.some((line) => /heartbeat/.test(line)), `comments seen: ${stream.comments.join(' | ')}`)
  t.equal(stream.messages.length, 0, 'heartbeats are not events')
})

t.test('on PostgreSQL, an event posted to one instance reaches a stream on another', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const a = await build(t, {}, { backend: 'postgresql' })
  const b = await build(t, {}, { backend: 'postgresql', database: a.database })
  const baseB = await listen(b.app)
  const reader = await b.session('read', { subscribe: { Light: {} } })
  const writer = await a.session('write')
  const all = await openStream(`${baseB}/events/stream`, bearer(reader.sessionKey))
  const mine = await openStream(`${baseB}/clients/${reader.id}/subscribedevents/stream`, bearer(reader.sessionKey))
  t.teardown(() => { all.close(); mine.close() })
  const posted = []
  for (const name of ['Light', 'Door', 'Light']) posted.push(await post(a.app, writer.sessionKey, { name }))
  t.same(ids(await all.received(3)), posted, 'every event, in order, on the other instance')
  t.same(ids(await mine.received(2)), [posted[0], posted[2]], 'the subscribed stream too')
  const poll = b.app.inject({ url: `/events?after=${posted[2]}&wait=30`, headers: bearer(reader.sessionKey) })
  await new Promise((resolve) => setTimeout(resolve, 100))
  const next = await post(a.app, writer.sessionKey, { name: 'Bell' })
  t.same((await poll).json().events.map((e: { id: number }) => e.id), [next], 'a long poll on B wakes for a post on A')

  // while nothing on B listens, B reads nothing on notifications; what opens later misses nothing
  all.close()
  mine.close()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const unheard = [await post(a.app, writer.sessionKey, { name: 'Light' }), await post(a.app, writer.sessionKey, { name: 'Light' })]
  await new Promise((resolve) => setTimeout(resolve, 100))
  const later = await openStream(`${baseB}/clients/${reader.id}/subscribedevents/stream`, { ...bearer(reader.sessionKey), 'last-event-id': String(next) })
  t.teardown(later.close)
  const live = await post(a.app, writer.sessionKey, { name: 'Light' })
  t.same(ids(await later.received(3)), [...unheard, live], 'the events posted meanwhile (caught up), then the live one, once each')
  const fresh = await openStream(`${baseB}/events/stream`, bearer(reader.sessionKey))
  t.teardown(fresh.close)
  const last = await post(a.app, writer.sessionKey, { name: 'Door' })
  t.same(ids(await fresh.received(1)), [last], 'a new stream gets only what comes after it opened')
})

t.test('on PostgreSQL, a listener that lost its connection listens again and catches up', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const a = await build(t, {}, { backend: 'postgresql' })
  const b = await build(t, {}, { backend: 'postgresql', database: a.database })
  const baseB = await listen(b.app)
  const reader = await b.session('read')
  const writer = await a.session('write')
  const stream = await openStream(`${baseB}/events/stream`, bearer(reader.sessionKey))
  t.teardown(stream.close)
  const before = await post(a.app, writer.sessionKey, { name: 'Before' })
  t.same(ids(await stream.received(1)), [before])

  // end every LISTEN connection on this database (both instances'), then post at once
  const ended = await postgresAdmin((sql) => sql`
    select pg_terminate_backend(pid) as ended from pg_stat_activity
    where datname = ${a.database.database} and query ilike 'listen%'`)
  t.ok(ended.length >= 1, 'listener connections were ended')
  const during = await post(a.app, writer.sessionKey, { name: 'During' })
  const after = await post(a.app, writer.sessionKey, { name: 'After' })
  t.same(ids(await stream.received(3)), [before, during, after], 'nothing lost, in order, once')
})
