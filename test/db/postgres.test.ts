// PostgreSQL only: several instances on one database, concurrent migrations, and what
// happens when the database is unreachable at start or goes away while serving.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import type { Test } from 'tap'
import cred from '../../app.js'
import { loadConfig } from '../../config/load.js'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase, DatabaseUnavailableError, type Repositories } from '../../db/index.js'
import { lockNames, openPostgres, writerApplicationName } from '../../db/postgres/index.js'
import type { SettingsInput } from '../../schemas/config.js'
import { bearer, postgresUnavailable, tempDir, testDatabase, testPostgres } from '../helper.js'
import { tcpProxy } from './tcp-proxy.js'

type DatabaseInput = NonNullable<SettingsInput['database']>

/** One cred instance: the plugin in its own Fastify, as each cred-server process runs it. */
async function instance (t: Test, database: DatabaseInput): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(cred, { config: { database } })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

/** Repositories on `database` outside any app, for arranging and checking. */
async function handle (t: Test, database: DatabaseInput): Promise<Repositories> {
  const repos = await openDatabase(resolveConfig({ database }, 'test').database)
  t.teardown(() => repos.close())
  return repos
}

/** A direct connection to the test database `name`. */
function connection (t: Test, name: string): postgres.Sql {
  const sql = postgres({ ...testPostgres, database: name, max: 1, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 1 }))
  return sql
}

