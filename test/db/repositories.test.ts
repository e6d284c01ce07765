// The repositories behave the same on every backend: the same tests, run against each.
import { createHash } from 'node:crypto'
import Database from 'better-sqlite3'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import t from 'tap'
import type { Test } from 'tap'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase, type AccessEnded, type CommittedEvents, type EventRecord, type ListFilter, type Repositories } from '../../db/index.js'
import { IDEMPOTENCY_WINDOW_MS, PURGE_INTERVAL_MS } from '../../db/idempotency.js'
import { openMysql } from '../../db/mysql/index.js'
import { openPostgres } from '../../db/postgres/index.js'
import { CHANGE_CHECK_MS, openSqlite } from '../../db/sqlite/index.js'
import { forEachBackend, testDatabase, type Backend } from '../helper.js'
import { expectedIds } from './list-reference.js'

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

interface Opened {
  repos: Repositories
  /** runs one SQL statement on the database directly, bypassing the repositories */
  raw: (statement: string) => Promise<Array<Record<string, unknown>>>
}

const databases = new WeakMap<Repositories, Awaited<ReturnType<typeof testDatabase>>>()

/**
 * Repositories on a new test database, or a second connection to the database of `sameAs`;
 * with `clock`, their inserts take the time from it.
 */
async function open (t: Test, backend: Backend, sameAs?: Repositories, clock?: () => number): Promise<Opened> {
  const database = sameAs === undefined ? await testDatabase(t, backend) : databases.get(sameAs)!
  const settings = resolveConfig({ database }, 'test').database
  const repos = clock === undefined
    ? await openDatabase(settings)
    : settings.kind === 'postgresql'
      ? await openPostgres(settings, { clock })
      : settings.kind === 'mysql' ? await openMysql(settings, { clock }) : openSqlite(settings.database, { clock })
  databases.set(repos, database)
  t.teardown(() => repos.close())
  if (settings.kind === 'sqlite') {
    const db = new Database(settings.database)
    t.teardown(() => { db.close() })
    return {
      repos,
      raw: async (statement) => {
        const prepared = db.prepare(statement)
        if (prepared.reader) return prepared.all() as Array<Record<string, unknown>>
        prepared.run()
        return []
      }
    }
  }
  if (settings.kind === 'mysql') {
    // double quotes name columns (`key`), as on the other two
    const connection = await mysql.createConnection({ host: settings.host, port: Number(settings.port), user: settings.user, database: settings.database })
    t.teardown(() => connection.end())
    await connection.query("set session sql_mode = concat(@@sql_mode, ',ANSI_QUOTES')")
    return {
      repos,
      raw: async (statement) => {
        const [rows] = await connection.query(statement)
        // text is stored as bytes (db/mysql/schema.ts)
        return Array.isArray(rows)
          ? (rows as Array<Record<string, unknown>>).map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('utf8') : v])))
          : []
      }
    }
  }
  const sql = postgres({ host: settings.host, port: Number(settings.port), user: settings.user, database: settings.database, max: 1 })
  t.teardown(() => sql.end())
  return { repos, raw: async (statement) => [...await sql.unsafe(statement)] }
}

/**
 * Two instances on one new database, the first listening for notifications (PostgreSQL; with
 * SQLite there are none to hear).
 */
async function twoListening (t: Test, backend: Backend): Promise<{ repos: Repositories, other: Opened }> {
  const { repos } = await open(t, backend)
  const other = await open(t, backend, repos)
  const listening = await repos.notifications?.listen(() => {}, () => {})
  if (listening !== undefined) t.teardown(() => listening.close())
  return { repos, other }
}

const filters: ListFilter[] = [
  {}, { limit: 3 }, { offset: 2 }, { offset: 2, limit: 3 }, { after: 4 }, { before: 7 }, { after: 2, before: 9, offset: 1, limit: 2 },
  { limit: 0 }, { offset: 100 }, { after: 100 }, { before: 1 },
  // bounds far beyond any id: no error, and they bound nothing
  { before: 3_000_000_000 }, { after: 3_000_000_000 }, { limit: 1e20 }, { before: 1e20, offset: 1 },
  // capped at maxItems: the newest, or with `after` those right after it
  { maxItems: 3 }, { maxItems: 3, offset: 2 }, { maxItems: 3, before: 8 }, { maxItems: 3, after: 2 }, { maxItems: 3, after: 2, offset: 1 },
  { maxItems: 3, after: 2, offset: 6 }, { maxItems: 3, after: 2, offset: 7 }, { maxItems: 3, after: 2, before: 9 }, { maxItems: 3, after: 0, limit: 5 },
  { maxItems: 3, after: 7 }, { maxItems: 20, after: 2 }, { maxItems: 1, after: 0 }, { maxItems: 3, after: 3_000_000_000 },
  { maxItems: 3, after: 2, offset: 1e20 }
]

