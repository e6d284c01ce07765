import { fileURLToPath } from 'node:url'
import { and, asc, count, desc, eq, gt, gte, isNotNull, isNull, max, or, sql } from 'drizzle-orm'
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import type { PgColumn, PgSelect } from 'drizzle-orm/pg-core'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import type { Permission } from '../schemas/apikeys.js'
import type { CredConfig } from '../schemas/config.js'
import { apikeys, clients, events, subscriptions } from './schema/pg.js'
import {
  apikeyColumns, clientColumns, depth, eventColumns, idIn, idWindow, idsValue, insertedEvents, limit, listRead, offset, pageValues, subscriptionMatches,
  type ListStatements
} from './queries.js'
import {
  DatabaseUnavailableError,
  type AccessEnded, type ApiKeyRecord, type ClockOption, type EventRecord, type IdempotencyKey, type ListFilter, type NewClient, type NewEventRecord,
  type PostedEvent, type Repositories, type RevokeResult, type SessionRecord
} from './repositories.js'
import { AccessListeners } from './access.js'
import { afterPendingIo, groupCommit } from './batch.js'
import { IDEMPOTENCY_WINDOW_MS, keyOf, keysOf, purgeSchedule, sortOut, type QueuedEvent } from './idempotency.js'
import { NotifiedRecentEvents } from './recent-events.js'
import { SessionCache } from './session-cache.js'
import { hashSecret, newApiKey, newSessionKey } from './secrets.js'

const migrationsFolder = fileURLToPath(new URL('./migrations/pg', import.meta.url))

/**
 * Names of the advisory locks cred takes (as `hashtextextended(name, 0)`), so that an
 * operator looking at pg_locks can tell them apart. Exported for the tests.
 */
export const lockNames = {
  /** held on a dedicated connection while one instance applies the migrations */
  migrations: 'cred-server:migrations',
  /** held by each event insert until it commits, so event ids commit in order */
  eventOrder: 'cred-server:event-order',
  /** held by each revocation until it commits, so the last admin key check holds across instances */
  revocation: 'cred-server:revocation'
} as const

/** The LISTEN/NOTIFY channel that tells every instance new events were committed. */
export const eventsChannel = 'cred_events'
/**
 * Told when a session ends (payload `client:<id>`) or a key is revoked (`apikey:<id>`): every
 * instance drops its cached sessions and ends what it holds open for them. Any other payload
 * (an empty one from an older instance) means "something ended": the instance re-checks.
 */
export const sessionsChannel = 'cred_sessions'

/** What a notification on `sessionsChannel` says ended. */
export function endedByPayload (payload: string): AccessEnded {
  const match = /^(client|apikey):(\d{1,10})$/.exec(payload)
  if (match === null) return 'unknown'
  const id = Number(match[2])
  return match[1] === 'client' ? { clientIds: [id] } : { apikeyIds: [id] }
}

/** How long PostgreSQL work may take before the caller gets DatabaseUnavailableError. */
export interface PostgresTimeouts {
  /** seconds to open a connection: TCP, TLS, start-up and authentication */
  connectSeconds: number
  /** the server's statement_timeout, in ms (migrations run without one) */
  statementMs: number
  /**
   * ms one repository call may take in all, connecting included. A call still unanswered
   * then fails and the pool is replaced: a peer that vanished without a reset, or a proxy
   * that accepts connections and closes them unanswered (the driver then retries forever),
   * never holds a request longer than this.
   */
  callMs: number
}

export const defaultTimeouts: PostgresTimeouts = { connectSeconds: 5, statementMs: 10_000, callMs: 12_000 }

export interface PostgresOptions extends ClockOption {
  timeouts?: PostgresTimeouts
}

type PostgresSettings = CredConfig['database']
type PgDb = PostgresJsDatabase<Record<string, never>>

/**
 * Every statement of the PostgreSQL repositories, unprepared (scripts/explain-plans.ts reads
 * their SQL). The SQLite twin is `sqliteQueries` in ./sqlite.ts; they differ only where the
 * dialects do (the bigint id bounds of `idWindow`).
 */
