// PostgreSQL: what every server database does (./servers.ts), and what only PostgreSQL has:
// the advisory locks, the events connection, the LISTEN connection.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import postgres from 'postgres'
import t from 'tap'
import type { Test } from 'tap'
import { loadConfig } from '../../config/load.js'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase } from '../../db/index.js'
import { lockNames, openPostgres, writerApplicationName } from '../../db/postgres/index.js'
import { bearer, postgresUnavailable, tempDir, testDatabase, testPostgres } from '../helper.js'
import { auth, eventually, handle, instance, postEvent, serverTests } from './servers.js'
import { tcpProxy } from './tcp-proxy.js'

/** A direct connection to the test database `name`. */
function connection (t: Test, name: string): postgres.Sql {
  const sql = postgres({ ...testPostgres, database: name, max: 1, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 1 }))
  return sql
}

if (postgresUnavailable !== null) {
  t.plan(0, postgresUnavailable)
} else {
  serverTests(t, {
    backend: 'postgresql',
    target: testPostgres,
    dialect: 'postgres',
    migrationsTable: 'drizzle.__drizzle_migrations',
    openQuick: (settings) => openPostgres(settings, { timeouts: { connectSeconds: 1, statementMs: 1000, callMs: 1500 } })
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