forEachBackend(t, async (t, backend) => {
  t.test('API keys: the secret is shown once and stored only as its SHA-256; revoked keys are not found', async (t) => {
    const { repos, raw } = await open(t, backend)
    const before = Date.now()
    const created = await repos.apikeys.create('write')
    t.match(created, { id: Number, permission: 'write', revoked: null, apikey: /^[A-Za-z0-9_-]{43}$/ })
    t.ok(created.created >= before && created.created <= Date.now(), 'created is epoch ms')
    const rows = await raw(`select key_hash from apikeys where id = ${created.id}`)
    t.same(rows.map((row) => row.key_hash), [sha256(created.apikey)])
    t.same(await repos.apikeys.findByKey(created.apikey), { id: created.id, permission: 'write', created: created.created, revoked: null })
    t.equal(await repos.apikeys.findByKey('not a key'), undefined)

    const client = await repos.clients.create({ device: 'd', location: null, apikeyId: created.id, subscriptions: [] })
    t.ok(await repos.clients.findBySession(client.sessionKey), 'the session works while the key is valid')
    await raw(`update apikeys set revoked = ${Date.now()} where id = ${created.id}`)
    t.equal(await repos.apikeys.findByKey(created.apikey), undefined, 'revoked key')
    // the session was looked up (and cached) just before: the revocation by another
    // connection is seen within CHANGE_CHECK_MS on SQLite, and at once on PostgreSQL, whose
    // cache is not used while no notifications are heard (as here)
    await new Promise((resolve) => setTimeout(resolve, CHANGE_CHECK_MS + 1))
    t.equal(await repos.clients.findBySession(client.sessionKey), undefined, 'session of a revoked key')
    t.equal(await repos.apikeys.count(), 1)
  })

  t.test('API keys and clients: lists and lookups by id', async (t) => {
    const { repos } = await open(t, backend)
    const ids: number[] = []
    for (let i = 0; i < 10; i++) ids.push((await repos.apikeys.create('read')).id)
    for (const filter of filters) {
      t.same((await repos.apikeys.list(filter)).map((key) => key.id), expectedIds(ids, filter), `apikeys ${JSON.stringify(filter)}`)
    }
    t.equal(await repos.apikeys.count(), 10)
    t.equal(await repos.apikeys.get(3_000_000_000), undefined, 'an id beyond any row')
    t.equal(await repos.apikeys.get(1e20), undefined)

    const clientIds: number[] = []
    for (let i = 0; i < 10; i++) {
      clientIds.push((await repos.clients.create({ device: `d${i}`, location: `l${i}`, apikeyId: ids[0]!, subscriptions: [] })).id)
    }
    t.equal(new Set(clientIds).size, 10)
    await repos.clients.touch(clientIds[2]!, 10)
    await repos.clients.touch(clientIds[5]!, 10)
    const active = clientIds.filter((id) => id !== clientIds[2] && id !== clientIds[5])
    for (const filter of filters) {
      t.same((await repos.clients.listActive(1000, filter)).map((client) => client.id), expectedIds(active, filter), `active clients ${JSON.stringify(filter)}`)
    }
    t.equal(await repos.clients.countActive(1000), active.length, 'countActive counts what listActive lists')
    await repos.clients.end(clientIds[7]!, Date.now())
    t.equal(await repos.clients.countActive(1000), active.length - 1, 'an ended session is not active')
    t.equal(await repos.clients.countActive(Date.now() + 60_000), 0)
    t.same(await repos.clients.get(clientIds[2]!), { id: clientIds[2], device: 'd2', location: 'l2', lastActive: 10 })
    t.equal(await repos.clients.get(3_000_000_000), undefined)
    await repos.clients.touch(3_000_000_000, 10)
  })

  t.test('events: lists, by client, and the subscriptions join', async (t) => {
    const { repos } = await open(t, backend)
    const key = await repos.apikeys.create('write')
    const subscriber = await repos.clients.create({
      device: 'Panel',
      location: 'Hall',
      apikeyId: key.id,
      subscriptions: [{ eventName: 'Light', location: null }, { eventName: 'Door', location: 'Hall' }]
    })
    const other = await repos.clients.create({ device: 'Switch', location: null, apikeyId: key.id, subscriptions: [] })
    const posted: EventRecord[] = []
    const kinds = [['Light', 'Hall'], ['Door', 'Hall'], ['Door', 'Kitchen'], ['Light', null], ['Alarm', 'Hall'], ['Door', null]] as const
    for (let i = 0; i < 12; i++) {
      const [name, location] = kinds[i % kinds.length]!
      const clientId = i % 3 === 0 ? subscriber.id : other.id
      const before = Date.now()
      const event = await repos.events.create({ clientId, device: 'dev', name, location, action: i % 2 === 0 ? 'Set' : null, value: i % 4 === 0 ? null : `${i}.5` })
      t.ok(event.time >= before && event.time <= Date.now(), 'time is epoch ms')
      posted.push(event)
    }
    const ids = posted.map((event) => event.id)
    t.same([...ids].sort((a, b) => a - b), ids, 'ids grow')
    t.same(await repos.events.get(ids[4]!), posted[4], 'get returns what create returned')
    t.equal(await repos.events.get(3_000_000_000), undefined)

    const mine = posted.filter((event) => event.clientId === other.id).map((event) => event.id)
    const matching = posted.filter((event) => event.name === 'Light' || (event.name === 'Door' && event.location === 'Hall')).map((event) => event.id)
    t.equal(matching.length, 6, 'Light anywhere, Door only in the Hall')
    for (const filter of [...filters, { after: ids[5]! }, { after: ids[5]!, limit: 1 }, { after: ids[3]!, maxItems: 2 }, { after: ids[1]!, maxItems: 2, offset: 1 }]) {
      const label = JSON.stringify(filter)
      t.same((await repos.events.list(filter)).map((event) => event.id), expectedIds(ids, filter), `events ${label}`)
      t.same((await repos.events.listByClient(other.id, filter)).map((event) => event.id), expectedIds(mine, filter), `by client ${label}`)
      t.same((await repos.events.listSubscribed(subscriber.id, filter)).map((event) => event.id), expectedIds(matching, filter), `subscribed ${label}`)
    }
    t.same(await repos.events.listSubscribed(subscriber.id, { limit: 1 }), [posted.find((event) => event.id === Math.max(...matching))], 'full records')
    t.same(await repos.events.listSubscribed(other.id, {}), [], 'no subscriptions, no events')
    t.same(await repos.events.listByClient(3_000_000_000, {}), [])
    t.same(await repos.events.listSubscribed(3_000_000_000, {}), [])
  })

  t.test('events: capped lists answer the same from the newest events held in memory and from the database', async (t) => {
    // 130 events, 100 held in memory (while notifications are heard, on PostgreSQL): a capped
    // list after a recent id is answered from memory, one after an older id by the database
    const { repos } = await twoListening(t, backend)
    const key = await repos.apikeys.create('write')
    const subscriber = await repos.clients.create({ device: 'Panel', location: null, apikeyId: key.id, subscriptions: [{ eventName: 'Light', location: null }] })
    const posted = await Promise.all(Array.from({ length: 130 }, (_, i) =>
      repos.events.create({ clientId: subscriber.id, device: 'dev', name: i % 3 === 0 ? 'Door' : 'Light', location: null, action: null, value: String(i) })))
    const ids = posted.map((event) => event.id)
    const lights = posted.filter((event) => event.name === 'Light').map((event) => event.id)
    const cursors = [0, ids[9]!, ids[29]!, ids[31]!, ids[100]!, ids[120]!, ids[125]!, ids[128]!, ids[129]!]
    const capped: ListFilter[] = cursors.flatMap((after) => [
      { after, maxItems: 7 }, { after, maxItems: 7, offset: 3 }, { after, maxItems: 7, before: after + 10 }, { after, maxItems: 200 }, { after, maxItems: 7, limit: 9 }
    ])
    // twice: PostgreSQL loads its window in the background after the first reads
    for (const pass of [1, 2]) {
      for (const filter of [...capped, { maxItems: 7 }, { maxItems: 7, offset: 95 }, { maxItems: 7, before: ids[50]! }]) {
        const label = `${JSON.stringify(filter)} (pass ${pass})`
        t.same((await repos.events.list(filter)).map((event) => event.id), expectedIds(ids, filter), `events ${label}`)
        t.same((await repos.events.listByClient(subscriber.id, filter)).map((event) => event.id), expectedIds(ids, filter), `by client ${label}`)
        t.same((await repos.events.listSubscribed(subscriber.id, filter)).map((event) => event.id), expectedIds(lights, filter), `subscribed ${label}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })

  t.test('events: posts made at the same moment share a commit, and each gets its own row', async (t) => {
    const { repos } = await open(t, backend)
    const key = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: 'Hall', apikeyId: key.id, subscriptions: [] })
    const created = await Promise.all(Array.from({ length: 60 }, (_, i) =>
      repos.events.create({ clientId, device: 'dev', name: `Burst${i % 3}`, location: null, action: null, value: String(i) })))
    t.same(created.map((event) => event.value), created.map((_, i) => String(i)), 'each caller gets the event it posted')
    const ids = created.map((event) => event.id)
    t.same([...ids].sort((a, b) => a - b), ids, 'ids follow the order of the calls')
    t.equal(new Set(ids).size, 60, 'no id twice')
    t.equal(new Set(created.map((event) => event.time)).size, 1, 'one group (its time is taken once), though larger than one insert statement takes on SQLite')
    for (const event of created) t.same(await repos.events.get(event.id), event, `event ${event.id} stored as returned`)
    t.same((await repos.events.list({})).map((event) => event.id), [...ids].reverse(), 'all of them listed, newest first')
  })

  t.test('events: an idempotency key answers its first event for 24 hours, then stores a new one; expired keys are purged', async (t) => {
    const start = Date.UTC(2026, 0, 1)
    let now = start
    const { repos, raw } = await open(t, backend, undefined, () => now)
    const a = await repos.apikeys.create('write')
    const b = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: null, apikeyId: a.id, subscriptions: [] })
    const post = (value: string, apikeyId: number, key: string) =>
      repos.events.create({ clientId, device: 'dev', name: 'Meter', location: null, action: null, value }, { apikeyId, key })

    const first = await post('1', a.id, 'k')
    t.same(first, { id: first.id, clientId, device: 'dev', name: 'Meter', location: null, action: null, value: '1', time: start }, 'a new key: a new event')
    const once = await post('x', a.id, 'once')
    now = start + IDEMPOTENCY_WINDOW_MS - 1
    t.same(await post('2', a.id, 'k'), { ...first, replayed: true }, 'a millisecond before the day is over: the first event, as stored')
    const fromB = await post('3', b.id, 'k')
    t.notOk(fromB.replayed, 'the same key of another API key: a new event')
    now = start + IDEMPOTENCY_WINDOW_MS
    const next = await post('4', a.id, 'k')
    t.same(next, { id: next.id, clientId, device: 'dev', name: 'Meter', location: null, action: null, value: '4', time: now }, 'a day later: a new event')
    t.ok(next.id > fromB.id)
    t.same(await post('5', a.id, 'k'), { ...next, replayed: true }, 'which the key names from then on')
    t.same(await post('6', b.id, 'k'), { ...fromB, replayed: true }, 'the other API key\'s use of it is younger')

    const stored = await raw('select id, value from events order by id')
    t.same(stored.map((row) => [Number(row.id), row.value]), [[first.id, '1'], [once.id, 'x'], [fromB.id, '3'], [next.id, '4']], 'only the new events are stored')
    const keys = async () => (await raw('select apikey_id, "key", event_id, created from idempotency_keys order by apikey_id, "key"'))
      .map((row) => [Number(row.apikey_id), row.key, Number(row.event_id), Number(row.created)])
    const kept = [[a.id, 'k', next.id, start + IDEMPOTENCY_WINDOW_MS], [b.id, 'k', fromB.id, start + IDEMPOTENCY_WINDOW_MS - 1]]
    t.same(await keys(), [kept[0], [a.id, 'once', once.id, start], kept[1]], '\'k\' names its new event; \'once\', expired, is left until the next purge')
    now += PURGE_INTERVAL_MS
    const later = await post('7', a.id, 'later')
    t.same(await keys(), [kept[0], [a.id, 'later', later.id, now], kept[1]], 'which comes with a keyed post at most once a minute')
  })

  t.test('events: a group mixing keyed and plain posts stores them in order, and the newest events held stay right', async (t) => {
    const { repos, other } = await twoListening(t, backend)
    const key = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: null, apikeyId: key.id, subscriptions: [] })
    const post = (on: Repositories, value: string, idempotencyKey?: string) => on.events.create(
      { clientId, device: 'dev', name: 'Mixed', location: null, action: null, value },
      idempotencyKey === undefined ? undefined : { apikeyId: key.id, key: idempotencyKey })
    const earlier = await post(repos, 'earlier', 'seen')
    t.ok(await soon(async () => await repos.events.latestId() === earlier.id))
    const group = await Promise.all([
      post(repos, 'plain 1'), post(repos, 'keyed', 'new'), post(repos, 'again', 'new'), post(repos, 'retry', 'seen'), post(repos, 'plain 2')
    ])
    t.same(group.map((event) => event.value), ['plain 1', 'keyed', 'keyed', 'earlier', 'plain 2'], 'each post answered: its event, or the one its key names')
    t.same(group.map((event) => event.replayed ?? false), [false, false, true, true, false])
    t.same(new Set(group.map((event) => event.time)).size, 2, 'one group (and the earlier event)')
    const fresh = [group[0]!, group[1]!, group[4]!].map((event) => event.id)
    t.ok(fresh[0]! > earlier.id && fresh[0]! < fresh[1]! && fresh[1]! < fresh[2]!, 'new ids in the order of the posts')
    const after = await post(other.repos, 'elsewhere')
    const everything = [after.id, ...[...fresh].reverse(), earlier.id]
    t.ok(await soon(async () => await repos.events.latestId() === after.id), 'another instance\'s post is seen')
    t.same((await repos.events.list({})).map((event) => event.id), everything, 'the newest events held: each new one once, no replay')
    t.same((await repos.events.list({ after: earlier.id })).map((event) => event.id), everything.slice(0, -1))
    t.same((await other.repos.events.list({})).map((event) => event.id), everything, 'as the other instance lists them')
  })

  t.test('text: stored and compared exactly — case, accents, trailing spaces; 4-byte characters in every field', async (t) => {
    const { repos } = await open(t, backend)
    const key = await repos.apikeys.create('write')
    const rare = '😀 𠜎 ẞ'
    const { id: subscriber } = await repos.clients.create({
      device: `dev ${rare}`,
      location: `Hall ${rare}`,
      apikeyId: key.id,
      subscriptions: [{ eventName: 'Light', location: null }, { eventName: 'Door', location: 'Hall' }, { eventName: rare, location: rare }]
    })
    const byName = (a: { eventName: string }, b: { eventName: string }) => a.eventName < b.eventName ? -1 : 1
    t.same((await repos.clients.subscriptions(subscriber)).sort(byName), [
      { eventName: 'Door', location: 'Hall' }, { eventName: 'Light', location: null }, { eventName: rare, location: rare }
    ], 'subscriptions read back exactly')
    t.match(await repos.clients.get(subscriber), { device: `dev ${rare}`, location: `Hall ${rare}` }, 'device and location read back exactly')
    const post = (name: string, location: string | null = null) =>
      repos.events.create({ clientId: subscriber, device: rare, name, location, action: rare, value: `${rare} ` })
    const misses = [
      await post('light'), await post('LIGHT'), await post('Light '), await post(' Light'), await post('Lïght'),
      await post('Door', 'hall'), await post('Door', 'Hall '), await post('Door', 'Häll'), await post(rare, `${rare} `), await post('😁', rare)
    ]
    const hits = [await post('Light'), await post('Light', 'Hall'), await post('Door', 'Hall'), await post(rare, rare)]
    t.same((await repos.events.listSubscribed(subscriber, {})).map((event) => event.id), hits.map((event) => event.id).reverse(),
      'only the exact name (and location) match: not light, LIGHT, "Light ", " Light", Lïght, hall, "Hall ", Häll')
    t.same((await repos.events.listAfter(0, 100, subscriber)).map((event) => event.id), hits.map((event) => event.id), 'the streams\' catch-up too')
    for (const event of [...misses, ...hits]) {
      t.same(await repos.events.get(event.id), { ...event }, `event ${event.id} (${JSON.stringify(event.name)}) reads back exactly`)
    }
  })

  t.test('events: reads see what another connection committed', async (t) => {
    const { repos, raw } = await open(t, backend)
    const key = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: 'Hall', apikeyId: key.id, subscriptions: [{ eventName: 'Outside', location: null }] })
    const first = await repos.events.create({ clientId, device: 'dev', name: 'Outside', location: null, action: null, value: '1' })
    t.equal(await repos.events.latestId(), first.id)
    t.same(await repos.events.listSubscribed(clientId, { after: first.id }), [], 'nothing after the latest')
    await raw(`insert into events (client_id, device, name, location, action, value, time) values (${clientId}, 'script', 'Outside', null, null, '2', ${Date.now()})`)
    // SQLite: seen within CHANGE_CHECK_MS; PostgreSQL without notifications heard: at once
    t.ok(await soon(async () => await repos.events.latestId() > first.id), 'the latest id moved')
    const latest = await repos.events.latestId()
    t.same((await repos.events.list({ limit: 1 })).map((event) => event.value), ['2'], 'the newest event is the other connection\'s')
    t.same((await repos.events.listSubscribed(clientId, { after: first.id })).map((event) => event.id), [latest], 'a poll after the old latest finds it')
    t.same((await repos.events.listByClient(clientId, { after: first.id })).map((event) => event.id), [latest])
    t.same((await repos.events.listAfter(first.id, 10)).map((event) => event.id), [latest])
    const mine = await repos.events.create({ clientId, device: 'dev', name: 'Outside', location: null, action: null, value: '3' })
    t.same((await repos.events.list({ limit: 3 })).map((event) => event.value), ['3', '2', '1'], 'and its own newer post on top')
    t.equal(await repos.events.latestId(), mine.id)
  })

  t.test('events: while notifications are heard, another instance\'s posts are seen soon, its own at once', async (t) => {
    // on PostgreSQL the newest events are kept in memory only while notifications are heard
    const { repos, other } = await twoListening(t, backend)
    const key = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: 'Hall', apikeyId: key.id, subscriptions: [{ eventName: 'Outside', location: null }] })
    const post = (on: Repositories, value: string) =>
      on.events.create({ clientId, device: 'dev', name: 'Outside', location: null, action: null, value })
    const newest = async (count: number) => (await repos.events.list({ limit: count })).map((event) => event.value)

    const first = await post(repos, '1')
    t.same(await newest(1), ['1'], 'its own post at once')
    t.ok(await soon(async () => await repos.events.latestId() === first.id), 'the latest id')
    t.same(await repos.events.listSubscribed(clientId, { after: first.id }), [], 'nothing after the latest')

    const second = await post(other.repos, '2')
    t.ok(await soon(async () => await repos.events.latestId() === second.id), 'another instance\'s post is seen')
    t.same(await newest(2), ['2', '1'])
    t.same((await repos.events.listSubscribed(clientId, { after: first.id })).map((event) => event.id), [second.id])
    t.same((await repos.events.listByClient(clientId, { after: first.id })).map((event) => event.id), [second.id])

    for (let i = 3; i <= 5; i++) {
      const mine = await post(repos, String(i))
      t.same(await newest(i), Array.from({ length: i }, (_, n) => String(i - n)), `its own post ${i} at once, on top`)
      t.equal(await repos.events.latestId(), mine.id)
      t.same(await repos.events.listSubscribed(clientId, { after: mine.id }), [])
    }
  })

  t.test('notifications: this instance\'s commits are told, with the events when told at once; with everyCommit, another instance\'s too', async (t) => {
    const { repos } = await open(t, backend)
    const other = await open(t, backend, repos)
    const told: CommittedEvents[] = []
    const listening = await repos.notifications.listen((committed) => { told.push(committed) }, () => {})
    t.teardown(() => listening.close())
    t.ok(repos.notifications.listening(), 'listening')
    const key = await repos.apikeys.create('write')
    const { id: clientId } = await repos.clients.create({ device: 'dev', location: null, apikeyId: key.id, subscriptions: [] })
    const post = (on: Repositories) => on.events.create({ clientId, device: 'dev', name: 'Light', location: null, action: null, value: null })

    const mine = await post(repos)
    const toldAtOnce = told.some((committed) => committed.latest === mine.id)
    const theirs = await post(other.repos)
    const last = await post(repos)
    t.ok(await soon(async () => told.some((committed) => committed.latest === last.id)), 'the last commit is told')
    const toldEvents = told.flatMap((committed) => committed.events ?? [])
    if (backend === 'mariadb') {
      // a look every pollInterval tells what committed since the last one, by its highest id:
      // the other's commit and this instance's next one may be told as one
      const latests = told.map((committed) => committed.latest!)
      t.equal(latests[0], mine.id, 'this instance\'s commit, told at once')
      t.equal(latests.at(-1), last.id, 'the last commit')
      t.ok(latests.every((id, i) => i === 0 || id > latests[i - 1]!), `in ascending order: ${JSON.stringify(latests)}`)
    } else if (repos.notifications.everyCommit) {
      t.same(told.map((committed) => committed.latest), [mine.id, theirs.id, last.id], 'each commit, this instance\'s and the other\'s, by its highest id')
    } else {
      t.ok(toldAtOnce, 'told before create() resolved')
      t.same(toldEvents, [mine, last], 'this process\'s own commits, with their events; not the other connection\'s')
      t.same(told.map((committed) => committed.latest), [mine.id, last.id])
    }
    t.same(toldEvents.filter((event) => event.id === theirs.id), [], 'another process\'s events are never told as this one\'s')
  })

  t.test('sessions: one ended or whose key is revoked through another connection is refused', async (t) => {
    // on PostgreSQL the cache is used only while notifications are heard
    const { repos, other } = await twoListening(t, backend)
    const key = await repos.apikeys.create('read')
    const first = await repos.clients.create({ device: 'a', location: null, apikeyId: key.id, subscriptions: [] })
    const second = await repos.clients.create({ device: 'b', location: null, apikeyId: key.id, subscriptions: [] })
    t.equal(repos.clients.cachedSession(first.sessionKey), undefined, 'not held before its first lookup')
    t.ok(await repos.clients.findBySession(first.sessionKey))
    t.equal(repos.clients.cachedSession(first.sessionKey)?.id, first.id, 'held once looked up')
    t.ok(await repos.clients.findBySession(first.sessionKey), 'looked up twice')
    t.ok(await repos.clients.findBySession(second.sessionKey))

    await other.repos.clients.end(first.id, Date.now())
    t.ok(await refusedSoon(() => repos.clients.findBySession(first.sessionKey)), 'the ended session')
    t.equal(repos.clients.cachedSession(first.sessionKey), undefined, 'the ended session is no longer held')
    t.ok(await repos.clients.findBySession(second.sessionKey), 'the other one still works')
    t.ok(await other.repos.apikeys.revoke(key.id, Date.now()))
    t.ok(await soon(async () => repos.clients.cachedSession(second.sessionKey) === undefined), 'a session of the key revoked elsewhere is let go')
    t.ok(await refusedSoon(() => repos.clients.findBySession(second.sessionKey)), 'a session of the revoked key')

    const mine = await repos.clients.create({ device: 'c', location: null, apikeyId: (await repos.apikeys.create('read')).id, subscriptions: [] })
    t.ok(await repos.clients.findBySession(mine.sessionKey))
    t.ok(repos.clients.cachedSession(mine.sessionKey))
    await repos.clients.end(mine.id, Date.now())
    t.equal(repos.clients.cachedSession(mine.sessionKey), undefined, 'its own end: let go at once')
    t.equal(await repos.clients.findBySession(mine.sessionKey), undefined, 'its own end: refused at once')
  })

  t.test('access: ended() names the sessions ended or of a revoked key, in one query over any number of ids', async (t) => {
    const { repos } = await open(t, backend)
    const kept = await repos.apikeys.create('read')
    const revoked = await repos.apikeys.create('write')
    const client = (apikeyId: number) => repos.clients.create({ device: null, location: null, apikeyId, subscriptions: [] })
    const live = await client(kept.id)
    const ended = await client(kept.id)
    const ofRevoked = [await client(revoked.id), await client(revoked.id)]
    t.same(await repos.access.ended([]), [], 'no ids, no answer')
    t.same(await repos.access.ended([live.id, ended.id, ...ofRevoked.map((c) => c.id)]), [], 'none ended yet')
    await repos.clients.end(ended.id, Date.now())
    await repos.apikeys.revoke(revoked.id, Date.now())
    const answer = await repos.access.ended([live.id, ended.id, ...ofRevoked.map((c) => c.id), 999_999])
    t.same([...answer].sort((a, b) => a - b), [ended.id, ...ofRevoked.map((c) => c.id)], 'the ended one and both of the revoked key; unknown ids are not named')
    const many = Array.from({ length: 5000 }, (_, i) => i + 1)
    t.same([...await repos.access.ended(many)].sort((a, b) => a - b), [ended.id, ...ofRevoked.map((c) => c.id)], '5,000 ids in one statement')
  })

  t.test('access: listeners hear this connection\'s ends and revocations by name, before they resolve', async (t) => {
    const { repos } = await open(t, backend)
    const heard: AccessEnded[] = []
    const stop = repos.access.listen((ended) => heard.push(ended))
    const key = await repos.apikeys.create('read')
    const admin = await repos.apikeys.create('admin')
    const { id } = await repos.clients.create({ device: null, location: null, apikeyId: key.id, subscriptions: [] })
    await repos.clients.end(id, Date.now())
    t.same(heard, [{ clientIds: [id] }], 'the session, by client id')
    await repos.apikeys.revoke(key.id, Date.now())
    t.same(heard.at(-1), { apikeyIds: [key.id] }, 'the key, by id')
    const count = heard.length
    t.equal((await repos.apikeys.revoke(admin.id, Date.now())).outcome, 'last-admin')
    t.equal((await repos.apikeys.revoke(999, Date.now())).outcome, 'not-found')
    t.equal(heard.length, count, 'nothing heard when nothing was revoked')
    stop()
    await repos.clients.end(id, Date.now())
    t.equal(heard.length, count, 'a removed listener hears nothing')
  })

  t.test('access: another instance\'s end and revocation are heard (PostgreSQL, MariaDB: by name; SQLite: as a change to re-check)', async (t) => {
    const { repos, other } = await twoListening(t, backend)
    const heard: AccessEnded[] = []
    t.teardown(repos.access.listen((ended) => heard.push(ended)))
    const key = await other.repos.apikeys.create('read')
    const { id } = await other.repos.clients.create({ device: null, location: null, apikeyId: key.id, subscriptions: [] })
    // what the listener heard up to now (SQLite: the other connection's inserts) does not count
    repos.access.look()
    heard.length = 0
    const heardSoon = async (expected: AccessEnded) => {
      const until = Date.now() + 1000
      while (Date.now() < until) {
        repos.access.look()
        if (heard.some((ended) => JSON.stringify(ended) === JSON.stringify(expected))) return true
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      return false
    }
    await other.repos.clients.end(id, Date.now())
    t.ok(await heardSoon(backend === 'sqlite' ? 'unknown' : { clientIds: [id] }), `the end: ${JSON.stringify(heard)}`)
    heard.length = 0
    await other.repos.apikeys.revoke(key.id, Date.now())
    t.ok(await heardSoon(backend === 'sqlite' ? 'unknown' : { apikeyIds: [key.id] }), `the revocation: ${JSON.stringify(heard)}`)
    heard.length = 0
    repos.access.look()
    t.same(heard, [], 'nothing more once seen')
  })
})

/** true when `check` holds within 800 ms (a PostgreSQL instance hears of other commits through a notification). */
async function soon (check: () => Promise<boolean>): Promise<boolean> {
  const until = Date.now() + 800
  for (;;) {
    if (await check()) return true
    if (Date.now() > until) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * true when `lookup` finds nothing within 800 ms: SQLite sees the other connection's commit
 * at once; a PostgreSQL instance hears of it through a notification (and never uses a
 * cached session for more than a second).
 */
async function refusedSoon (lookup: () => Promise<unknown>): Promise<boolean> {
  const until = Date.now() + 800
  for (;;) {
    if (await lookup() === undefined) return true
    if (Date.now() > until) return false
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