export function postgresQueries (db: PgDb) {
  const window = (id: Parameters<typeof idWindow>[1]) => idWindow('postgresql', id)
  /** A list's two statements (see listPage), from a function making its query unordered. */
  const bothWays = <T extends PgSelect>(query: () => T, id: PgColumn): ListStatements<T> => ({
    newest: query().orderBy(desc(id)).limit(limit).offset(offset),
    oldest: query().orderBy(asc(id)).limit(limit)
  })
  // The subscriptions query differs from SQLite's join: for each of the client's subscriptions
  // (LATERAL), its newest `limit + offset` events in the id window, read backwards on
  // events_name_id_idx (name, id); then those few are merged. PostgreSQL's planner would
  // otherwise walk the primary key newest-first, hoping for an early match, through the whole
  // table when the subscribed names are rare (docs/query-plans.md).
  const matched = db.select(eventColumns(events)).from(events)
    .where(and(subscriptionMatches(events, subscriptions), window(events.id)))
    .orderBy(desc(events.id)).limit(depth)
    .as('matched')
  // oldest first (and the catch-up of streams): per subscription its oldest `limit` events in the window
  const matchedOldest = db.select(eventColumns(events)).from(events)
    .where(and(subscriptionMatches(events, subscriptions), window(events.id)))
    .orderBy(asc(events.id)).limit(limit)
    .as('matched_oldest')
  const ofClient = eq(subscriptions.clientId, sql.placeholder('clientId'))
  return {
    apikeyByHash: db.select(apikeyColumns(apikeys)).from(apikeys)
      .where(and(eq(apikeys.keyHash, sql.placeholder('hash')), isNull(apikeys.revoked))),
    apikeyById: db.select(apikeyColumns(apikeys)).from(apikeys).where(eq(apikeys.id, sql.placeholder('id'))),
    apikeyList: bothWays(() => db.select(apikeyColumns(apikeys)).from(apikeys).where(window(apikeys.id)).$dynamic(), apikeys.id),
    apikeyCount: db.select({ n: count() }).from(apikeys),
    activeAdminCount: db.select({ n: count() }).from(apikeys)
      .where(and(eq(apikeys.permission, 'admin'), isNull(apikeys.revoked))),
    apikeyRevoke: db.update(apikeys).set({ revoked: sql`${sql.placeholder('now')}` })
      .where(eq(apikeys.id, sql.placeholder('id'))),
    clientEnd: db.update(clients).set({ ended: sql`${sql.placeholder('now')}` })
      .where(eq(clients.id, sql.placeholder('id'))),
    sessionByHash: db.select({ ...clientColumns(clients), apikeyId: clients.apikeyId, permission: apikeys.permission })
      .from(clients).innerJoin(apikeys, eq(apikeys.id, clients.apikeyId))
      .where(and(eq(clients.sessionHash, sql.placeholder('hash')), isNull(clients.ended), isNull(apikeys.revoked))),
    // the open streams' and long polls' sessions that ended or whose key was revoked
    sessionsEnded: db.select({ id: clients.id }).from(clients).innerJoin(apikeys, eq(apikeys.id, clients.apikeyId))
      .where(and(idIn('postgresql', clients.id), or(isNotNull(clients.ended), isNotNull(apikeys.revoked)))),
    clientTouch: db.update(clients).set({ lastActive: sql`${sql.placeholder('now')}` })
      .where(eq(clients.id, sql.placeholder('id'))),
    clientById: db.select(clientColumns(clients)).from(clients).where(eq(clients.id, sql.placeholder('id'))),
    clientsActive: bothWays(() => db.select(clientColumns(clients)).from(clients)
      .where(and(gte(clients.lastActive, sql.placeholder('since')), isNull(clients.ended), window(clients.id))).$dynamic(), clients.id),
    clientsActiveCount: db.select({ n: count() }).from(clients)
      .where(and(gte(clients.lastActive, sql.placeholder('since')), isNull(clients.ended))),
    eventById: db.select(eventColumns(events)).from(events).where(eq(events.id, sql.placeholder('id'))),
    // (oldest first, with no upper bound, these are also the catch-up of streams)
    eventList: bothWays(() => db.select(eventColumns(events)).from(events).where(window(events.id)).$dynamic(), events.id),
    eventsByClient: bothWays(() => db.select(eventColumns(events)).from(events)
      .where(and(eq(events.clientId, sql.placeholder('clientId')), window(events.id))).$dynamic(), events.id),
    eventsSubscribed: {
      newest: db.select(eventColumns(matched)).from(subscriptions).crossJoinLateral(matched).where(ofClient)
        .orderBy(desc(matched.id)).limit(limit).offset(offset),
      oldest: db.select(eventColumns(matchedOldest)).from(subscriptions).crossJoinLateral(matchedOldest).where(ofClient)
        .orderBy(asc(matchedOldest.id)).limit(limit)
    },
    subscriptionsOf: db.select({ eventName: subscriptions.eventName, location: subscriptions.location })
      .from(subscriptions).where(eq(subscriptions.clientId, sql.placeholder('clientId'))),
    latestEventId: db.select({ id: max(events.id) }).from(events)
  }
}

