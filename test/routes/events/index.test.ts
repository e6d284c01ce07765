import { Writable } from 'node:stream'
import fastJson from 'fast-json-stringify'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import cred from '../../../app.js'
import { resolveConfig } from '../../../config/resolve.js'
import { openDatabase } from '../../../db/index.js'
import { EventList } from '../../../schemas/events.js'
import { bearer, build, forEachBackend, rawSql, testDatabase, type TestDatabase } from '../../helper.js'
import { openStream } from '../../sse-client.js'

forEachBackend(t, async (t, backend) => {
  t.test('POST /events stores the event; GET /events/:id returns it in full', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const writer = await session('write', { device: 'Switch', location: 'Hall' })
    const posted = await app.inject({
      method: 'POST',
      url: '/events',
      headers: bearer(writer.sessionKey),
      payload: { event: { name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On' } }
    })
    t.equal(posted.statusCode, 201)
    const { id, uri } = posted.json().event
    t.same(posted.json(), { status: 201, message: 'Created Event', event: { id, uri: `http://localhost:80/events/${id}` } })
    const before = Date.now()
    const got = await app.inject({ url: `/events/${id}`, headers: bearer(writer.sessionKey) })
    t.equal(got.statusCode, 200)
    const event = got.json().event
    t.same(Object.keys(event).sort(), ['action', 'device', 'id', 'location', 'name', 'time', 'uri', 'value'])
    t.match(event, { id, device: 'Switch', name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On', uri })
    t.match(event.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.ok(Math.abs(Date.parse(event.time) - before) < 60_000, 'time is now')
  })

  t.test('event lists are the JSON their schema makes, byte for byte, on every list route', async (t) => {
    // the lists are put together from each event's JSON (plugins/app/items.ts); this is the
    // serializer Fastify would have used for the whole answer
    const schemaJson = fastJson(EventList)
    const { app, session } = await build(t, {}, { backend })
    const writer = await session('write', { device: 'Sensor "7" \\ ☀️' })
    const reader = await session('read', { subscribe: { Temp: {}, 'Li"ght': {} } })
    const payloads = [
      { name: 'Temp', location: 'Küche\t"oben"\n', action: 'Read', value: 21.5 },
      { name: 'Li"ght', value: 'line\u2028sep </script> \u0001 😀' },
      { name: 'Temp', location: null, action: null, value: null }
    ]
    for (const event of payloads) {
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(writer.sessionKey), payload: { event } })
      t.equal(res.statusCode, 201)
    }
    const urls = ['/events', `/clients/${writer.id}/events`, `/clients/${reader.id}/subscribedevents`]
    for (const url of urls) {
      for (const query of ['?full=true', '', '?full=true&after=1000000']) {
        for (const host of ['localhost', 'cred.example:8080']) {
          const res = await app.inject({ url: url + query, headers: { ...bearer(reader.sessionKey), host } })
          const what = `${host} ${url}${query}`
          t.equal(res.statusCode, 200, what)
          t.equal(res.headers['content-type'], 'application/json; charset=utf-8', what)
          const body = res.json()
          t.equal(res.body, schemaJson(body), `${what}: the schema's JSON`)
          t.equal(body.events.length, query.includes('after') ? 0 : 3, `${what}: every event`)
          for (const item of body.events) t.equal(item.uri, `http://${host}/events/${item.id}`, `${what}: uri of the request's host`)
          if (query === '?full=true') {
            t.same(body.events.map((e: { name: string, location: string | null, value: string | null }) => [e.name, e.location, e.value]),
              payloads.map((e) => [e.name, e.location ?? null, e.value === null || e.value === undefined ? null : String(e.value)]).reverse(), `${what}: as posted`)
          }
        }
      }
    }
  })

  t.test('value is stored and returned as text; optional fields may be absent or null', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('write')
    const cases: Array<[unknown, string | null]> = [[21.5, '21.5'], [0, '0'], [true, 'true'], [false, 'false'], ['007', '007'], [null, null], [undefined, null]]
    for (const [value, stored] of cases) {
      const event: Record<string, unknown> = { name: 'Temp' }
      if (value !== undefined) event.value = value
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
      t.equal(res.statusCode, 201)
      const got = await app.inject({ url: `/events/${res.json().event.id}`, headers: bearer(sessionKey) })
      t.equal(got.json().event.value, stored, `value ${JSON.stringify(value)}`)
      t.equal(got.json().event.location, null)
      t.equal(got.json().event.action, null)
    }
  })

  t.test('strings are stored verbatim: quotes, SQL, unicode', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('write', { device: "Robert'); DROP TABLE events;--" })
    const event = { name: "Li'ght\"; --", location: 'Wohnzimmer ☀️ 日本', action: '%_\\', value: 'x'.repeat(4096) }
    const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
    t.equal(res.statusCode, 201)
    const got = (await app.inject({ url: `/events/${res.json().event.id}`, headers: bearer(sessionKey) })).json().event
    t.match(got, { ...event, device: "Robert'); DROP TABLE events;--" })
  })

  t.test('bad events are 400 naming the field', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('write')
    const cases: Array<[unknown, RegExp]> = [
      [{}, /event/],
      [{ event: 'Light' }, /event/],
      [{ event: {} }, /name/],
      [{ event: { name: '' } }, /name/],
      [{ event: { name: 5 } }, /name/],
      [{ event: { name: 'x'.repeat(241) } }, /name/],
      [{ event: { name: 'Light', location: 'x'.repeat(241) } }, /location/],
      [{ event: { name: 'Light', action: 'x'.repeat(241) } }, /action/],
      [{ event: { name: 'Light', value: 'x'.repeat(4097) } }, /value/],
      [{ event: { name: 'Light', value: { on: true } } }, /value/],
      [{ event: { name: 'Light', value: [1] } }, /value/],
      [{ event: { name: 'Li\u0000ght' } }, /name/],
      [{ event: { name: 'Light', location: '\u0000' } }, /location/],
      [{ event: { name: 'Light', value: 'a\u0000b' } }, /value/]
    ]
    for (const [payload, field] of cases) {
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: payload as object })
      t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 50))
      t.equal(res.json().status, 400)
      t.match(res.json().message, field)
    }
    const list = await app.inject({ url: '/events', headers: bearer(sessionKey) })
    t.same(list.json().events, [], 'nothing was stored')
  })

  t.test('permissions: read may not post; write and admin may', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const payload = { event: { name: 'Light' } }
    const reader = await session('read')
    const refused = await app.inject({ method: 'POST', url: '/events', headers: bearer(reader.sessionKey), payload })
    t.equal(refused.statusCode, 403)
    t.same(refused.json(), { status: 403, message: 'Insufficient Permissions' })
    for (const permission of ['write', 'admin'] as const) {
      const { sessionKey } = await session(permission)
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload })
      t.equal(res.statusCode, 201, permission)
    }
    const anonymous = await app.inject({ method: 'POST', url: '/events', payload })
    t.same(anonymous.json(), { status: 401, message: 'Not Authenticated' })
  })

  t.test('GET /events/:id: unknown is 404 Event Not Found, malformed is 400', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('read')
    const missing = await app.inject({ url: '/events/999', headers: bearer(sessionKey) })
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { status: 404, message: 'Event Not Found' })
    for (const id of ['abc', '-1', '1.5']) {
      const res = await app.inject({ url: `/events/${id}`, headers: bearer(sessionKey) })
      t.equal(res.statusCode, 400, id)
      t.match(res.json().message, /id/)
    }
  })

  t.test('GET /events/:id: any non-negative decimal id is looked up, 0 included; other spellings are 400', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const writer = await session('write')
    for (let i = 1; i <= 16; i++) {
      await app.inject({ method: 'POST', url: '/events', headers: bearer(writer.sessionKey), payload: { event: { name: `E${i}` } } })
    }
    const zero = await app.inject({ url: '/events/0', headers: bearer(writer.sessionKey) })
    t.same(zero.json(), { status: 404, message: 'Event Not Found' }, '0 is an id no event has, as in the original')
    t.equal(zero.statusCode, 404)
    t.equal((await app.inject({ url: '/events/16', headers: bearer(writer.sessionKey) })).json().event.name, 'E16')
    t.equal((await app.inject({ url: '/events/0016', headers: bearer(writer.sessionKey) })).json().event.name, 'E16', 'leading zeros are still decimal')
    for (const id of ['0x10', '1e1', '%2016', '16%20', '+16', '-0', '0b1']) {
      const res = await app.inject({ url: `/events/${id}`, headers: bearer(writer.sessionKey) })
      t.equal(res.statusCode, 400, id)
      t.same(res.json(), { status: 400, message: 'params/id must be an integer written in decimal digits' }, id)
    }
    const query = await app.inject({ url: '/events?after=0x1&limit=1e1', headers: bearer(writer.sessionKey) })
    t.equal(query.statusCode, 400, 'list parameters are decimal too')
    t.match(query.json().message, /^querystring\/(after|limit) must be an integer written in decimal digits$/)
  })

  t.test('GET /events lists newest first; full, before, after, limit, offset', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('write', { device: 'Sensor' })
    const ids: number[] = []
    for (let i = 0; i < 6; i++) {
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name: `E${i}`, value: i } } })
      ids.push(res.json().event.id)
    }
    const desc = [...ids].reverse()
    const list = async (query: string) => {
      const res = await app.inject({ url: `/events${query}`, headers: bearer(sessionKey) })
      t.equal(res.statusCode, 200, query)
      t.equal(res.json().message, 'OK')
      return res.json().events as Array<Record<string, unknown>>
    }
    const short = await list('')
    t.same(short, desc.map((id) => ({ id, uri: `http://localhost:80/events/${id}` })), 'short form, newest first')
    const full = await list('?full=true')
    t.same(full.map((e) => e.name), ['E5', 'E4', 'E3', 'E2', 'E1', 'E0'])
    t.same(full[0], { id: desc[0], device: 'Sensor', name: 'E5', location: null, action: null, value: '5', time: full[0]!.time, uri: `http://localhost:80/events/${desc[0]}` })
    t.same((await list('?full=1'))[0]!.name, 'E5')
    t.same(Object.keys((await list('?full=false'))[0]!).sort(), ['id', 'uri'])
    t.same(Object.keys((await list('?full=0'))[0]!).sort(), ['id', 'uri'])
    const ids_ = async (query: string) => (await list(query)).map((e) => e.id)
    t.same(await ids_(`?after=${ids[3]}`), [ids[5], ids[4]])
    t.same(await ids_(`?before=${ids[2]}`), [ids[1], ids[0]])
    t.same(await ids_(`?after=${ids[0]}&before=${ids[5]}`), [ids[4], ids[3], ids[2], ids[1]])
    t.same(await ids_('?limit=2'), [ids[5], ids[4]])
    t.same(await ids_('?limit=2&offset=2'), [ids[3], ids[2]])
    t.same(await ids_('?offset=5'), [ids[0]])
    t.same(await ids_('?limit=0'), [])
    t.same(await ids_(`?after=${ids[0]}&offset=1&limit=2`), [ids[4], ids[3]], 'filters, then offset, then limit')
    t.same(await ids_(`?after=${ids[5]}`), [], 'nothing newer')
    t.same(await ids_('?after=0'), desc)
    t.same(await ids_('?from=3&whatever=1'), desc, 'unknown parameters are ignored')
  })

  t.test('bad list parameters are 400 naming the parameter', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('read')
    for (const [query, name] of <Array<[string, string]>>[['limit=-1', 'limit'], ['offset=1.5', 'offset'], ['after=abc', 'after'], ['before=-5', 'before'], ['full=maybe', 'full'], ['limit=', 'limit']]) {
      const res = await app.inject({ url: `/events?${query}`, headers: bearer(sessionKey) })
      t.equal(res.statusCode, 400, query)
      t.equal(res.json().status, 400)
      t.match(res.json().message, name)
    }
  })

  t.test('messages a person reads: one line for full=, words for a NUL or a lone surrogate', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const { sessionKey } = await session('write')
    for (const full of ['maybe', '2', 'yes']) {
      const res = await app.inject({ url: `/events?full=${full}`, headers: bearer(sessionKey) })
      t.same(res.json(), { status: 400, message: 'querystring/full must be true or false (or 1 or 0)' }, `full=${full}`)
    }
    const cases: Array<[string, Record<string, unknown>]> = [
      ['name', { name: 'Li\u0000ght' }],
      ['location', { name: 'Light', location: 'Hall\ud800' }],
      ['value', { name: 'Light', value: '\udc00' }]
    ]
    for (const [field, event] of cases) {
      const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
      t.same(res.json(), {
        status: 400,
        message: `body/event/${field} must not contain a NUL character (U+0000) or an unpaired UTF-16 surrogate: send valid Unicode text`
      }, field)
    }
  })
})

