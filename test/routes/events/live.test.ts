// Live delivery through /events: the stream, long polls (`wait=`), and the limits every stream has.
import t from 'tap'
import { backends, bearer, build, forEachBackend, listen, postEvent as post, postgresAdmin, type TestApp } from '../../helper.js'
import { openStream } from '../../sse-client.js'

const ids = (messages: Array<{ id?: string }>) => messages.map((m) => Number(m.id))
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

t.test('a stream that stops reading for a while, within the buffer limit, then gets every event once, in order', async (t) => {
  const { app, session } = await build(t, { streamBufferLimit: 5000 })
  const base = await listen(app)
  const writer = await session('write')
  const slow = await openStream(`${base}/events/stream`, bearer(writer.sessionKey))
  t.teardown(() => slow.close())
  slow.pause()
  // large enough to fill the socket's buffers, so that the server waits for them to drain
  const big = { name: 'Bulk', location: 'l'.repeat(240), action: 'a'.repeat(240), value: 'v'.repeat(4096) }
  const posted: number[] = []
  for (let i = 0; i < 1500; i++) posted.push(await post(app, writer.sessionKey, big))
  slow.resume()
  t.same(ids(await slow.received(posted.length, 30_000)), posted)
})

t.test('an HTTP/1.0 client gets the stream unchunked, until the server closes it', async (t) => {
  const { app, session } = await build(t)
  const base = new URL(await listen(app))
  const writer = await session('write')
  const { connect } = await import('node:net')
  const socket = connect(Number(base.port), base.hostname)
  let text = ''
  socket.setEncoding('utf8').on('data', (data: string) => { text += data })
  const closed = new Promise((resolve) => socket.on('close', resolve))
  socket.write(`GET /events/stream HTTP/1.0\r\nAuthorization: Bearer ${writer.sessionKey}\r\n\r\n`)
  while (!text.includes(': connected')) await new Promise((resolve) => setTimeout(resolve, 10))
  const id = await post(app, writer.sessionKey, { name: 'Old', value: 'http' })
  while (!text.includes('\n\n', text.indexOf(`id: ${id}`))) await new Promise((resolve) => setTimeout(resolve, 10))
  await app.close()
  await closed
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  t.notMatch(text, /transfer-encoding/i)
  const body = text.slice(text.indexOf('\r\n\r\n') + 4)
  t.equal(body.slice(0, body.indexOf('data: ')), `: connected\n\nid: ${id}\nevent: event\n`, 'the messages as they are, no chunk sizes')
  t.match(JSON.parse(body.slice(body.indexOf('data: ') + 6, body.indexOf('\n\n', body.indexOf('data: ')))), { id, name: 'Old', value: 'http' })
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

for (const backend of ['postgresql', 'mariadb'] as const) {
  t.test(`on ${backend}, an event posted to one instance reaches a stream on another`, { skip: backends.includes(backend) ? false : `${backend} is not reachable` }, async (t) => {
    const a = await build(t, {}, { backend })
    const b = await build(t, {}, { backend, database: a.database })
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
}

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