/** Prepares both statements of a list, as `name` and `name`_oldest. */
const prepareBoth = <P>(list: ListStatements<{ prepare: (name: string) => P }>, name: string): ListStatements<P> =>
  ({ newest: list.newest.prepare(name), oldest: list.oldest.prepare(`${name}_oldest`) })

/** Runs a list (see listPage) with the values of `filter` and `values`; answers newest first. */
async function readList<T> (list: ListStatements<{ execute: (values: Record<string, unknown>) => Promise<T[]> }>, filter: ListFilter, values: Record<string, unknown> = {}): Promise<T[]> {
  const read = listRead('postgresql', filter)
  return read.answer(await read.pick(list).execute({ ...values, ...read.values }))
}

/**
 * One group of events, inserted in order under the event-order lock, with a notification (see
 * insertEvent). It answers one row: the new ids in ascending order, comma-separated.
 */
const insertGroupStatement = `
  with locked as materialized (select pg_advisory_xact_lock(hashtextextended($1, 0))),
  ins as (
    insert into events (client_id, device, name, location, action, value, time)
    select e.client_id, e.device, e.name, e.location, e.action, e.value, $2::bigint
    from locked, json_to_recordset($3::text::json)
      as e(client_id integer, device text, name text, location text, action text, value text)
    returning id
  )
  select string_agg(id::text, ',' order by id) as ids, pg_notify($4, max(id)::text) from ins`

/**
 * Posts with an Idempotency-Key (./idempotency.ts): the events the keys of a group ($1, a JSON
 * array of {apikey_id, key}) name while younger than $2, one row per key found, on the
 * primary key (apikey_id, key)...
 */
const idempotentEventsStatement = `
  select w.apikey_id, w.key, e.id, e.client_id, e.device, e.name, e.location, e.action, e.value, e.time
  from json_to_recordset($1::text::json) as w(apikey_id integer, key text)
  join idempotency_keys k on k.apikey_id = w.apikey_id and k.key = w.key
  join events e on e.id = k.event_id
  where k.created > $2::bigint`

/** ...the keys naming their new events ($1: {apikey_id, key, event_id}; an expired key names the new one now)... */
const rememberKeysStatement = `
  insert into idempotency_keys (apikey_id, key, event_id, created)
  select r.apikey_id, r.key, r.event_id, $2::bigint
  from json_to_recordset($1::text::json) as r(apikey_id integer, key text, event_id integer)
  on conflict (apikey_id, key) do update set event_id = excluded.event_id, created = excluded.created`

/** ...and the expired keys deleted, a range on idempotency_keys_created_idx. */
const purgeKeysStatement = 'delete from idempotency_keys where created <= $1::bigint'

/** A row of idempotentEventsStatement as postgres.js reads it (bigint as text). */
interface IdempotentEventRow {
  apikey_id: number
  key: string
  id: number
  client_id: number
  device: string | null
  name: string
  location: string | null
  action: string | null
  value: string | null
  time: string
}

/** Ids are `integer` columns: a larger (or fractional) id names no row, and must not reach the server as one. */
const isRowId = (id: number): boolean => Number.isInteger(id) && id >= 1 && id <= 2_147_483_647

/** host, port and database as the driver will use them (after its PG* environment defaults). */
interface Target { host: string, port: number, database: string }

const describe = (target: Target): string => `${target.host}:${target.port}/${target.database}`

/** Errors of the network or the driver's connection handling, not of the statement. */
const connectionCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED'
])

/**
 * SQLSTATEs that mean "the database cannot serve us right now": connection exceptions (08),
 * insufficient resources (53: too many connections, disk full), operator intervention (57:
 * shutdown, starting up, statement timeout), a dropped database (3D000), rejected
 * credentials (28) and a read-only server after a failover (25006).
 */
const unavailableStates = /^(08|53|57|28|3D000$|25006$)/

/** The driver's error under drizzle's "Failed query" wrapper. */
function rootCause (err: unknown): unknown {
  let current = err
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) current = current.cause
  return current
}

function errorCode (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function isUnavailable (err: unknown): boolean {
  const cause = rootCause(err)
  const code = errorCode(cause)
  if (code === undefined) return false
  if (cause instanceof Error && cause.name === 'PostgresError') return unavailableStates.test(code)
  return connectionCodes.has(code)
}

/** Why a connection failed, in words, on one line. */
function reason (err: unknown, timeouts: PostgresTimeouts): string {
  const cause = rootCause(err)
  const code = errorCode(cause)
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused (ECONNREFUSED)'
    case 'CONNECT_TIMEOUT': return `no answer within ${timeouts.connectSeconds} s (CONNECT_TIMEOUT)`
    case 'ENOTFOUND': case 'EAI_AGAIN': return `host name not found (${code})`
    case 'CONNECTION_CLOSED': return 'the server closed the connection (CONNECTION_CLOSED)'
    default: {
      const message = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]!.trim()
      return code === undefined || message.includes(code) ? message : `${message} (${code})`
    }
  }
}

