// What every server database (PostgreSQL, MariaDB) must do alike, as tests each one's test
// file runs: several instances on one database, concurrent migrations, and what happens when
// the database is unreachable at start or goes away while serving.
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import cred from '../../app.js'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase, DatabaseUnavailableError, type Repositories } from '../../db/index.js'
import type { CredConfig, SettingsInput } from '../../schemas/config.js'
import { bearer, rawSql, testDatabase, type Backend } from '../helper.js'
import { tcpProxy } from './tcp-proxy.js'

type DatabaseInput = NonNullable<SettingsInput['database']>

/** One cred instance: the plugin in its own Fastify, as each cred-server process runs it. */
export async function instance (t: Test, database: DatabaseInput): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, pluginTimeout: 60_000 })
  await app.register(cred, { config: { database } })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

/** Repositories on `database` outside any app, for arranging and checking. */
export async function handle (t: Test, database: DatabaseInput): Promise<Repositories> {
  const repos = await openDatabase(resolveConfig({ database }, 'test').database)
  t.teardown(() => repos.close())
  return repos
}

export async function auth (app: FastifyInstance, apikey: string, body: Record<string, unknown> = {}): Promise<{ id: number, sessionKey: string }> {
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, ...body } })
  if (res.statusCode !== 201) throw new Error(`auth failed: ${res.statusCode} ${res.body}`)
  return res.json()
}

export async function postEvent (app: FastifyInstance, sessionKey: string, name: string): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name } } })
  if (res.statusCode !== 201) throw new Error(`POST /events failed: ${res.statusCode} ${res.body}`)
  return res.json().event.id
}

export async function eventIds (app: FastifyInstance, sessionKey: string, query = ''): Promise<number[]> {
  const res = await app.inject({ method: 'GET', url: `/events${query}`, headers: bearer(sessionKey) })
  if (res.statusCode !== 200) throw new Error(`GET /events failed: ${res.statusCode} ${res.body}`)
  return res.json().events.map((event: { id: number }) => event.id)
}

/** Waits (a bounded number of short rounds) until `condition` holds; false if it never does. */
export async function eventually (condition: () => Promise<boolean>, rounds = 200): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    if (await condition()) return true
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return false
}

const descending = (ids: number[]) => ids.every((id, i) => i === 0 || ids[i - 1]! > id)

/** A server database as its tests need it. */
export interface Server {
  backend: Extract<Backend, 'postgresql' | 'mariadb'>
  /** where the test server listens */
  target: { host: string, port: number }
  /** the dialect's folder under db/ */
  dialect: 'postgres' | 'mysql'
  /** the table drizzle records applied migrations in */
  migrationsTable: string
  /** repositories with short timeouts (seconds to connect: 1; a call: 1.5 s) */
  openQuick: (settings: CredConfig['database']) => Promise<Repositories>
}

