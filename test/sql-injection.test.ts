// SQL injection, on both backends: device, location, event names, actions, values and
// subscription names made of quotes, backslashes, SQL fragments, LIKE wildcards, placeholder
// syntax of every driver, comment markers and unicode are stored and returned verbatim;
// subscriptions with such names and locations match exactly (and only) the right events, in the
// lists, in stream catch-up and live; and the tables are intact afterwards.
import Database from 'better-sqlite3'
import fc from 'fast-check'
import t from 'tap'
import { bearer, build, forEachBackend, rawSql, type Backend, type TestApp } from './helper.js'
import { openStream } from './sse-client.js'

const seed = Number(process.env.FUZZ_SEED ?? 20260512)
fc.configureGlobal({ seed, numRuns: Number(process.env.FUZZ_RUNS ?? 60) })

/** Text that breaks SQL built by string concatenation, LIKE patterns, or a driver's placeholders. */
const hostile = [
  "'", "''", '"', '`', '\\', "\\'", "\\\\'", "'; DROP TABLE events; --", "Robert'); DROP TABLE clients;--",
  "x' OR '1'='1", "' OR 1=1 --", '" OR ""="', '1; DELETE FROM apikeys', "' UNION SELECT key_hash FROM apikeys --",
  '%', '_', '%%', 'L_ght', 'Li%', '[a-z]%', '\\%', '\\_', '$1', '$2', '$1::text', '?', '??', '?1', ':name', ':1', '@name',
  '--', '-- comment', '/*', '*/', '/* x */', '#', ';', 'NULL', 'null', '\\N', "E'\\x27'", '$$', '$tag$', "'||'", 'CHAR(39)',
  'é', 'e\u0301', '日本語', '😀', '\u202e', '\u2028', '\r\nSet-Cookie: x=1', ' ', 'Light ', ' Light'
]

interface Posted { id: number, name: string, location: string | null }

/** A string for a test name, in ASCII: a raw U+2028 in the TAP output would end the line there. */
const show = (text: string) => JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)

const post = async (test: TestApp, sessionKey: string, event: Record<string, unknown>): Promise<number> => {
  const res = await test.app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
  if (res.statusCode !== 201) throw new Error(`post failed: ${res.statusCode} ${res.body}`)
  return res.json().event.id as number
}

/** The events a subscription map must match: exact name; exact location, or any for null / ''. */
const matching = (events: Posted[], subscribe: Record<string, { location?: string | null } | ''>) =>
  events.filter((event) => {
    if (!Object.hasOwn(subscribe, event.name)) return false
    const filter = subscribe[event.name]
    const where = typeof filter === 'object' ? filter.location ?? '' : ''
    return where === '' || where === event.location
  }).map((event) => event.id)

/** Table names and row counts, read straight from the database file or server. */
async function tables (test: TestApp, backend: Backend): Promise<Record<string, number>> {
  const names = ['apikeys', 'clients', 'subscriptions', 'events']
  const counts: Record<string, number> = {}
  if (backend === 'sqlite') {
    const db = new Database(test.database.database, { readonly: true })
    try {
      const present = db.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>
      for (const name of names) {
        if (present.some((row) => row.name === name)) counts[name] = (db.prepare(`select count(*) as n from "${name}"`).get() as { n: number }).n
      }
    } finally {
      db.close()
    }
    return counts
  }
  const present = await rawSql(test.database, backend === 'mariadb'
    ? 'select table_name as tablename from information_schema.tables where table_schema = database()'
    : "select tablename from pg_tables where schemaname = 'public'")
  for (const name of names) {
    if (present.some((row) => row.tablename === name)) counts[name] = Number((await rawSql(test.database, `select count(*) as n from "${name}"`))[0]!.n)
  }
  return counts
}

