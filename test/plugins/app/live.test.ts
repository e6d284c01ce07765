// Streams and long polls end with their session: DELETE /auth and revoked keys, on every
// instance, and the limits of what one session and one key may hold open (plugins/app/live.ts).
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { backends, bearer, build, forEachBackend, listen, postEvent as post, rawSql } from '../../helper.js'
import { openStream } from '../../sse-client.js'

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

const notAuthenticated = { status: 401, body: { status: 401, message: 'Not Authenticated' } }

/** Authenticates with `apikey`: the client id and session key. */
async function authWith (app: FastifyInstance, apikey: string, body: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, ...body } })
  if (res.statusCode !== 201) throw new Error(`auth failed: ${res.body}`)
  return res.json() as { id: number, sessionKey: string }
}

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
    const { app, repos, database } = await build(t, {}, { backend })
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
    await rawSql(database, `update apikeys set revoked = ${now} where id = ${key.id}`)
    await rawSql(database, `update clients set ended = ${now} where id = ${ended.id}`)
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

for (const backend of ['postgresql', 'mariadb'] as const) {
  t.test(`on ${backend}, ending a session or revoking a key on one instance ends its streams and long polls on another within a second; nothing posted after reaches them`, { skip: backends.includes(backend) ? false : `${backend} is not reachable` }, async (t) => {
    const a = await build(t, {}, { backend })
    const b = await build(t, {}, { backend, database: a.database })
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
}
