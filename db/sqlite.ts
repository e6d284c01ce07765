import { closeSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { and, asc, count, desc, eq, gt, gte, isNotNull, isNull, lte, or, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import type { BaseSQLiteDatabase, SQLiteColumn, SQLiteSelect } from 'drizzle-orm/sqlite-core'
import type { Permission } from '../schemas/apikeys.js'
import { apikeys, clients, events, idempotencyKeys, subscriptions } from './schema/sqlite.js'
import {
  DatabaseUnavailableError,
  type ApiKeyRecord, type ClockOption, type EventRecord, type IdempotencyKey, type ListFilter, type NewEventRecord, type PostedEvent,
  type Repositories, type RevokeResult, type SessionRecord
} from './repositories.js'
import {
  apikeyColumns, clientColumns, eventColumns, idIn, idWindow, idsValue, insertedEvents, limit, listRead, offset, pageValues, subscriptionMatches,
  type ListStatements
} from './queries.js'
import { AccessListeners } from './access.js'
import { afterPendingIo, groupCommit } from './batch.js'
import { IDEMPOTENCY_WINDOW_MS, keyOf, keysOf, purgeSchedule, sortOut, type QueuedEvent } from './idempotency.js'
import { RecentEvents } from './recent-events.js'
import { SessionCache } from './session-cache.js'
import { hashSecret, newApiKey, newSessionKey } from './secrets.js'

const migrationsFolder = fileURLToPath(new URL('./migrations/sqlite', import.meta.url))

type SqliteDb = BaseSQLiteDatabase<'sync', unknown>

/**
 * Every statement of the SQLite repositories, unprepared (scripts/explain-plans.ts reads
 * their SQL). The PostgreSQL twin is `postgresQueries` in ./postgres.ts.
 */
export function sqliteQueries (db: SqliteDb) {
  const window = (id: Parameters<typeof idWindow>[1]) => idWindow('sqlite', id)
  /** A list's two statements (see listPage), from a function making its query unordered. */
  const bothWays = <T extends SQLiteSelect>(query: () => T, id: SQLiteColumn): ListStatements<T> => ({
    newest: query().orderBy(desc(id)).limit(limit).offset(offset),
    oldest: query().orderBy(asc(id)).limit(limit)
  })
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
      .where(and(idIn('sqlite', clients.id), or(isNotNull(clients.ended), isNotNull(apikeys.revoked)))),
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
    // One query over all of the client's subscriptions: each subscription reaches its events
    // through events_name_id_idx (name, id), so `after=` is a range read on that index.
    eventsSubscribed: bothWays(() => db.select(eventColumns(events)).from(subscriptions)
      .innerJoin(events, subscriptionMatches(events, subscriptions))
      .where(and(eq(subscriptions.clientId, sql.placeholder('clientId')), window(events.id))).$dynamic(), events.id),
    subscriptionsOf: db.select({ eventName: subscriptions.eventName, location: subscriptions.location })
      .from(subscriptions).where(eq(subscriptions.clientId, sql.placeholder('clientId'))),
    // Posts with an Idempotency-Key (./idempotency.ts): the event a key names while it is
    // younger than `since`, on the primary key (apikey_id, key)...
    idempotentEvent: db.select(eventColumns(events)).from(idempotencyKeys)
      .innerJoin(events, eq(events.id, idempotencyKeys.eventId))
      .where(and(
        eq(idempotencyKeys.apikeyId, sql.placeholder('apikeyId')), eq(idempotencyKeys.key, sql.placeholder('key')),
        gt(idempotencyKeys.created, sql.placeholder('since')))),
    // ...a key naming a new event (or, expired, naming another one now)...
    rememberKey: db.insert(idempotencyKeys).values({
      apikeyId: sql.placeholder('apikeyId'), key: sql.placeholder('key'), eventId: sql.placeholder('eventId'), created: sql.placeholder('created')
    }).onConflictDoUpdate({
      target: [idempotencyKeys.apikeyId, idempotencyKeys.key],
      set: { eventId: sql`excluded.event_id`, created: sql`excluded.created` }
    }),
    // ...and the expired keys deleted, a range on idempotency_keys_created_idx
    purgeKeys: db.delete(idempotencyKeys).where(lte(idempotencyKeys.created, sql.placeholder('expired')))
  }
}

/** Prepares both statements of a list. */
const prepareBoth = <P>(list: ListStatements<{ prepare: () => P }>): ListStatements<P> =>
  ({ newest: list.newest.prepare(), oldest: list.oldest.prepare() })

/** Runs a list (see listPage) with the values of `filter` and `values`; answers newest first. */
function readList<T> (list: ListStatements<{ all: (values: Record<string, unknown>) => T[] }>, filter: ListFilter, values: Record<string, unknown> = {}): T[] {
  const read = listRead('sqlite', filter)
  return read.answer(read.pick(list).all({ ...values, ...read.values }))
}

/** The most events one insert statement takes: a larger group is inserted by several. */
const INSERT_ROWS = 32

/**
 * One statement inserting `rows` events, returning their ids: 3.8 instead of 7.6 us per event
 * for a statement per event (10-event groups, measured in memory), since a statement's set-up
 * and its transition into and out of SQLite are paid once for the group. Its values are bound
 * in column order, `time` last, row after row. Only the ids come back: each stored row is the
 * group's own values (strings as sent: validation admits no text SQLite would change) with its
 * id and `time`, and reading them back made an object of 8 properties per row through V8's API.
 */
function insertEventsSql (rows: number): string {
  return `insert into events (client_id, device, name, location, action, value, time)
    values ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
    returning id`
}

/** How long a reading of `data_version` is used for: a commit by another process is seen this much later at most. */
export const CHANGE_CHECK_MS = 10

/**
 * Commits by other connections (another process on the same file, or a script), as SQLite's
 * `data_version` shows them. Reading it starts a read transaction (three system calls: a lock,
 * a stat, an unlock), which was 15 % of the server's CPU when every request read it twice;
 * `seen()` reads it at most once per `CHANGE_CHECK_MS` and answers the others from the last
 * reading. `now()` always reads it: the insert path uses it to know that nothing was
 * committed in between before it adds its rows to the newest events.
 *
 * `onChange` is called when a reading differs from the one before. Since the insert path
 * reads it after each of this connection's commits, a session ended or a key revoked by
 * another process before an event committed here is known before that event is delivered.
 */
function changeWatch (read: () => unknown, onChange: () => void) {
  let value = read()
  let at = performance.now()
  const now = (): unknown => {
    const before = value
    value = read()
    at = performance.now()
    if (value !== before) onChange()
    return value
  }
  return {
    now,
    seen: (): unknown => performance.now() - at >= CHANGE_CHECK_MS ? now() : value
  }
}

/**
 * A connection as the repositories use it: WAL mode, a busy timeout, foreign keys enforced, and
 * `synchronous = FULL`, so that every commit is flushed to disk (fsync of the WAL) before it
 * returns and an acknowledged write survives a power loss or an OS crash. It has to be set:
 * better-sqlite3 is built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, i.e. NORMAL in WAL mode,
 * where a commit is only flushed at the next checkpoint.
 */
export function openConnection (path: string): Database.Database {
  const sqlite = new Database(path)
  try {
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('synchronous = FULL')
    sqlite.pragma('busy_timeout = 5000')
    sqlite.pragma('foreign_keys = ON')
  } catch (err) {
    sqlite.close()
    throw err
  }
  return sqlite
}

/**
 * Opens (creating if needed) the SQLite file, applies migrations and returns the repositories
 * (on one connection from `openConnection`).
 */
export function openSqlite (file: string, { clock = Date.now }: ClockOption = {}): Repositories {
  const path = file === ':memory:' ? file : resolve(file)
  let sqlite: Database.Database
  try {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true })
      // Events and device names are private: a new file is the owner's only, and SQLite gives
      // its -wal and -shm files the database file's permissions.
      closeSync(openSync(path, 'a', 0o600))
    }
    sqlite = openConnection(path)
  } catch (err) {
    throw new DatabaseUnavailableError(`cannot open SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }
  const db = drizzle({ client: sqlite })
  // the file opened, to tell later whether it is still there (a deleted or replaced file keeps
  // answering through the open handle, while nothing written to it would survive a restart)
  const inode = path === ':memory:' ? null : statSync(path).ino
  try {
    migrate(db, { migrationsFolder })
  } catch (err) {
    sqlite.close()
    throw new DatabaseUnavailableError(`cannot apply migrations to SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }

  const queries = sqliteQueries(db)
  const statements = {
    apikeyByHash: queries.apikeyByHash.prepare(),
    apikeyById: queries.apikeyById.prepare(),
    apikeyList: prepareBoth(queries.apikeyList),
    apikeyCount: queries.apikeyCount.prepare(),
    activeAdminCount: queries.activeAdminCount.prepare(),
    apikeyRevoke: queries.apikeyRevoke.prepare(),
    clientEnd: queries.clientEnd.prepare(),
    sessionByHash: queries.sessionByHash.prepare(),
    sessionsEnded: queries.sessionsEnded.prepare(),
    clientTouch: queries.clientTouch.prepare(),
    clientById: queries.clientById.prepare(),
    clientsActive: prepareBoth(queries.clientsActive),
    clientsActiveCount: queries.clientsActiveCount.prepare(),
    eventById: queries.eventById.prepare(),
    eventList: prepareBoth(queries.eventList),
    eventsByClient: prepareBoth(queries.eventsByClient),
    eventsSubscribed: prepareBoth(queries.eventsSubscribed),
    subscriptionsOf: queries.subscriptionsOf.prepare(),
    idempotentEvent: queries.idempotentEvent.prepare(),
    rememberKey: queries.rememberKey.prepare(),
    purgeKeys: queries.purgeKeys.prepare()
  }

  const insertClient = sqlite.transaction((client: Parameters<Repositories['clients']['create']>[0], sessionHash: string, now: number) => {
    const row = db.insert(clients).values({
      device: client.device, location: client.location, sessionHash, apikeyId: client.apikeyId, created: now, lastActive: now
    }).returning({ id: clients.id }).get()
    if (client.subscriptions.length > 0) {
      db.insert(subscriptions).values(client.subscriptions.map((s) => ({ clientId: row.id, eventName: s.eventName, location: s.location }))).run()
    }
    return row.id
  })

  // Group commit: the posts read from the sockets in a few turns of the event loop
  // (afterPendingIo) are stored in one transaction, so they share one WAL flush (synchronous
  // is FULL: each is durable before its 201). The group's rows go in one statement per
  // INSERT_ROWS (see insertEventsSql), prepared once for each number of rows.
  const insertStatements = new Map<number, Database.Statement<unknown[], number>>()
  const insertRows = (rows: NewEventRecord[], time: number): number[] => {
    let statement = insertStatements.get(rows.length)
    if (statement === undefined) {
      statement = sqlite.prepare<unknown[], number>(insertEventsSql(rows.length)).pluck()
      insertStatements.set(rows.length, statement)
    }
    const values: unknown[] = []
    for (const event of rows) values.push(event.clientId, event.device, event.name, event.location, event.action, event.value, time)
    return statement.all(values)
  }
  const insertFresh = (group: NewEventRecord[], time: number): EventRecord[] => {
    const ids: number[] = []
    for (let start = 0; start < group.length; start += INSERT_ROWS) ids.push(...insertRows(group.slice(start, start + INSERT_ROWS), time))
    // RETURNING does not promise an order, and the rows take ids in the order of the group:
    // sorted, the ids line up with the group again
    return insertedEvents(group, ids.sort((a, b) => a - b), time)
  }
  // Posts with an Idempotency-Key join the group: the keys are looked up and written in its
  // transaction, which holds the write lock from its start (IMMEDIATE), so no other connection
  // can store the same key in between. A group without keys runs no statement for them.
  const purge = purgeSchedule()
  const insertGroup = sqlite.transaction((group: QueuedEvent[]): { answers: PostedEvent[], added: EventRecord[] } => {
    const time = clock()
    const keys = keysOf(group)
    if (keys.length === 0) {
      const rows = insertFresh(group, time)
      return { answers: rows, added: rows }
    }
    const since = time - IDEMPOTENCY_WINDOW_MS
    const found = new Map<string, EventRecord>()
    for (const key of keys) {
      const event = statements.idempotentEvent.get({ ...key, since })
      if (event !== undefined) found.set(keyOf(key), event)
    }
    const sorted = sortOut(group, (key) => found.get(keyOf(key)))
    const added = sorted.fresh.length > 0 ? insertFresh(sorted.fresh, time) : []
    const { answers, keyRows } = sorted.answers(added)
    for (const row of keyRows) statements.rememberKey.run({ ...row, created: time })
    if (purge.due(time)) statements.purgeKeys.run({ expired: since })
    return { answers, added }
  })
  const insertEvent = groupCommit((group: QueuedEvent[]) => {
    const { answers, added } = insertGroup.immediate(group)
    recent.added(added)
    return answers
  }, { gather: afterPendingIo })
  const createEvent = (event: NewEventRecord, idempotency?: IdempotencyKey): Promise<PostedEvent> =>
    insertEvent(idempotency === undefined ? event : { ...event, idempotency })

  // Sessions ended and keys revoked: this connection's own tell the listeners by name; another
  // connection's commit may have ended any session ('unknown': the listener asks `ended`).
  const access = new AccessListeners()
  const dataVersion = sqlite.prepare('pragma data_version').pluck()
  const changes = changeWatch(() => dataVersion.get(), () => access.ended('unknown'))
  const recent = new RecentEvents((count) => readList(statements.eventList, { limit: count }), changes.seen, 100, changes.now)
  // Sessions: another connection's commit (another process ending a session or revoking a
  // key, e.g. cred-gen --revoke) changes data_version and empties the cache; this
  // connection's own ends and revocations empty it directly.
  const sessions = new SessionCache()
  let sessionsVersion = changes.seen()
  /** Empties the session cache when another connection has committed since (throws when data_version cannot be read). */
  function sessionsCurrent (): void {
    const version = changes.seen()
    if (version !== sessionsVersion) {
      sessionsVersion = version
      sessions.clear()
    }
  }
  function findSession (sessionKey: string): Promise<SessionRecord | undefined> {
    try {
      sessionsCurrent()
    } catch (err) {
      return Promise.reject(err)
    }
    return sessions.lookup(sessionKey, (key) => statements.sessionByHash.get({ hash: hashSecret(key) }))
  }
  function cachedSession (sessionKey: string): SessionRecord | undefined {
    try {
      sessionsCurrent()
    } catch {
      return undefined // findBySession reports it
    }
    return sessions.peek(sessionKey)
  }

  /** true when nothing can come after `after`: a poll with nothing new needs no query */
  const nothingAfter = (after: number | undefined) => after !== undefined && after >= recent.latestId()

  // IMMEDIATE: the write lock is taken before the admin count is read, so two processes
  // cannot each revoke one of the last two admin keys.
  const revokeKey = sqlite.transaction((id: number, now: number): RevokeResult => {
    const key = statements.apikeyById.get({ id })
    if (key === undefined) return { outcome: 'not-found' }
    if (key.revoked !== null) return { outcome: 'revoked', apikey: key }
    if (key.permission === 'admin' && (statements.activeAdminCount.get()?.n ?? 0) <= 1) return { outcome: 'last-admin' }
    statements.apikeyRevoke.run({ id, now })
    return { outcome: 'revoked', apikey: { ...key, revoked: now } }
  })

  return {
    kind: 'sqlite',
    location: path,
    apikeys: {
      async create (permission: Permission) {
        const apikey = newApiKey()
        const row = db.insert(apikeys).values({ keyHash: hashSecret(apikey), permission, created: Date.now() })
          .returning(apikeyColumns(apikeys)).get()
        return { ...row, apikey }
      },
      async findByKey (apikey: string): Promise<ApiKeyRecord | undefined> {
        return statements.apikeyByHash.get({ hash: hashSecret(apikey) })
      },
      async get (id: number) {
        return statements.apikeyById.get({ id })
      },
      async list (filter: ListFilter) {
        return readList(statements.apikeyList, filter)
      },
      async count () {
        return statements.apikeyCount.get()?.n ?? 0
      },
      async revoke (id: number, now: number) {
        let result: RevokeResult
        try {
          result = revokeKey.immediate(id, now)
        } finally {
          sessions.clear()
        }
        if (result.outcome === 'revoked') access.ended({ apikeyIds: [id] })
        return result
      }
    },
    clients: {
      async create (client) {
        const sessionKey = newSessionKey()
        const id = insertClient(client, hashSecret(sessionKey), Date.now())
        return { id, sessionKey }
      },
      // not async: an async function returning a promise adds two turns of the microtask queue
      findBySession: (sessionKey: string): Promise<SessionRecord | undefined> => findSession(sessionKey),
      cachedSession,
      async touch (id: number, now: number) {
        statements.clientTouch.run({ id, now })
      },
      async end (id: number, now: number) {
        statements.clientEnd.run({ id, now })
        sessions.clear()
        access.ended({ clientIds: [id] })
      },
      async get (id: number) {
        return statements.clientById.get({ id })
      },
      async listActive (since: number, filter: ListFilter) {
        return readList(statements.clientsActive, filter, { since })
      },
      async countActive (since: number) {
        return statements.clientsActiveCount.get({ since })?.n ?? 0
      },
      async subscriptions (id: number) {
        return statements.subscriptionsOf.all({ clientId: id })
      }
    },
    events: {
      create: createEvent,
      async get (id: number) {
        return statements.eventById.get({ id })
      },
      async list (filter: ListFilter) {
        return recent.list(filter) ?? readList(statements.eventList, filter)
      },
      async listByClient (clientId: number, filter: ListFilter) {
        return nothingAfter(filter.after) ? [] : readList(statements.eventsByClient, filter, { clientId })
      },
      async listSubscribed (clientId: number, filter: ListFilter) {
        return nothingAfter(filter.after) ? [] : readList(statements.eventsSubscribed, filter, { clientId })
      },
      async latestId () {
        return recent.latestId()
      },
      async listAfter (after: number, count: number, subscribedBy?: number) {
        if (nothingAfter(after)) return []
        // the oldest-first read of a list capped at `count` (not reversed: streams send them in this order)
        const values = pageValues('sqlite', { after, maxItems: count })
        return subscribedBy === undefined
          ? statements.eventList.oldest.all(values)
          : statements.eventsSubscribed.oldest.all({ clientId: subscribedBy, ...values })
      }
    },
    access: {
      listen: (listener) => access.listen(listener),
      async ended (clientIds: readonly number[]) {
        if (clientIds.length === 0) return []
        return statements.sessionsEnded.all(idsValue(clientIds)).map((row) => row.id)
      },
      look () {
        try {
          changes.now()
        } catch {
          // the next query reports what is wrong with the database
        }
      }
    },
    async ping () {
      try {
        if (inode !== null && statSync(path).ino !== inode) throw new Error('the file was replaced')
        sqlite.prepare('select 1').get()
      } catch (err) {
        throw new DatabaseUnavailableError(`SQLite database ${path} is unavailable: ${(err as Error).message}`, { cause: err })
      }
    },
    async close () {
      if (sqlite.open) sqlite.close()
    }
  }
}