forEachBackend(t, async (t, backend) => {
  t.test('hostile text is stored and returned verbatim; subscriptions match exactly; the tables are intact', async (t) => {
    const test = await build(t, {}, { backend })
    const { app } = test
    const before = await tables(test, backend)
    t.same(Object.keys(before).sort(), ['apikeys', 'clients', 'events', 'subscriptions'], 'the tables are there')

    // clients: device and location, as JSON and form-encoded (as the original web UI)
    const writers: Array<{ sessionKey: string, id: number, device: string }> = []
    for (const [i, text] of hostile.entries()) {
      const viaForm = i % 2 === 1
      const apikey = await test.key('write')
      const res = viaForm
        ? await app.inject({
          method: 'POST',
          url: '/auth',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: `apikey=${apikey}&device=${encodeURIComponent(text)}&location=${encodeURIComponent(`${text}@home`)}`
        })
        : await app.inject({ method: 'POST', url: '/auth', payload: { apikey, device: text, location: `${text}@home` } })
      t.equal(res.statusCode, 201, `auth with device ${show(text)}`)
      const { id, sessionKey } = res.json()
      const me = await app.inject({ url: '/clients/me', headers: bearer(sessionKey) })
      const { lastActive: _lastActive, ...client } = me.json().client
      t.same(client, { id, device: text, location: `${text}@home`, uri: `http://localhost:80/clients/${id}` }, `device ${show(text)} ${viaForm ? '(form)' : '(JSON)'}`)
      writers.push({ id, sessionKey, device: text })
    }

    // events: every field hostile; each reads back verbatim, alone and in the lists
    const posted: Array<Posted & { action: string, value: string, device: string, by: number }> = []
    for (const [i, text] of hostile.entries()) {
      const writer = writers[(i * 7) % writers.length]!
      const event = { name: text, location: `${text}|loc`, action: `${text}|act`, value: `${text}|${i}` }
      const id = await post(test, writer.sessionKey, event)
      posted.push({ id, ...event, device: writer.device, by: writer.id })
      const got = (await app.inject({ url: `/events/${id}`, headers: bearer(writer.sessionKey) })).json().event
      t.match(got, { id, device: writer.device, ...event }, `event named ${show(text)}`)
    }
    const { sessionKey: reader } = await test.session('read')
    const listed = (await app.inject({ url: '/events?full=true', headers: bearer(reader) })).json().events as Array<Record<string, unknown>>
    t.same(
      listed.map(({ id, device, name, location, action, value }) => ({ id, device, name, location, action, value })),
      [...posted].reverse().map(({ id, device, name, location, action, value }) => ({ id, device, name, location, action, value })),
      'GET /events lists every event verbatim, newest first'
    )
    for (const writer of writers.slice(0, 8)) {
      const own = (await app.inject({ url: `/clients/${writer.id}/events`, headers: bearer(reader) })).json().events.map((e: { id: number }) => e.id)
      t.same(own, posted.filter((e) => e.by === writer.id).map((e) => e.id).reverse(), `the events of device ${show(writer.device)}`)
    }

    // subscriptions: names and locations that a LIKE, a missing escape or a case/space-insensitive
    // comparison would confuse; each must match exactly the right events
    const { sessionKey: sensor } = await test.session('write')
    const names = ['Light', 'light', 'Light ', 'L_ght', 'Li%', '%', '_', "Li'ght", "'", "''", '\\', "'; DROP TABLE events; --", '$1', '?', ':name', '/*', 'é', 'e\u0301', '😀']
    const locations = [null, 'Hall', "O'Brien's", '%', '_', 'H_ll', 'Ha%', '\\', '$1', '?', ':loc', "Hall' OR '1'='1"]
    const events: Posted[] = [...posted.map(({ id, name, location }) => ({ id, name, location }))]
    for (const [i, name] of names.entries()) {
      for (const location of [locations[i % locations.length]!, locations[(i * 5 + 1) % locations.length]!, 'Hall']) {
        const id = await post(test, sensor, location === null ? { name } : { name, location })
        events.push({ id, name, location })
      }
    }
    // exact hits of the filters below, and near misses a LIKE or a lost quote would also take
    const pairs: Array<[string, string | null]> = [['%', '%'], ['%', 'x%'], ['%', ''], ['_', '_'], ['_', 'a'], ['Light', "Hall' OR '1'='1"], ['Light', "Hall'"], ["Li'ght", "O'Brien's"], ["Li''ght", "O'Brien's"]]
    for (const [name, location] of pairs) {
      const id = await post(test, sensor, location === null ? { name } : { name, location })
      events.push({ id, name, location })
    }
    const subscriptions: Array<Record<string, { location?: string | null } | ''>> = [
      { Light: { location: 'Hall' }, '%': {}, _: { location: '%' }, "'; DROP TABLE events; --": {} },
      { L_ght: {}, "Li'ght": { location: "O'Brien's" }, $1: { location: '?' }, ':name': { location: ':loc' }, '\\': { location: '\\' } },
      { light: {}, 'Light ': { location: 'H_ll' }, 'Li%': { location: 'Ha%' }, "'": {}, "''": { location: "Hall' OR '1'='1" } },
      { é: {}, '/*': { location: null }, '😀': { location: '' }, '?': {}, é: { location: '$1' } },
      { '%': { location: '%' }, _: { location: '_' }, Light: { location: "Hall' OR '1'='1" } }
    ]
    const subscribers: Array<{ id: number, sessionKey: string, subscribe: Record<string, { location?: string | null } | ''> }> = []
    for (const [i, subscribe] of subscriptions.entries()) {
      let res
      if (i === 1) {
        // the same through the form encoding, bracket notation
        const fields = Object.entries(subscribe).map(([name, filter]) => typeof filter === 'object' && typeof filter.location === 'string'
          ? `subscribe[${encodeURIComponent(name)}][location]=${encodeURIComponent(filter.location)}`
          : `subscribe[${encodeURIComponent(name)}]=`)
        res = await app.inject({ method: 'POST', url: '/auth', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: [`apikey=${await test.key('read')}`, ...fields].join('&') })
      } else {
        res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: await test.key('read'), subscribe } })
      }
      t.equal(res.statusCode, 201, `subscriber ${i}`)
      subscribers.push({ ...res.json(), subscribe })
    }
    for (const [i, { id, sessionKey, subscribe }] of subscribers.entries()) {
      const wanted = matching(events, subscribe).reverse()
      t.ok(wanted.length > 0, `subscriber ${i} has matching events`)
      const got = (await app.inject({ url: `/clients/${id}/subscribedevents?full=true`, headers: bearer(sessionKey) })).json().events as Posted[]
      t.same(got.map((e) => e.id), wanted, `subscriber ${i}: exactly the matching events, newest first`)
      t.ok(got.every((e) => matching([e], subscribe).length === 1), `subscriber ${i}: each one matches`)
      const page = (await app.inject({ url: `/clients/${id}/subscribedevents?offset=1&limit=2`, headers: bearer(sessionKey) })).json().events as Posted[]
      t.same(page.map((e) => e.id), wanted.slice(1, 3), `subscriber ${i}: offset and limit over the merged list`)
    }

    // the stream: catch-up from the database (?after=0), then live, with the same exact matching
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const streamed = subscribers[0]!
    const stream = await openStream(`${base}/clients/${streamed.id}/subscribedevents/stream?after=0`, bearer(streamed.sessionKey))
    t.teardown(stream.close)
    t.equal(stream.status, 200)
    const caughtUp = matching(events, streamed.subscribe)
    t.same((await stream.received(caughtUp.length)).map((m) => Number(m.id)), caughtUp, 'catch-up: exactly the matching events, oldest first')
    await post(test, sensor, { name: 'Light', location: 'Hal_' })
    await post(test, sensor, { name: 'Xight', location: 'Hall' })
    await post(test, sensor, { name: "'; DROP TABLE events; -- ", location: 'Hall' })
    const live = await post(test, sensor, { name: '%', location: "'; --" })
    t.same((await stream.received(caughtUp.length + 1)).map((m) => Number(m.id)), [...caughtUp, live], 'live: only the matching event')
    t.equal(JSON.parse(stream.messages.at(-1)!.data).location, "'; --")

    // afterwards: every table there, with exactly the rows the API created
    const after = await tables(test, backend)
    t.same(after, {
      apikeys: before.apikeys! + hostile.length + 1 + 1 + subscriptions.length,
      clients: before.clients! + hostile.length + 1 + 1 + subscriptions.length,
      subscriptions: before.subscriptions! + subscriptions.reduce((n, s) => n + Object.keys(s).length, 0),
      events: before.events! + posted.length + names.length * 3 + pairs.length + 4
    }, 'the tables are intact: nothing dropped, deleted or added')
  })

  t.test('property: names and locations made of SQL metacharacters match exactly the right events', async (t) => {
    const test = await build(t, {}, { backend })
    const { app } = test
    const { sessionKey: sensor } = await test.session('write')
    // a small alphabet, so that names collide often and a wildcard or a lost escape would show
    const text = fc.array(fc.constantFrom("'", '"', '%', '_', '\\', '$1', '?', ':n', '--', '/*', ' ', 'a', 'A', 'é', 'e\u0301', ';', "' OR '1'='1"), { minLength: 1, maxLength: 3 })
      .map((parts) => parts.join(''))
    const events: Posted[] = []
    let matched = 0
    await fc.assert(fc.asyncProperty(
      fc.dictionary(text, fc.option(text, { nil: null }), { minKeys: 1, maxKeys: 3, noNullPrototype: true }),
      fc.array(fc.tuple(text, fc.option(text, { nil: null })), { minLength: 1, maxLength: 3 }),
      async (subscribe, newEvents) => {
        for (const [name, location] of newEvents) {
          const event = location === null ? { name } : { name, location }
          const id = await post(test, sensor, event)
          const got = (await app.inject({ url: `/events/${id}`, headers: bearer(sensor) })).json().event
          if (got.name !== name || got.location !== location) throw new Error(`stored ${JSON.stringify(got)}, sent ${JSON.stringify(event)}`)
          events.push({ id, name, location })
        }
        const filters = Object.fromEntries(Object.entries(subscribe).map(([name, location]) => [name, location === null ? {} : { location }]))
        const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: await test.key('read'), subscribe: filters } })
        if (res.statusCode !== 201) throw new Error(`auth failed: ${res.body}`)
        const { id, sessionKey } = res.json()
        const got = (await app.inject({ url: `/clients/${id}/subscribedevents`, headers: bearer(sessionKey) })).json().events.map((e: { id: number }) => e.id)
        const wanted = matching(events, filters).reverse()
        matched += wanted.length
        if (JSON.stringify(got) !== JSON.stringify(wanted)) throw new Error(`subscribedevents gave ${JSON.stringify(got)}, the matching events are ${JSON.stringify(wanted)}`)
      }
    ))
    t.ok(matched > 0, `${events.length} events; every subscription matched exactly (${matched} matches in all)`)
  })
})
