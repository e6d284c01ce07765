// MariaDB (and MySQL): what every server database does (./servers.ts), and what is MariaDB's
// own: the order lock row, the looks for other instances' changes, its start-up errors.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import mysql from 'mysql2/promise'
import t from 'tap'
import type { Test } from 'tap'
import { loadConfig } from '../../config/load.js'
import { resolveConfig } from '../../config/resolve.js'
import { DatabaseUnavailableError, openDatabase } from '../../db/index.js'
import { ACCESS_ENDED_KEEP_MS } from '../../db/mysql/changes.js'
import { connect, endPool, openConnection, SQL_MODE } from '../../db/mysql/connection.js'
import { openMysql } from '../../db/mysql/index.js'
import type { AccessEnded } from '../../db/repositories.js'
import { bearer, capturedLogs, build, mariadbUnavailable, rawSql, tempDir, testDatabase, testMariadb } from '../helper.js'
import { auth, eventually, handle, instance, postEvent, serverTests } from './servers.js'

/** A direct connection to the test database `name`. */
async function connection (t: Test, name: string): Promise<mysql.Connection> {
  const connection = await mysql.createConnection({ ...testMariadb, database: name })
  t.teardown(() => connection.end())
  return connection
}

/** Holds the order lock row on `connection` (a transaction left open) until `release()` commits. */
async function holdOrderLock (connection: mysql.Connection): Promise<{ release: () => Promise<void> }> {
  await connection.query('start transaction')
  await connection.query("select name from cred_locks where name = 'order' for update")
  return { release: async () => { await connection.query('commit') } }
}

/** How many transactions wait for a row lock on the server now. */
async function lockWaits (connection: mysql.Connection): Promise<number> {
  // InnoDB refreshes what information_schema.innodb_trx shows only after 100 ms without a read of it
  await new Promise((resolve) => setTimeout(resolve, 150))
  const [rows] = await connection.query<mysql.RowDataPacket[]>(
    "select count(*) as n from information_schema.innodb_trx where trx_state = 'LOCK WAIT'")
  return Number(rows[0]!.n)
}

/** The one-line error opening `database` gives. */
async function startError (database: Record<string, unknown>): Promise<Error> {
  const error = await openDatabase(resolveConfig({ database }, 'test').database).then(() => null, (err: unknown) => err)
  if (!(error instanceof DatabaseUnavailableError)) throw new Error(`expected DatabaseUnavailableError, got ${String(error)}`)
  return error
}

