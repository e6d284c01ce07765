import fastJson from 'fast-json-stringify'
import t from 'tap'
import { EventList } from '../../schemas/events.js'
import { bearer, build, forEachBackend } from '../helper.js'

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
})