/** The one line cred-server and cred-gen print when PostgreSQL cannot be reached at start. */
function cannotConnect (target: Target, err: unknown, timeouts: PostgresTimeouts): DatabaseUnavailableError {
  return new DatabaseUnavailableError(
    `cannot connect to PostgreSQL at ${target.host}:${target.port} (database '${target.database}'): ${reason(err, timeouts)}`,
    { cause: err })
}

function connectionOptions (settings: PostgresSettings, timeouts: PostgresTimeouts, statementTimeoutMs: number) {
  const port = String(settings.port).trim()
  if (port !== '' && !(/^\d+$/.test(port) && Number(port) <= 65535)) {
    throw new DatabaseUnavailableError(`invalid PostgreSQL port '${port}' in the database settings`)
  }
  return {
    host: settings.host === '' ? undefined : settings.host,
    port: port === '' ? undefined : Number(port),
    user: settings.user === '' ? undefined : settings.user,
    password: settings.password === '' ? undefined : settings.password,
    database: settings.database === '' ? undefined : settings.database,
    connect_timeout: timeouts.connectSeconds,
    // A request during an outage tries to connect at once and fails at once; the driver's
    // default backoff would make later requests wait up to 20 s before even trying.
    backoff: () => 0,
    // cred uses no array types: skip the type lookup on every new connection
    fetch_types: false,
    // "schema already exists, skipping" and the like are not worth a line on stdout
    onnotice: () => {},
    connection: {
      application_name: 'cred-server',
      statement_timeout: statementTimeoutMs,
      // Plan each execution with its values: a generic plan of the prepared list statements
      // cannot tell `after=<a minute ago>` from `after=0` and may walk the whole table for it.
      plan_cache_mode: 'force_custom_plan'
    }
  }
}

function connect (settings: PostgresSettings, options: postgres.Options<Record<string, postgres.PostgresType>>, max: number) {
  const url = settings.url
  return url === undefined ? postgres({ ...options, max }) : postgres(url, { ...options, max })
}

function targetOf (client: postgres.Sql): Target {
  return { host: client.options.host[0] ?? 'localhost', port: client.options.port[0] ?? 5432, database: client.options.database }
}

/** `work`, or a rejection with `expired()` once `ms` have passed without an answer. */
function deadline<T> (work: Promise<T>, ms: number, expired: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(expired()), ms)
    work.then(resolve, reject).finally(() => clearTimeout(timer))
  })
}

const noAnswer = (timeouts: PostgresTimeouts) =>
  Object.assign(new Error(`no answer within ${timeouts.connectSeconds} s`), { code: 'CONNECT_TIMEOUT' })

/**
 * Applies the migrations on a dedicated connection holding a session advisory lock, so that
 * instances starting together take turns: the first applies them, the others then find them
 * applied. (drizzle's migrator alone would race on CREATE SCHEMA / CREATE TABLE.)
 */
async function migrateOnce (settings: PostgresSettings, timeouts: PostgresTimeouts): Promise<Target> {
  // no statement_timeout here: a long migration must finish, and waiting for the lock is waiting for one
  const client = connect(settings, connectionOptions(settings, timeouts, 0), 1)
  const target = targetOf(client)
  let answered = false
  try {
    try {
      // the driver's connect_timeout does not cover a server that closes connections unanswered
      await deadline(client`select 1`, timeouts.connectSeconds * 1000, () => noAnswer(timeouts))
      answered = true
      await client`select pg_advisory_lock(hashtextextended(${lockNames.migrations}, 0))`
    } catch (err) {
      throw cannotConnect(target, err, timeouts)
    }
    try {
      await migrate(drizzle({ client }), { migrationsFolder })
      await client`select pg_advisory_unlock(hashtextextended(${lockNames.migrations}, 0))`
    } catch (err) {
      if (isUnavailable(err)) throw cannotConnect(target, err, timeouts)
      throw new DatabaseUnavailableError(
        `cannot apply migrations to PostgreSQL database ${describe(target)}: ${reason(err, timeouts)}`, { cause: err })
    }
  } finally {
    // ending the session also releases the lock if the unlock was never reached
    await client.end({ timeout: answered ? 1 : 0 })
  }
  return target
}

/**
 * LISTEN on a connection of its own (the pool's connections come and go). When that
 * connection drops, it listens again — retrying, a little slower each time up to every 2 s,
 * while the server is away — and calls `onConnected` once it is back, so the caller can
 * read what was committed meanwhile.
 */