/** The tests every server database passes alike. */
export function serverTests (t: Test, server: Server): void {
  const { backend } = server
  t.test('two instances on one database share keys, sessions, events and one id order', async (t) => {
    const database = await testDatabase(t, backend)
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
    // B learns of A's commits soon (PostgreSQL: a notification; MariaDB: its next look)
    t.ok(await eventually(async () => (await eventIds(b, onB.sessionKey)).includes(posted)), '... and listed by B')
    t.same(await eventIds(b, onB.sessionKey), [posted])
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
    const all = [posted, ...ids]
    // the poller goes on until it has seen the newest, as a device would
    t.ok(await eventually(async () => {
      for (const id of await eventIds(b, onB.sessionKey, `?after=${highest}`)) {
        seenByPoller.add(id)
        highest = Math.max(highest, id)
      }
      return highest === Math.max(...all)
    }), 'the poller reaches the newest event')

    t.equal(new Set(all).size, all.length, 'every event got its own id')
    t.ok(await eventually(async () => (await eventIds(a, onA.sessionKey)).length === all.length), 'A lists them all')
    const listedA = await eventIds(a, onA.sessionKey)
    const listedB = await eventIds(b, onB.sessionKey)
    t.same(listedA, listedB, 'both instances list the same events')
    t.ok(descending(listedA), 'newest first')
    t.same([...listedA].sort((x, y) => x - y), [...all].sort((x, y) => x - y), 'exactly the posted events')
    t.same([...seenByPoller].sort((x, y) => x - y), [...all].sort((x, y) => x - y), 'the after= poller saw every event')
  })

  t.test('instances starting at once on a fresh database apply the migrations once, without error', async (t) => {
    const database = await testDatabase(t, backend)
    const settings = resolveConfig({ database }, 'test').database
    const [apps, handles] = await Promise.all([
      Promise.all([instance(t, database), instance(t, database)]),
      Promise.all(Array.from({ length: 4 }, () => openDatabase(settings)))
    ])
    t.teardown(() => Promise.all(handles.map((repos) => repos.close())))
    t.equal(apps.length + handles.length, 6, 'all six started')

    const journal = JSON.parse(readFileSync(new URL(`../../db/${server.dialect}/migrations/meta/_journal.json`, import.meta.url), 'utf8')) as { entries: unknown[] }
    const applied = await rawSql(database, `select hash from ${server.migrationsTable}`)
    t.equal(applied.length, journal.entries.length, 'each migration recorded once')
    const keys = await Promise.all(handles.map((repos) => repos.apikeys.create('read')))
    t.equal(new Set(keys.map((key) => key.id)).size, keys.length, 'every handle works on the one schema')
  })

  t.test('start against a closed port: DatabaseUnavailableError naming host, port and database', async (t) => {
    const settings = resolveConfig({
      database: { type: backend, host: '127.0.0.1', port: 1, user: 'postgres', database: 'cred_closed_port' }
    }, 'test').database
    const error = await openDatabase(settings).then(() => null, (err: unknown) => err)
    t.ok(error instanceof DatabaseUnavailableError, `DatabaseUnavailableError, got ${String(error)}`)
    const message = (error as Error).message
    t.match(message, /127\.0\.0\.1:1\b/, 'host and port')
    t.match(message, /cred_closed_port/, 'database')
    t.notMatch(message, /\n/, 'one line')
  })

  t.test('while the database is away requests get 503 {status, message}; they recover when it returns', async (t) => {
    const database = await testDatabase(t, backend)
    const proxy = await tcpProxy(t, server.target)
    const app = await instance(t, { ...database, port: proxy.port })
    const repos = await handle(t, database)
    const writer = await auth(app, (await repos.apikeys.create('write')).apikey)
    const first = await postEvent(app, writer.sessionKey, 'Light')

    await proxy.stop()
    // the instance notices within a second (its connections close; MariaDB: or its next look fails)
    t.ok(await eventually(async () => (await app.inject({ url: '/health/ready' })).statusCode === 503, 40), '/health/ready says so')
    for (const [method, url] of [['GET', '/events'], ['POST', '/events'], ['GET', `/events/${first}`]] as const) {
      const started = Date.now()
      const res = await app.inject({ method, url, headers: bearer(writer.sessionKey), ...(method === 'POST' ? { payload: { event: { name: 'Door' } } } : {}) })
      t.equal(res.statusCode, 503, `${method} ${url} while away`)
      t.match(res.json(), { status: 503, message: /database|unavailable/i })
      t.ok(Date.now() - started < 2000, `${method} ${url}: answered quickly`)
    }
    const login = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: 'anything' } })
    t.equal(login.statusCode, 503, 'POST /auth while away')
    t.same(Object.keys(login.json()).sort(), ['message', 'status'])

    await proxy.start()
    t.ok(await eventually(async () => (await app.inject({ url: '/events', headers: bearer(writer.sessionKey) })).statusCode === 200), 'back by itself')
    t.same(await eventIds(app, writer.sessionKey), [first], 'the same session, the same data')
    const second = await postEvent(app, writer.sessionKey, 'Door')
    t.ok(second > first, 'and new events are stored')
    t.ok(await eventually(async () => (await app.inject({ url: '/health/ready' })).statusCode === 200), '/health/ready says it is back')
  })

  t.test('a connection that goes silent fails the call within its deadline; the next call uses a new pool', async (t) => {
    const database = await testDatabase(t, backend)
    const proxy = await tcpProxy(t, server.target)
    // one connection, so the frozen one is all the pool has
    const repos = await server.openQuick(resolveConfig({ database: { ...database, port: proxy.port, poolSize: 1 } }, 'test').database)
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
      t.match((error as Error).message, /did not answer|no answer within|ETIMEDOUT/)
    }

    // the frozen connections stay open and silent: only a new pool can answer
    proxy.acceptFresh()
    t.same((await repos.events.list({})).map((e) => e.name), ['Light'], 'answered on a fresh connection')
    t.match(await repos.events.create(event), { name: 'Light' }, 'events are inserted on a fresh connection too')
  })
}