async function auth (app: FastifyInstance, apikey: string, body: Record<string, unknown> = {}): Promise<{ id: number, sessionKey: string }> {
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, ...body } })
  if (res.statusCode !== 201) throw new Error(`auth failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

async function postEvent (app: FastifyInstance, sessionKey: string, name: string): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name } } })
  if (res.statusCode !== 201) throw new Error(`POST /events failed: ${res.statusCode} ${res.body}`)
  return res.json().event.id
}

async function eventIds (app: FastifyInstance, sessionKey: string, query = ''): Promise<number[]> {
  const res = await app.inject({ method: 'GET', url: `/events${query}`, headers: bearer(sessionKey) })
  if (res.statusCode !== 200) throw new Error(`GET /events failed: ${res.statusCode} ${res.body}`)
  return res.json().events.map((event: { id: number }) => event.id)
}

/** Waits (a bounded number of short rounds) until `condition` holds; false if it never does. */
async function eventually (condition: () => Promise<boolean>, rounds = 200): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    if (await condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return false
}

const descending = (ids: number[]) => ids.every((id, i) => i === 0 || ids[i - 1]! > id)

if (postgresUnavailable !== null) {
  t.plan(0, postgresUnavailable)
} else {
  t.test('two instances on one database share keys, sessions, events and one id order', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const a = await instance(t, database)
    const b = await instance(t, database)
    const repos = await handle(t, database)

    const admin = await auth(a, (await repos.apikeys.create('admin')).apikey)
    const made = await a.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: { permission: 'write' } })
    t.equal(made.statusCode, 201, 'a key made through instance A')
    const writeKey: string = made.json().apikey.apikey
    const onB = await auth(b, writeKey, { device: 'Switch', location: 'Hall' })
    t.ok(onB.sessionKey, '... authenticates on instance B')

    const onA = await auth(a, writeKey, { device: 'Panel', subscribe: { Light: {} } })
    const me = await b.inject({ method: 'GET', url: '/clients/me', headers: bearer(onA.sessionKey) })
    t.equal(me.statusCode, 200, 'a session from A works on B')
    t.match(me.json().client, { id: onA.id, device: 'Panel' })

    const posted = await postEvent(a, onA.sessionKey, 'Light')
    const seen = await b.inject({ method: 'GET', url: `/events/${posted}`, headers: bearer(onB.sessionKey) })
    t.equal(seen.statusCode, 200, 'an event posted to A is found on B')
    t.match(seen.json().event, { id: posted, name: 'Light', device: 'Panel' })
    t.same(await eventIds(b, onB.sessionKey), [posted], '... and listed by B')
    const subscribed = await b.inject({ method: 'GET', url: `/clients/${onA.id}/subscribedevents`, headers: bearer(onB.sessionKey) })
    t.same(subscribed.json().events.map((event: { id: number }) => event.id), [posted], '... and in the subscriber\'s events on B')

    // Both instances post at once while a client polls B with after=<highest id seen>,
    // as devices do: ids are unique, lists are newest first, and the poller misses nothing.
    const seenByPoller = new Set<number>([posted])
    let highest = posted
    const state = { posting: true }
    const poller = (async () => {
      while (state.posting) {
        const fresh = await eventIds(b, onB.sessionKey, `?after=${highest}`)
        t.ok(descending(fresh), 'each poll is newest first')
        for (const id of fresh) seenByPoller.add(id)
        highest = Math.max(highest, ...fresh)
      }
    })()
    const ids = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      i % 2 === 0 ? postEvent(a, onA.sessionKey, `A${i}`) : postEvent(b, onB.sessionKey, `B${i}`)))
    state.posting = false
    await poller
    for (const id of await eventIds(b, onB.sessionKey, `?after=${highest}`)) seenByPoller.add(id)

    const all = [posted, ...ids]
    t.equal(new Set(all).size, all.length, 'every event got its own id')
    const listedA = await eventIds(a, onA.sessionKey)
    const listedB = await eventIds(b, onB.sessionKey)
    t.same(listedA, listedB, 'both instances list the same events')
    t.ok(descending(listedA), 'newest first')
    t.same([...listedA].sort((x, y) => x - y), [...all].sort((x, y) => x - y), 'exactly the posted events')
    t.same([...seenByPoller].sort((x, y) => x - y), [...all].sort((x, y) => x - y), 'the after= poller saw every event')
  })

  t.test('an event insert waits for the event-order lock, so ids commit in order', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const app = await instance(t, database)
    const repos = await handle(t, database)
    const writer = await auth(app, (await repos.apikeys.create('write')).apikey)
    const sql = connection(t, database.database)

    let response: Promise<number> | undefined
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockNames.eventOrder}, 0))`
      response = postEvent(app, writer.sessionKey, 'Light')
      const waiting = await eventually(async () => {
        const [row] = await tx`select count(*)::int as n from pg_locks
          where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`
        return row!.n === 1
      })
      t.ok(waiting, 'the insert waits for the lock held here')
      const [row] = await tx`select count(*)::int as n from events`
      t.equal(row!.n, 0, 'and has not inserted yet')
    })
    const id = await response!
    t.match(await repos.events.get(id), { id, name: 'Light' }, 'it goes ahead once the lock is free')
  })

  t.test('an Idempotency-Key posted to two instances while both wait for the event-order lock: one event', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const a = await instance(t, database)
    const b = await instance(t, database)
    const repos = await handle(t, database)
    const apikey = (await repos.apikeys.create('write')).apikey
    const onA = await auth(a, apikey)
    const onB = await auth(b, apikey)
    const sql = connection(t, database.database)
    const keyed = (app: FastifyInstance, sessionKey: string) => app.inject({
      method: 'POST', url: '/events', headers: { ...bearer(sessionKey), 'idempotency-key': 'retry' }, payload: { event: { name: 'Light' } }
    })

    let answers: Promise<Array<Awaited<ReturnType<typeof keyed>>>> | undefined
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockNames.eventOrder}, 0))`
      answers = Promise.all([keyed(a, onA.sessionKey), keyed(b, onB.sessionKey)])
      const waiting = await eventually(async () => {
        const [row] = await tx`select count(*)::int as n from pg_locks
          where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`
        return row!.n === 2
      })
      t.ok(waiting, 'both instances wait for the lock held here')
    })
    // whichever goes second must see the key the first committed, though it began waiting before
    const both = await answers!
    t.same(both.map((res) => res.statusCode), [201, 201])
    t.equal(new Set(both.map((res) => res.json().event.id)).size, 1, 'both answered with one event')
    t.same(both.map((res) => res.headers['idempotent-replayed']).sort(), ['true', undefined], 'one stored it, the other is a replay')
    t.equal((await sql`select count(*)::int as n from events`)[0]!.n, 1, 'one event stored')
  })

  t.test('events are inserted on a connection of their own, in groups: posts arriving during a write share the next one', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const app = await instance(t, database)
    const repos = await handle(t, database)
    const writer = await auth(app, (await repos.apikeys.create('write')).apikey)
    const sql = connection(t, database.database)
    const inserters = async () => (await sql`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and application_name = ${writerApplicationName}`)[0]!.n

    let first: Promise<number> | undefined
    let next: Array<Promise<number>> = []
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockNames.eventOrder}, 0))`
      first = postEvent(app, writer.sessionKey, 'Light')
      const waiting = await eventually(async () => {
        // (within a transaction pg_stat_activity is read once, unless the snapshot is cleared)
        await tx`select pg_stat_clear_snapshot()`
        const [row] = await tx`select count(*)::int as n from pg_stat_activity
          where datname = current_database() and application_name = ${writerApplicationName} and wait_event_type = 'Lock'`
        return row!.n === 1
      })
      t.ok(waiting, 'the first insert waits for the lock, on the events connection')
      next = ['Door', 'Window', 'Fan', 'Heater'].map((name) => postEvent(app, writer.sessionKey, name))
      await new Promise((resolve) => setTimeout(resolve, 50))
    })
    const ids = [await first!, ...await Promise.all(next)]
    const stored = await sql<Array<{ id: number, name: string, time: string }>>`select id, name, time from events order by id`
    t.same(stored.map((row) => row.id), ids, 'ids in the order the posts arrived')
    t.same(stored.map((row) => row.name), ['Light', 'Door', 'Window', 'Fan', 'Heater'])
    t.equal(new Set(stored.slice(1).map((row) => row.time)).size, 1, 'the four that arrived during the first write went in one statement')
    t.equal(await inserters(), 1, 'one connection inserts events')
  })

  t.test('instances starting at once on a fresh database apply the migrations once, without error', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const settings = resolveConfig({ database }, 'test').database
    const [apps, handles] = await Promise.all([
      Promise.all([instance(t, database), instance(t, database)]),
      Promise.all(Array.from({ length: 4 }, () => openDatabase(settings)))
    ])
    t.teardown(() => Promise.all(handles.map((repos) => repos.close())))
    t.equal(apps.length + handles.length, 6, 'all six started')

    const journal = JSON.parse(readFileSync(new URL('../../db/postgres/migrations/meta/_journal.json', import.meta.url), 'utf8')) as { entries: unknown[] }
    const sql = connection(t, database.database)
    const applied = await sql`select hash from drizzle.__drizzle_migrations`
    t.equal(applied.length, journal.entries.length, 'each migration recorded once')
    const keys = await Promise.all(handles.map((repos) => repos.apikeys.create('read')))
    t.equal(new Set(keys.map((key) => key.id)).size, keys.length, 'every handle works on the one schema')
  })

  t.test('start against a closed port: DatabaseUnavailableError naming host, port and database', async (t) => {
    const settings = resolveConfig({
      database: { type: 'postgresql', host: '127.0.0.1', port: 1, user: 'postgres', database: 'cred_closed_port' }
    }, 'test').database
    const error = await openDatabase(settings).then(() => null, (err: unknown) => err)
    t.ok(error instanceof DatabaseUnavailableError, `DatabaseUnavailableError, got ${String(error)}`)
    const message = (error as Error).message
    t.match(message, /127\.0\.0\.1:1\b/, 'host and port')
    t.match(message, /cred_closed_port/, 'database')
    t.notMatch(message, /\n/, 'one line')
  })

  t.test('while the database is away requests get 503 {status, message}; they recover when it returns', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const proxy = await tcpProxy(t, testPostgres)
    const app = await instance(t, { ...database, port: proxy.port })
    const repos = await handle(t, database)
    const writer = await auth(app, (await repos.apikeys.create('write')).apikey)
    const first = await postEvent(app, writer.sessionKey, 'Light')

    await proxy.stop()
    for (const [method, url] of [['GET', '/events'], ['POST', '/events'], ['GET', `/events/${first}`]] as const) {
      const res = await app.inject({ method, url, headers: bearer(writer.sessionKey), ...(method === 'POST' ? { payload: { event: { name: 'Door' } } } : {}) })
      t.equal(res.statusCode, 503, `${method} ${url} while away`)
      t.match(res.json(), { status: 503, message: /database/i })
    }
    const login = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'anything' } })
    t.equal(login.statusCode, 503, 'POST /auth while away')
    t.same(Object.keys(login.json()).sort(), ['message', 'status'])

    await proxy.start()
    t.same(await eventIds(app, writer.sessionKey), [first], 'back by itself: the same session, the same data')
    const second = await postEvent(app, writer.sessionKey, 'Door')
    t.ok(second > first, 'and new events are stored')
  })

  t.test('a connection that goes silent fails the call within its deadline; the next call uses a new pool', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const proxy = await tcpProxy(t, testPostgres)
    // one connection, so the frozen one is all the pool has
    const repos = await openPostgres(resolveConfig({ database: { ...database, port: proxy.port, poolSize: 1 } }, 'test').database, {
      timeouts: { connectSeconds: 1, statementMs: 1000, callMs: 1500 }
    })
    t.teardown(() => repos.close())
    t.same(await repos.events.list({}), [])
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: null, apikeyId: (await repos.apikeys.create('write')).id, subscriptions: [] })
    const event = { clientId, device: 'dev', name: 'Light', location: 'Hall', action: 'Toggled', value: 'On' }
    await repos.events.create(event)

    proxy.freeze()
    for (const call of [() => repos.events.list({}), () => repos.events.create(event)]) {
      const error = await call().then(() => null, (err: unknown) => err)
      t.ok(error instanceof DatabaseUnavailableError, `DatabaseUnavailableError, got ${String(error)}`)
      // the second call runs on the pool that replaced the frozen one, which cannot connect either
      t.match((error as Error).message, /did not answer|no answer within/)
    }

    // the frozen connections stay open and silent: only a new pool can answer
    proxy.acceptFresh()
    t.same((await repos.events.list({})).map((e) => e.name), ['Light'], 'answered on a fresh connection')
    t.match(await repos.events.create(event), { name: 'Light' }, 'events are inserted on a fresh connection too')
  })

  // What readiness, the session cache and the newest events in memory rely on: knowing at once
  // that the listener is down. (postgres.js's own listen() listens again after a reconnect,
  // but tells nobody that its connection went away: this test fails on it.)
  t.test('while the event listener cannot listen again, the repositories know it: not ready, and no session from memory', async (t) => {
    const database = await testDatabase(t, 'postgresql')
    const proxy = await tcpProxy(t, testPostgres)
    const repos = await openPostgres(resolveConfig({ database: { ...database, port: proxy.port } }, 'test').database)
    t.teardown(() => repos.close())
    const listener = await repos.notifications.listen(() => {}, () => {})
    t.teardown(() => listener.close())
    const key = await repos.apikeys.create('write')
    const { sessionKey } = await repos.clients.create({ device: 'd', location: null, apikeyId: key.id, subscriptions: [] })
    t.ok(await repos.clients.findBySession(sessionKey), 'a session, looked up (and held in memory)')
    await repos.ready()

    // the pool's open connections carry on; the listener's is ended and cannot come back
    proxy.refuseNew()
    const sql = connection(t, database.database)
    const ended = await sql`select pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and query ilike 'listen%'`
    t.equal(ended.length, 1, 'the listener connection was ended')
    t.ok(await eventually(async () => !repos.notifications.listening()), 'not listening')
    await t.rejects(repos.ready(), { name: 'DatabaseUnavailableError', message: 'the PostgreSQL event listener is not connected' })
    // a revocation no notification tells of: not heard, so not answered from memory either
    t.ok(await repos.clients.findBySession(sessionKey), 'the session, looked up again')
    await sql`update apikeys set revoked = ${Date.now()} where id = ${key.id}`
    t.equal(await repos.clients.findBySession(sessionKey), undefined, 'the session of the revoked key is refused at once')

    await proxy.start()
    t.ok(await eventually(async () => repos.notifications.listening()), 'listening again, by itself')
    await repos.ready()
  })

  t.test('DATABASE_URL, and the flat layout with type postgresql+psycopg2, reach PostgreSQL', async (t) => {
    const dir = tempDir(t)

    const flatDb = await testDatabase(t, 'postgresql')
    const flat = join(dir, 'flat-credrc')
    writeFileSync(flat, [
      'SSL: False', "approot: ''", "host: '*'", 'port: 5055', 'scheduler: False', 'schedulerPeriod: 30', 'pingtimeout: 240',
      "type: 'postgresql+psycopg2'", `user: '${testPostgres.user}'`, "password: ''",
      `host: '${testPostgres.host}'`, `port: '${testPostgres.port}'`, `database: '${flatDb.database}'`, ''
    ].join('\n'))
    const fromFlat = loadConfig(flat, { env: {} }).config
    t.equal(fromFlat.port, 5055, 'the first port is the server\'s')
    t.equal(fromFlat.database.kind, 'postgresql')
    const flatRepos = await openDatabase(fromFlat.database)
    t.teardown(() => flatRepos.close())
    t.equal(flatRepos.location, `${testPostgres.host}:${testPostgres.port}/${flatDb.database}`)
    const flatKey = await flatRepos.apikeys.create('admin')
    t.ok(await (await handle(t, flatDb)).apikeys.findByKey(flatKey.apikey), 'the key is in that database')

    const urlDb = await testDatabase(t, 'postgresql')
    const nested = join(dir, 'credrc')
    writeFileSync(nested, `database:\n  type: sqlite3\n  database: ${join(dir, 'never.db')}\n`)
    const env = { DATABASE_URL: `postgres://${testPostgres.user}@${testPostgres.host}:${testPostgres.port}/${urlDb.database}` }
    const fromUrl = loadConfig(nested, { env }).config
    const urlRepos = await openDatabase(fromUrl.database)
    t.teardown(() => urlRepos.close())
    t.equal(urlRepos.name, 'PostgreSQL', 'DATABASE_URL overrides the file')
    t.equal(urlRepos.location, `${testPostgres.host}:${testPostgres.port}/${urlDb.database}`)
    const urlKey = await urlRepos.apikeys.create('admin')
    t.ok(await (await handle(t, urlDb)).apikeys.findByKey(urlKey.apikey), 'the key is in that database')
  })
}