if (mariadbUnavailable !== null) {
  t.plan(0, mariadbUnavailable)
} else {
  serverTests(t, {
    backend: 'mariadb',
    target: testMariadb,
    dialect: 'mysql',
    migrationsTable: '__drizzle_migrations',
    openQuick: (settings) => openMysql(settings, { timeouts: { connectSeconds: 1, callMs: 1500 } })
  })

  t.test('a wrong password or a missing database stops the start with one line naming host, port and database', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    const wrongPassword = await startError({ ...database, password: 'not-the-password' })
    t.match(wrongPassword.message, new RegExp(`^cannot connect to MariaDB / MySQL at 127\\.0\\.0\\.1:3306 \\(database '${database.database}'\\): Access denied`))
    t.notMatch(wrongPassword.message, /\n/, 'one line')
    const missing = await startError({ ...database, database: 'cred_no_such_database' })
    t.match(missing.message, /^cannot connect to MariaDB \/ MySQL at 127\.0\.0\.1:3306 \(database 'cred_no_such_database'\): Unknown database/)
    t.notMatch(missing.message, /\n/, 'one line')
  })

  t.test('an event insert waits for the order lock, so ids commit in order', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    const app = await instance(t, database)
    const repos = await handle(t, database)
    const writer = await auth(app, (await repos.apikeys.create('write')).apikey)
    const sql = await connection(t, database.database)

    const lock = await holdOrderLock(sql)
    const response = postEvent(app, writer.sessionKey, 'Light')
    t.ok(await eventually(async () => await lockWaits(sql) === 1), 'the insert waits for the lock held here')
    const [rows] = await sql.query<mysql.RowDataPacket[]>('select count(*) as n from events')
    t.equal(Number(rows[0]!.n), 0, 'and has not inserted yet')
    // posts arriving meanwhile queue, and go in the next group: one statement
    const next = ['Door', 'Window', 'Fan', 'Heater'].map((name) => postEvent(app, writer.sessionKey, name))
    await new Promise((resolve) => setTimeout(resolve, 50))
    await lock.release()
    const ids = [await response, ...await Promise.all(next)]
    const stored = await rawSql(database, 'select id, name, time from events order by id')
    t.same(stored.map((row) => Number(row.id)), ids, 'ids in the order the posts arrived')
    t.same(stored.map((row) => row.name), ['Light', 'Door', 'Window', 'Fan', 'Heater'])
    t.equal(new Set(stored.slice(1).map((row) => row.time)).size, 1, 'the four that arrived during the first write went in one group')
  })

  t.test('an Idempotency-Key posted to two instances while both wait for the order lock: one event', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    const a = await instance(t, database)
    const b = await instance(t, database)
    const repos = await handle(t, database)
    const apikey = (await repos.apikeys.create('write')).apikey
    const onA = await auth(a, apikey)
    const onB = await auth(b, apikey)
    const sql = await connection(t, database.database)
    const keyed = (app: FastifyInstance, sessionKey: string) => app.inject({
      method: 'POST', url: '/events', headers: { ...bearer(sessionKey), 'idempotency-key': 'retry' }, payload: { event: { name: 'Light' } }
    })

    const lock = await holdOrderLock(sql)
    const answers = Promise.all([keyed(a, onA.sessionKey), keyed(b, onB.sessionKey)])
    t.ok(await eventually(async () => await lockWaits(sql) === 2), 'both instances wait for the lock held here')
    await lock.release()
    // whichever goes second must see the key the first committed, though it began waiting before
    const both = await answers
    t.same(both.map((res) => res.statusCode), [201, 201])
    t.equal(new Set(both.map((res) => res.json().event.id)).size, 1, 'both answered with one event')
    t.same(both.map((res) => res.headers['idempotent-replayed']).sort(), ['true', undefined], 'one stored it, the other is a replay')
    t.equal(Number((await rawSql(database, 'select count(*) as n from events'))[0]!.n), 1, 'one event stored')
  })

  t.test('its own events reach its own streams', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    // (that it does not wait for a look: test/db/mysql-changes.test.ts, without a server)
    const { app, session } = await build(t, { database: { pollInterval: 1000 } }, { backend: 'mariadb', database })
    const writer = await session('write')
    const reader = await session('read')
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const stream = new AbortController()
    t.teardown(() => stream.abort())
    const opened = await fetch(`${base}/events/stream`, { headers: bearer(reader.sessionKey), signal: stream.signal })
    t.equal(opened.status, 200)
    const body = opened.body!.getReader()
    for (const name of ['Light', 'Door', 'Fan']) {
      await postEvent(app, writer.sessionKey, name)
      const gaveUp = setTimeout(() => stream.abort(), 20_000)
      let text = ''
      try {
        while (!text.includes(`"${name}"`)) text += new TextDecoder().decode((await body.read()).value)
      } catch {
        // aborted: it did not come
      }
      clearTimeout(gaveUp)
      t.ok(text.includes(`"${name}"`), `${name} reached the stream`)
    }
  })

  t.test('access_ended rows older than the keep time go at the next end; another instance is still told of a revocation', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    const a = await handle(t, database)
    // rows of ends long past (as years of DELETE /auth leave), and one of a second ago
    const old = Date.now() - ACCESS_ENDED_KEEP_MS - 60_000
    await rawSql(database, `insert into access_ended (client_id, created) values ${Array.from({ length: 50 }, (_, i) => `(${i + 1}, ${old})`).join(', ')}`)
    await rawSql(database, `insert into access_ended (client_id, created) values (999, ${Date.now() - 1000})`)
    const b = await handle(t, database)
    const heard: AccessEnded[] = []
    const stop = b.access.listen((ended) => heard.push(ended))
    t.teardown(stop)
    const listening = await b.notifications.listen(() => {}, () => {})
    t.teardown(() => listening.close())
    heard.length = 0

    const key = await a.apikeys.create('write')
    const client = await a.clients.create({ device: 'dev', location: null, apikeyId: key.id, subscriptions: [] })
    t.ok(await b.clients.findBySession(client.sessionKey), 'the session works on B')
    t.match(await a.apikeys.revoke(key.id, Date.now()), { outcome: 'revoked' }, 'revoked on A')
    const rows = await rawSql(database, 'select client_id, apikey_id from access_ended order by id')
    t.same(rows.map((row) => [row.client_id, row.apikey_id]), [[999, null], [null, key.id]], 'the old rows are gone; the recent one and the revocation stay')
    t.ok(await eventually(async () => heard.length > 0), 'B is told')
    t.same(heard, [{ apikeyIds: [key.id] }], 'of the revocation itself')
    t.equal(await b.clients.findBySession(client.sessionKey), undefined, 'B refuses the session')
  })

  t.test('every connection cred opens works in one SQL mode, whatever the server\'s default, as on MySQL 8', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    const settings = resolveConfig({ database }, 'test').database
    const [server] = await rawSql(database, 'select @@global.sql_mode as mode')
    t.not(server!.mode, SQL_MODE, 'the server\'s own default differs (MariaDB\'s lacks ONLY_FULL_GROUP_BY)')
    const pool = connect(settings, { connectSeconds: 5, callMs: 5000 }, 2)
    t.teardown(() => endPool(pool, 1000))
    const [rows] = await pool.query<mysql.RowDataPacket[]>('select @@session.sql_mode as mode, @@session.tx_isolation as isolation')
    t.same(rows[0], { mode: SQL_MODE, isolation: 'READ-COMMITTED' }, 'a connection of a pool')
    const single = await openConnection(settings, { connectSeconds: 5, callMs: 5000 })
    t.teardown(() => single.end())
    const [singleRows] = await single.query<mysql.RowDataPacket[]>('select @@session.sql_mode as mode')
    t.equal(singleRows[0]!.mode, SQL_MODE, 'a connection of its own (migrations, roles)')
  })

  t.test('innodb_flush_log_at_trx_commit other than 1: a warning at start naming the setting', async (t) => {
    const database = await testDatabase(t, 'mariadb')
    await rawSql(database, 'set global innodb_flush_log_at_trx_commit = 2')
    t.teardown(() => rawSql(database, 'set global innodb_flush_log_at_trx_commit = 1'))
    const logs = capturedLogs('warn')
    await build(t, {}, { backend: 'mariadb', database, server: { logger: logs.logger } })
    t.ok(logs.lines.some((line) => line.level === 40 && /innodb_flush_log_at_trx_commit = 2/.test(String(line.msg))),
      `warned: ${JSON.stringify(logs.lines.map((line) => line.msg))}`)
  })

  t.test('DATABASE_URL=mysql:// and mariadb://, and the flat layout with type mysql+pymysql, reach MariaDB', async (t) => {
    const dir = tempDir(t)
    const flatDb = await testDatabase(t, 'mariadb')
    const flat = join(dir, 'flat-credrc')
    writeFileSync(flat, [
      'SSL: False', "approot: ''", "host: '*'", 'port: 5055', "type: 'mysql+pymysql'", `user: '${testMariadb.user}'`, "password: ''",
      `host: '${testMariadb.host}'`, `port: '${testMariadb.port}'`, `database: '${flatDb.database}'`, ''
    ].join('\n'))
    const fromFlat = loadConfig(flat, { env: {} }).config
    t.equal(fromFlat.database.kind, 'mysql')
    const flatRepos = await openDatabase(fromFlat.database)
    t.teardown(() => flatRepos.close())
    t.equal(flatRepos.location, `${testMariadb.host}:${testMariadb.port}/${flatDb.database}`)
    t.equal(flatRepos.name, 'MariaDB')
    const flatKey = await flatRepos.apikeys.create('admin')
    t.ok(await (await handle(t, flatDb)).apikeys.findByKey(flatKey.apikey), 'the key is in that database')

    for (const scheme of ['mysql', 'mariadb']) {
      const urlDb = await testDatabase(t, 'mariadb')
      const env = { DATABASE_URL: `${scheme}://${testMariadb.user}@${testMariadb.host}:${testMariadb.port}/${urlDb.database}` }
      const fromUrl = loadConfig(flat, { env }).config
      const urlRepos = await openDatabase(fromUrl.database)
      t.teardown(() => urlRepos.close())
      t.equal(urlRepos.location, `${testMariadb.host}:${testMariadb.port}/${urlDb.database}`, `${scheme}:// overrides the file`)
      const urlKey = await urlRepos.apikeys.create('admin')
      t.ok(await (await handle(t, urlDb)).apikeys.findByKey(urlKey.apikey), 'the key is in that database')
    }
  })
}