async function listenForEvents (settings: PostgresSettings, timeouts: PostgresTimeouts, onEvents: (payload: string) => void, onConnected: () => void, onSessions: (payload: string) => void) {
  let closed = false
  let listening = false
  let attempt = 0
  let retry: NodeJS.Timeout | undefined
  // onnotify and onclose are options postgres.js's own listen() uses; its types leave them out
  const options = {
    ...connectionOptions(settings, timeouts, 0),
    idle_timeout: null,
    max_lifetime: null,
    onnotify: (channel: string, payload: string) => {
      if (channel === eventsChannel) onEvents(payload)
      else if (channel === sessionsChannel) onSessions(payload)
    },
    onclose: () => {
      listening = false
      if (!closed) scheduleListen()
    }
  } as unknown as postgres.Options<Record<string, postgres.PostgresType>>
  const client = connect(settings, options, 1)
  const listen = async () => {
    await client.unsafe(`listen ${eventsChannel}`)
    await client.unsafe(`listen ${sessionsChannel}`)
    attempt = 0
    // whatever changed while not listening went unnoticed
    onSessions('')
    listening = true
    onConnected()
  }
  function scheduleListen () {
    clearTimeout(retry)
    retry = setTimeout(() => {
      listen().catch(() => {
        attempt++
        if (!closed) scheduleListen()
      })
    }, Math.min(50 * 2 ** attempt, 2000))
  }
  await deadline(listen(), timeouts.callMs, () => noAnswer(timeouts)).catch(async (err: unknown) => {
    await client.end({ timeout: 0 })
    throw new DatabaseUnavailableError(`cannot listen for events on PostgreSQL: ${reason(err, timeouts)}`, { cause: err })
  })
  return {
    listening: () => listening,
    async close () {
      closed = true
      listening = false
      clearTimeout(retry)
      await client.end({ timeout: 1 })
    }
  }
}

/** The application_name of the connection that writes events (the others are 'cred-server'). */
export const writerApplicationName = 'cred-server events'

/**
 * A connection pool with the repositories' prepared statements on it, and the one connection
 * that inserts events. Groups of events are written one at a time (see insertEvent), so one
 * connection is enough, and keeping them on it keeps one PostgreSQL backend's caches warm:
 * spread over the pool's connections, each group ran on a backend that had not run one for a
 * while (about a fifth more PostgreSQL CPU per event under the benchmark).
 */
function openPool (settings: PostgresSettings, timeouts: PostgresTimeouts) {
  const options = connectionOptions(settings, timeouts, timeouts.statementMs)
  const client = connect(settings, options, settings.poolSize)
  // The insert's plan does not depend on its values, so the writer uses a generic plan, made
  // once, instead of planning the statement again on every execution (force_custom_plan, which
  // the list statements need): 270-295 -> 205-210 us of PostgreSQL CPU per 10-event group.
  const writer = connect(settings, {
    ...options,
    connection: { ...options.connection, application_name: writerApplicationName, plan_cache_mode: 'auto' }
  }, 1)
  const db: PgDb = drizzle({ client })
  const queries = postgresQueries(db)
  const statements = {
    apikeyByHash: queries.apikeyByHash.prepare('cred_apikey_by_hash'),
    apikeyById: queries.apikeyById.prepare('cred_apikey_by_id'),
    apikeyList: prepareBoth(queries.apikeyList, 'cred_apikey_list'),
    apikeyCount: queries.apikeyCount.prepare('cred_apikey_count'),
    sessionByHash: queries.sessionByHash.prepare('cred_session_by_hash'),
    sessionsEnded: queries.sessionsEnded.prepare('cred_sessions_ended'),
    clientTouch: queries.clientTouch.prepare('cred_client_touch'),
    clientById: queries.clientById.prepare('cred_client_by_id'),
    clientsActive: prepareBoth(queries.clientsActive, 'cred_clients_active'),
    clientsActiveCount: queries.clientsActiveCount.prepare('cred_clients_active_count'),
    eventById: queries.eventById.prepare('cred_event_by_id'),
    eventList: prepareBoth(queries.eventList, 'cred_event_list'),
    eventsByClient: prepareBoth(queries.eventsByClient, 'cred_events_by_client'),
    eventsSubscribed: prepareBoth(queries.eventsSubscribed, 'cred_events_subscribed'),
    subscriptionsOf: queries.subscriptionsOf.prepare('cred_subscriptions_of'),
    latestEventId: queries.latestEventId.prepare('cred_latest_event_id')
  }
  return {
    client,
    writer,
    db,
    statements,
    /** ends both (see `postgres.Sql.end` for `timeout`) */
    end: (timeout: number) => Promise.all([client.end({ timeout }), writer.end({ timeout })])
  }
}