const storedEvents = async (_t: Test, database: TestDatabase) => Number((await rawSql(database, 'select count(*) as n from events'))[0]!.n)

/** POST /events as `sessionKey`, with `key` as Idempotency-Key unless it is undefined. */
const postKeyed = (app: FastifyInstance, sessionKey: string, key: string | undefined, event: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/events', headers: { ...bearer(sessionKey), ...(key === undefined ? {} : { 'idempotency-key': key }) }, payload: { event } })

const postedId = (res: LightMyRequestResponse): number => {
  if (res.statusCode !== 201) throw new Error(`POST /events failed: ${res.statusCode} ${res.body}`)
  return res.json().event.id
}

forEachBackend(t, async (t, backend) => {
  t.test('Idempotency-Key: a retry from the same API key answers the first event again, stores nothing and delivers nothing', async (t) => {
    const { app, database, json, key } = await build(t, { metrics: true }, { backend })
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const apikey = await key('write')
    const signIn = async () => json(await app.inject({ method: 'POST', url: '/auth', payload: { apikey, device: 'Switch' } })).sessionKey as string
    const device = await signIn()
    const stream = await openStream(`${base}/events/stream`, bearer(device))
    t.teardown(stream.close)

    const first = await postKeyed(app, device, 'retry-1', { name: 'Light', value: 'On' })
    t.equal(first.statusCode, 201)
    t.equal(first.headers['idempotent-replayed'], undefined, 'the first post is not a replay')
    const id = postedId(first)

    const again = await postKeyed(app, device, 'retry-1', { name: 'Light', value: 'On' })
    t.equal(again.statusCode, 201, 'the retry is 201')
    t.equal(again.body, first.body, '... with the same body: the same id and uri')
    t.equal(again.headers['idempotent-replayed'], 'true', '... saying it is a replay')

    const resignedIn = await signIn()
    const afterSignIn = await postKeyed(app, resignedIn, 'retry-1', { name: 'Light', value: 'On' })
    t.equal(postedId(afterSignIn), id, 'signed in again (a new session of the same API key): still the first event')

    const other = postedId(await postKeyed(app, device, 'retry-2', { name: 'Light', value: 'Off' }))
    const plain = postedId(await postKeyed(app, device, undefined, { name: 'Door' }))
    t.ok(id < other && other < plain, 'a new key and a post without one are new events')
    t.equal(await storedEvents(t, database), 3, 'three events stored for five posts')

    const delivered = await stream.received(3)
    t.same(delivered.map((message) => Number(message.id)), [id, other, plain], 'each event reached the stream once; replays did not')
    const metrics = await app.inject({ url: '/metrics' })
    t.match(metrics.body, /^cred_events_posted_total 3$/m, 'only new events are counted as posted')
  })

  t.test('Idempotency-Key: the same key with another event answers the first one, and says so in the log', async (t) => {
    const lines: Array<Record<string, unknown>> = []
    const stream = new Writable({
      write (chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
        done()
      }
    })
    const app = Fastify({ logger: { level: 'info', stream } })
    t.teardown(() => app.close())
    const database = await testDatabase(t, backend)
    await app.register(cred, { config: resolveConfig({ database }, 'test') })
    await app.ready()
    const repos = await openDatabase(resolveConfig({ database }, 'test').database)
    t.teardown(() => repos.close())
    const { sessionKey } = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey: (await repos.apikeys.create('write')).apikey } })).json()

    const id = postedId(await postKeyed(app, sessionKey, 'k', { name: 'Light', location: 'Hall', value: 'On' }))
    const changed = await postKeyed(app, sessionKey, 'k', { name: 'Light', location: 'Hall', value: 'Off' })
    t.equal(postedId(changed), id, 'answered with the first event')
    t.equal(changed.headers['idempotent-replayed'], 'true')
    const got = await app.inject({ url: `/events/${id}`, headers: bearer(sessionKey) })
    t.equal(got.json().event.value, 'On', 'which is stored as first posted')
    t.equal(await storedEvents(t, database), 1)
    const warning = lines.find((line) => line.msg === 'Idempotency-Key reused with a different event: answered with the event it stored first')
    t.match(warning, { level: 40, event: id, idempotencyKey: 'k' }, 'a warning names the event and the key')
    const same = await postKeyed(app, sessionKey, 'k', { name: 'Light', location: 'Hall', value: 'On' })
    t.equal(postedId(same), id)
    t.equal(lines.filter((line) => line.msg === warning?.msg).length, 1, 'a retry with the same event logs no warning')
  })

  t.test('Idempotency-Key: keys of different API keys are independent', async (t) => {
    const { app, database, session } = await build(t, {}, { backend })
    const a = await session('write')
    const b = await session('write')
    const fromA = postedId(await postKeyed(app, a.sessionKey, 'shared', { name: 'Light' }))
    const fromB = await postKeyed(app, b.sessionKey, 'shared', { name: 'Light' })
    t.not(postedId(fromB), fromA, 'the same key from another API key is a new event')
    t.equal(fromB.headers['idempotent-replayed'], undefined)
    t.equal(postedId(await postKeyed(app, a.sessionKey, 'shared', { name: 'Light' })), fromA, 'each API key\'s retry answers its own event')
    t.equal(postedId(await postKeyed(app, b.sessionKey, 'shared', { name: 'Light' })), postedId(fromB))
    t.equal(await storedEvents(t, database), 2)
  })

  t.test('Idempotency-Key: posts with one key at the same moment store one event, and all get its id', async (t) => {
    const { app, database, session } = await build(t, {}, { backend })
    const writer = await session('write')
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
      postKeyed(app, writer.sessionKey, i % 2 === 0 ? 'same' : undefined, { name: `E${i}` })))
    const keyed = answers.filter((_, i) => i % 2 === 0)
    t.equal(new Set(keyed.map(postedId)).size, 1, 'one id for the keyed posts')
    t.equal(keyed.filter((res) => res.headers['idempotent-replayed'] === undefined).length, 1, 'one of them stored it, the others are replays')
    t.equal(new Set(answers.map(postedId)).size, 5, 'the posts without a key are events of their own')
    t.equal(await storedEvents(t, database), 5)
    const list = await app.inject({ url: '/events?full=true', headers: bearer(writer.sessionKey) })
    const names: string[] = list.json().events.map((event: { name: string }) => event.name)
    t.same(names.filter((name) => ['E1', 'E3', 'E5', 'E7'].includes(name)).sort(), ['E1', 'E3', 'E5', 'E7'], 'every post without a key stored')
    t.equal(names.filter((name) => ['E0', 'E2', 'E4', 'E6'].includes(name)).length, 1, 'one of the keyed posts stored')
  })

  t.test('Idempotency-Key: after 24 hours the key stores a new event', async (t) => {
    const { app, database, session } = await build(t, {}, { backend })
    const writer = await session('write')
    const first = postedId(await postKeyed(app, writer.sessionKey, 'daily', { name: 'Report' }))
    // the key's first use moved a day (and a millisecond) into the past
    await rawSql(database, `update idempotency_keys set created = created - ${24 * 60 * 60 * 1000 + 1}`)
    const later = await postKeyed(app, writer.sessionKey, 'daily', { name: 'Report' })
    t.equal(later.headers['idempotent-replayed'], undefined, 'not a replay')
    const second = postedId(later)
    t.ok(second > first, 'a new event')
    const retry = await postKeyed(app, writer.sessionKey, 'daily', { name: 'Report' })
    t.equal(postedId(retry), second, 'and the key now answers with that one')
    t.equal(retry.headers['idempotent-replayed'], 'true')
    t.equal(await storedEvents(t, database), 2)
  })

  t.test('Idempotency-Key: 1 to 255 printable ASCII characters, anything else is 400 naming the header', async (t) => {
    const { app, database, session } = await build(t, {}, { backend })
    const writer = await session('write')
    const longest = '~'.repeat(255)
    t.equal(postedId(await postKeyed(app, writer.sessionKey, longest, { name: 'A' })) > 0, true, '255 characters are a key')
    t.equal(postedId(await postKeyed(app, writer.sessionKey, 'a b"c\\d{}', { name: 'B' })) > 0, true, 'spaces, quotes and backslashes are part of a key')
    for (const [bad, why] of <Array<[string, string]>>[['', 'empty'], ['x'.repeat(256), '256 characters'], ['tab\there', 'a tab'], ['caf\u00e9', 'not ASCII']]) {
      const res = await postKeyed(app, writer.sessionKey, bad, { name: 'C' })
      t.equal(res.statusCode, 400, why)
      t.same(Object.keys(res.json()).sort(), ['message', 'status'], `${why}: the envelope`)
      t.match(res.json().message, /idempotency-key/i, `${why}: names the header`)
    }
    t.equal(await storedEvents(t, database), 2, 'nothing stored for the bad ones')
    const reader = await session('read')
    t.equal((await postKeyed(app, reader.sessionKey, 'k', { name: 'D' })).statusCode, 403, 'a read key still gets 403')
    t.equal((await postKeyed(app, 'no-such-session', '', { name: 'D' })).statusCode, 401, 'no session: 401 before the header is looked at')
  })

  if (backend !== 'sqlite') {
    t.test('Idempotency-Key: two instances on one database, the same key posted to both at once: one event', async (t) => {
      const one = await build(t, {}, { backend })
      const two = await build(t, {}, { backend, database: one.database })
      const apikey = await one.key('write')
      const signIn = async (app: FastifyInstance) => (await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })).json().sessionKey as string
      const [onOne, onTwo] = [await signIn(one.app), await signIn(two.app)]
      for (const round of [1, 2, 3]) {
        const answers = await Promise.all(Array.from({ length: 6 }, (_, i) =>
          i % 2 === 0 ? postKeyed(one.app, onOne, `round-${round}`, { name: 'Light' }) : postKeyed(two.app, onTwo, `round-${round}`, { name: 'Light' })))
        t.equal(new Set(answers.map(postedId)).size, 1, `round ${round}: one id from both instances`)
        t.equal(answers.filter((res) => res.headers['idempotent-replayed'] === undefined).length, 1, `round ${round}: one post stored it`)
      }
      t.equal(await storedEvents(t, one.database), 3, 'one event per key')
    })
  }
})