type Pool = ReturnType<typeof openPool>

/**
 * Connects to PostgreSQL, applies migrations and returns the repositories over a pool of
 * `poolSize` connections. Connection failures, at start and later, are DatabaseUnavailableError
 * (a 503 for requests); the pool reconnects by itself on the next call once the server is back.
 */
export async function openPostgres (settings: PostgresSettings, { timeouts = defaultTimeouts, clock = Date.now }: PostgresOptions = {}): Promise<Repositories> {
  const target = await migrateOnce(settings, timeouts)
  const where = describe(target)
  let pool = openPool(settings, timeouts)
  let closed = false
  const listeners = new Set<Awaited<ReturnType<typeof listenForEvents>>>()
  const listening = () => listeners.size > 0 && [...listeners].every((listener) => listener.listening())
  // used only while this process hears about sessions ended and keys revoked elsewhere
  const sessions = new SessionCache(listening)
  const access = new AccessListeners()
  // the newest events, kept current by the notifications, while they are heard
  const recent = new NotifiedRecentEvents((count) => call(({ statements }) => readList(statements.eventList, { limit: count })), listening)
  /** true when nothing can come after `after`: a poll with nothing new needs no query */
  const nothingAfter = (after: number | undefined) => {
    if (after === undefined) return false
    const latest = recent.latestId()
    return latest !== undefined && after >= latest
  }

  /**
   * Runs one repository call on the current pool. Connection trouble becomes
   * DatabaseUnavailableError; so does a call unanswered after `callMs`, and then the pool it
   * ran on is replaced and ended, its connections with it, so the next call starts afresh.
   */
  function call<T> (work: (pool: Pool) => Promise<T>): Promise<T> {
    const used = pool
    return deadline(work(used), timeouts.callMs, () => {
      if (pool === used && !closed) {
        pool = openPool(settings, timeouts)
        void used.end(0).catch(() => {})
      }
      return new DatabaseUnavailableError(`PostgreSQL at ${where} did not answer within ${timeouts.callMs} ms`)
    }).catch((err: unknown) => {
      throw isUnavailable(err)
        ? new DatabaseUnavailableError(`PostgreSQL at ${where} is unavailable: ${reason(err, timeouts)}`, { cause: err })
        : err
    })
  }

  async function insertClient ({ db }: Pool, client: NewClient, sessionHash: string, now: number): Promise<number> {
    return db.transaction(async (tx) => {
      const [row] = await tx.insert(clients).values({
        device: client.device, location: client.location, sessionHash, apikeyId: client.apikeyId, created: now, lastActive: now
      }).returning({ id: clients.id })
      if (client.subscriptions.length > 0) {
        await tx.insert(subscriptions).values(client.subscriptions.map((s) => ({ clientId: row!.id, eventName: s.eventName, location: s.location })))
      }
      return row!.id
    })
  }

  // Ids come from a sequence, so two instances' inserts could commit out of id order and a
  // client polling `after=<highest id seen>` would skip the one that committed late. The
  // transaction lock makes each group of inserts take its ids and commit before the next one
  // starts, as SQLite's single writer does. Posts arriving while a group is being written wait
  // and go in the next group (group commit): one transaction and one WAL flush for all of them.
  // Each group gathers for a few turns of the event loop first (afterPendingIo), so that posts
  // sent by the clients the previous group just answered join it.
  //
  // The whole group is ONE statement, so one round trip: take the lock, insert the rows (the
  // sequence numbers them in array order, after the lock: the plan evaluates nextval above the
  // join with `locked`), and notify every listening instance with the highest id, which
  // PostgreSQL delivers when (and only if) the transaction commits.
  //
  // It is a named prepared statement: parsing and analysing the CTE each time cost about a
  // third of its time (1.66 -> 1.15 ms per 5-row group, one connection, nothing else running).
  // It runs on the pool's writer connection (openPool). It answers only the new ids, in order:
  // each stored row is the group's own values with its id and the time sent as $2, so reading
  // the rows back was work for nothing, most of it the driver's (a 10-row group in a loop, four
  // runs: 206-363 -> 162-256 us of cred-server CPU per group; the statement 832-919 -> 822-870 us).
  /** Inserts events with insertGroupStatement on `on`: the writer connection, or a transaction on it. */
  async function insertRows (on: Pick<postgres.Sql, 'unsafe'>, group: NewEventRecord[], time: number): Promise<EventRecord[]> {
    const rows = group.map((event) => ({
      client_id: event.clientId, device: event.device, name: event.name, location: event.location, action: event.action, value: event.value
    }))
    const [answer] = await on.unsafe<Array<{ ids: string }>>(insertGroupStatement,
      [lockNames.eventOrder, time, JSON.stringify(rows), eventsChannel], { prepare: true })
    return insertedEvents(group, answer!.ids.split(','), time)
  }

  // A group with idempotency keys is one transaction of several statements on the writer. The
  // event-order lock is taken first, by a statement of its own: the lookup after it then reads
  // with a snapshot taken once the lock is held, and so sees every key another instance
  // committed before it released the lock (in one statement, as insertGroupStatement, the
  // snapshot would predate the lock). The insert takes the lock again, which the transaction
  // already holds, and notifies as always. A group without keys stays one statement.
  const purge = purgeSchedule()
  function insertKeyed (writer: postgres.Sql, group: QueuedEvent[], keys: IdempotencyKey[], time: number) {
    return writer.begin(async (tx) => {
      await tx.unsafe('select pg_advisory_xact_lock(hashtextextended($1, 0))', [lockNames.eventOrder])
      const since = time - IDEMPOTENCY_WINDOW_MS
      const rows = await tx.unsafe<IdempotentEventRow[]>(idempotentEventsStatement,
        [JSON.stringify(keys.map((key) => ({ apikey_id: key.apikeyId, key: key.key }))), since])
      const found = new Map(rows.map((row) => [keyOf({ apikeyId: row.apikey_id, key: row.key }), {
        id: row.id, clientId: row.client_id, device: row.device, name: row.name, location: row.location, action: row.action, value: row.value, time: Number(row.time)
      }]))
      const sorted = sortOut(group, (key) => found.get(keyOf(key)))
      const added = sorted.fresh.length > 0 ? await insertRows(tx, sorted.fresh, time) : []
      const { answers, keyRows } = sorted.answers(added)
      if (keyRows.length > 0) {
        await tx.unsafe(rememberKeysStatement, [JSON.stringify(keyRows.map((row) => ({ apikey_id: row.apikeyId, key: row.key, event_id: row.eventId }))), time])
      }
      if (purge.due(time)) await tx.unsafe(purgeKeysStatement, [since])
      return { answers, added }
    })
  }

  const insertEvent = groupCommit((group: QueuedEvent[]) => call(async ({ writer }): Promise<PostedEvent[]> => {
    const time = clock()
    const keys = keysOf(group)
    if (keys.length === 0) {
      const committed = await insertRows(writer, group, time)
      recent.added(committed)
      return committed
    }
    const { answers, added } = await insertKeyed(writer, group, keys, time)
    recent.added(added)
    return answers
  }), { gather: afterPendingIo })

  return {
    kind: 'postgresql',
    location: where,
    apikeys: {
      create: (permission: Permission) => call(async ({ db }) => {
        const apikey = newApiKey()
        const [row] = await db.insert(apikeys).values({ keyHash: hashSecret(apikey), permission, created: Date.now() })
          .returning(apikeyColumns(apikeys))
        return { ...row!, apikey }
      }),
      findByKey: (apikey: string): Promise<ApiKeyRecord | undefined> =>
        call(async ({ statements }) => (await statements.apikeyByHash.execute({ hash: hashSecret(apikey) }))[0]),
      get: (id: number) => call(async ({ statements }) => isRowId(id) ? (await statements.apikeyById.execute({ id }))[0] : undefined),
      list: (filter: ListFilter) => call(({ statements }) => readList(statements.apikeyList, filter)),
      count: () => call(async ({ statements }) => (await statements.apikeyCount.execute())[0]?.n ?? 0),
      revoke: (id: number, now: number) => call(async ({ db }): Promise<RevokeResult> => {
        if (!isRowId(id)) return { outcome: 'not-found' }
        return db.transaction(async (tx): Promise<RevokeResult> => {
          await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${lockNames.revocation}, 0))`)
          const [key] = await tx.select(apikeyColumns(apikeys)).from(apikeys).where(eq(apikeys.id, id))
          if (key === undefined) return { outcome: 'not-found' }
          if (key.revoked !== null) return { outcome: 'revoked', apikey: key }
          if (key.permission === 'admin') {
            const [admins] = await tx.select({ n: count() }).from(apikeys)
              .where(and(eq(apikeys.permission, 'admin'), isNull(apikeys.revoked)))
            if ((admins?.n ?? 0) <= 1) return { outcome: 'last-admin' }
          }
          await tx.update(apikeys).set({ revoked: now }).where(eq(apikeys.id, id))
          await tx.execute(sql`select pg_notify(${sessionsChannel}, ${`apikey:${id}`})`)
          return { outcome: 'revoked', apikey: { ...key, revoked: now } }
        }).finally(() => sessions.clear())
      }).then((result) => {
        if (result.outcome === 'revoked') access.ended({ apikeyIds: [id] })
        return result
      })
    },
    clients: {
      create: (client: NewClient) => call(async (pool) => {
        const sessionKey = newSessionKey()
        const id = await insertClient(pool, client, hashSecret(sessionKey), Date.now())
        return { id, sessionKey }
      }),
      findBySession: (sessionKey: string): Promise<SessionRecord | undefined> => sessions.lookup(sessionKey,
        (key) => call(async ({ statements }) => (await statements.sessionByHash.execute({ hash: hashSecret(key) }))[0])),
      cachedSession: (sessionKey: string) => sessions.peek(sessionKey),
      touch: (id: number, now: number) => call(async ({ statements }) => {
        if (isRowId(id)) await statements.clientTouch.execute({ id, now })
      }),
      end: (id: number, now: number) => call(async ({ db }) => {
        if (!isRowId(id)) return
        await db.transaction(async (tx) => {
          await tx.update(clients).set({ ended: now }).where(eq(clients.id, id))
          await tx.execute(sql`select pg_notify(${sessionsChannel}, ${`client:${id}`})`)
        })
        sessions.clear()
        access.ended({ clientIds: [id] })
      }),
      get: (id: number) => call(async ({ statements }) => isRowId(id) ? (await statements.clientById.execute({ id }))[0] : undefined),
      listActive: (since: number, filter: ListFilter) => call(({ statements }) => readList(statements.clientsActive, filter, { since })),
      countActive: (since: number) => call(async ({ statements }) => (await statements.clientsActiveCount.execute({ since }))[0]?.n ?? 0),
      subscriptions: (id: number) => call(async ({ statements }) => isRowId(id) ? statements.subscriptionsOf.execute({ clientId: id }) : [])
    },
    events: {
      // grouped, under the event-order lock: see insertEvent
      create: (event: NewEventRecord, idempotency?: IdempotencyKey) => insertEvent(idempotency === undefined ? event : { ...event, idempotency }),
      get: (id: number) => call(async ({ statements }) => isRowId(id) ? (await statements.eventById.execute({ id }))[0] : undefined),
      list: async (filter: ListFilter) => recent.list(filter) ?? call(({ statements }) => readList(statements.eventList, filter)),
      listByClient: async (clientId: number, filter: ListFilter) => nothingAfter(filter.after) ? []
        : call(async ({ statements }) => isRowId(clientId) ? readList(statements.eventsByClient, filter, { clientId }) : []),
      listSubscribed: async (clientId: number, filter: ListFilter) => nothingAfter(filter.after) ? []
        : call(async ({ statements }) => isRowId(clientId) ? readList(statements.eventsSubscribed, filter, { clientId }) : []),
      latestId: async () => recent.latestId() ?? call(async ({ statements }) => (await statements.latestEventId.execute())[0]?.id ?? 0),
      listAfter: (after: number, count: number, subscribedBy?: number) => call(async ({ statements }) => {
        // the oldest-first read of a list capped at `count` (not reversed: streams send them in this order)
        const values = pageValues('postgresql', { after, maxItems: count })
        if (subscribedBy === undefined) return statements.eventList.oldest.execute(values)
        return isRowId(subscribedBy) ? statements.eventsSubscribed.oldest.execute({ ...values, clientId: subscribedBy }) : []
      })
    },
    notifications: {
      listen: async (onEvents, onConnected) => {
        const listener = await listenForEvents(settings, timeouts, (payload) => {
          const latest = Number(payload)
          recent.committed(latest)
          onEvents(Number.isInteger(latest) && latest > 0 ? latest : undefined)
        }, () => {
          recent.stale()
          onConnected()
        }, (payload) => {
          sessions.clear()
          access.ended(endedByPayload(payload))
        })
        listeners.add(listener)
        return {
          close: async () => {
            listeners.delete(listener)
            await listener.close()
          }
        }
      },
      listening
    },
    access: {
      listen: (listener) => access.listen(listener),
      ended: (clientIds: readonly number[]) => clientIds.length === 0
        ? Promise.resolve([])
        : call(async ({ statements }) => (await statements.sessionsEnded.execute(idsValue(clientIds))).map((row) => row.id)),
      // the notifications tell the listeners, in commit order
      look: () => {}
    },
    ping: () => call(async ({ db }) => {
      await db.execute(sql`select 1`)
    }),
    async close () {
      closed = true
      // Queries still running get a second to finish (the server has answered its requests by
      // now). The bound matters: postgres.js keeps a query that failed because its socket
      // closed as that connection's current one, and an unbounded end() waits for it forever.
      await pool.end(1)
    }
  }
}
