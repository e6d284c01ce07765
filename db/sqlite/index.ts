import type Database from 'better-sqlite3'
import type { BetterSQLite3Database } from 'drizzle-orm/better-sqlite3'
import { AccessListeners } from '../access.js'
import { afterPendingIo, groupCommit } from '../batch.js'
import { IDEMPOTENCY_WINDOW_MS, keyOf, keysOf, purgeSchedule, sortOut, type QueuedEvent } from '../idempotency.js'
import { OwnCommits } from '../notifications.js'
import { RecentEvents } from '../recent-events.js'
import type { ClockOption, EventRecord, IdempotencyKey, Lease, NewClient, NewEventRecord, PostedEvent, Repositories, RevokeResult } from '../repositories.js'
import { hashSecret, newSessionKey } from '../secrets.js'
import { SessionCache } from '../session-cache.js'
import { prepareAll, readiness, sharedRepositories } from '../shared-repositories.js'
import { insertedEvents, pageValues, returningInserts, subscriptionsInsert } from '../statements.js'
import { changeWatch } from './changes.js'
import { openFile } from './connection.js'
import { INSERT_ROWS, insertEventsSql, sqliteDialect, sqliteQueries } from './queries.js'
import * as schema from './schema.js'

export { CHANGE_CHECK_MS } from './changes.js'
export { openConnection } from './connection.js'
export { sqliteDialect, sqliteQueries } from './queries.js'

/**
 * Roles held in this process (`BridgeRepository.lead`), by file and name: one process serves a
 * SQLite file, so holding a role means holding it among the instances of this process.
 */
const heldRoles = new Set<string>()

function lead (path: string, name: string): Lease | undefined {
  const role = `${path}\0${name}`
  if (heldRoles.has(role)) return undefined
  heldRoles.add(role)
  let held = true
  return {
    async release () {
      if (held) heldRoles.delete(role)
      held = false
    }
  }
}

type Prepared = ReturnType<typeof prepareAll<ReturnType<typeof sqliteQueries>>>

/**
 * Group commit: the posts read from the sockets in a few turns of the event loop
 * (afterPendingIo) are stored in one transaction, so they share one WAL flush (synchronous is
 * FULL: each is durable before its 201). The group's rows go in one statement per INSERT_ROWS
 * (see insertEventsSql), prepared once for each number of rows.
 *
 * Posts with an Idempotency-Key join the group: the keys are looked up and written in its
 * transaction, which holds the write lock from its start (IMMEDIATE), so no other connection
 * can store the same key in between. A group without keys runs no statement for them.
 */
function eventInserts (sqlite: Database.Database, prepared: Prepared, clock: () => number) {
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
  const purge = purgeSchedule()
  return sqlite.transaction((group: QueuedEvent[]): { answers: PostedEvent[], added: EventRecord[] } => {
    const time = clock()
    const keys = keysOf(group)
    if (keys.length === 0) {
      const rows = insertFresh(group, time)
      return { answers: rows, added: rows }
    }
    const since = time - IDEMPOTENCY_WINDOW_MS
    const found = new Map<string, EventRecord>()
    for (const key of keys) {
      const event = prepared.idempotentEvent.get({ ...key, since })
      if (event !== undefined) found.set(keyOf(key), event)
    }
    const sorted = sortOut(group, (key) => found.get(keyOf(key)))
    const added = sorted.fresh.length > 0 ? insertFresh(sorted.fresh, time) : []
    const { answers, keyRows } = sorted.answers(added)
    for (const row of keyRows) prepared.rememberKey.run({ ...row, created: time })
    if (purge.due(time)) prepared.purgeKeys.run({ expired: since })
    return { answers, added }
  })
}

/**
 * The writes that run in a transaction of their own: revoking a key (IMMEDIATE: the write lock
 * is taken before the admin count is read, so two processes cannot each revoke one of the last
 * two admin keys), creating a client with its subscriptions, and ending a session.
 */
function transactionWrites (sqlite: Database.Database, db: BetterSQLite3Database, prepared: Prepared, sessions: SessionCache, access: AccessListeners) {
  const insertClient = sqlite.transaction((client: NewClient, sessionHash: string, now: number): number => {
    const row = returningInserts<'sync'>(db, schema).client({
      device: client.device, location: client.location, sessionHash, apikeyId: client.apikeyId, created: now, lastActive: now, kind: client.kind ?? 'device'
    }).get()
    if (row === undefined) throw new Error('the insert of a client returned no row')
    if (client.subscriptions.length > 0) subscriptionsInsert<'sync'>(db, schema, row.id, client.subscriptions).run()
    return row.id
  })
  const revokeKey = sqlite.transaction((id: number, now: number): RevokeResult => {
    const key = prepared.apikeyById.get({ id })
    if (key === undefined) return { outcome: 'not-found' }
    if (key.revoked !== null) return { outcome: 'revoked', apikey: key }
    if (key.permission === 'admin' && (prepared.activeAdminCount.get()?.n ?? 0) <= 1) return { outcome: 'last-admin' }
    prepared.apikeyRevoke.run({ id, now })
    return { outcome: 'revoked', apikey: { ...key, revoked: now } }
  })
  return {
    async revoke (id: number, now: number) {
      let result: RevokeResult
      try {
        result = revokeKey.immediate(id, now)
      } finally {
        sessions.clear()
      }
      if (result.outcome === 'revoked') access.ended({ apikeyIds: [id] })
      return result
    },
    async createClient (client: NewClient) {
      const sessionKey = newSessionKey()
      const id = insertClient(client, hashSecret(sessionKey), Date.now())
      return { id, sessionKey }
    },
    async endClient (id: number, now: number) {
      prepared.clientEnd.run({ id, now })
      sessions.clear()
      access.ended({ clientIds: [id] })
    }
  }
}

/**
 * Opens (creating if needed) the SQLite file, applies migrations and returns the repositories
 * (on one connection from `openConnection`).
 */
export function openSqlite (file: string, { clock = Date.now }: ClockOption = {}): Repositories {
  const { sqlite, db, path, ping } = openFile(file)
  const prepared = prepareAll(sqliteQueries(db))

  // Sessions ended and keys revoked: this connection's own tell the listeners by name; another
  // connection's commit (another process ending a session or revoking a key, e.g. cred-gen
  // --revoke) may have ended any session: the session cache is emptied, and the listeners are
  // told 'unknown' (they ask `access.ended`).
  const access = new AccessListeners()
  const sessions = new SessionCache()
  const dataVersion = sqlite.prepare('pragma data_version').pluck()
  const changes = changeWatch(() => dataVersion.get(), () => {
    sessions.clear()
    access.ended('unknown')
  })
  const readNewest = (count: number) => prepared.eventList.newest.all(pageValues(sqliteDialect.noLimit, { limit: count }))
  const recent = new RecentEvents(readNewest, changes.seen, 100, changes.now)
  const notifications = new OwnCommits()

  const insertGroup = eventInserts(sqlite, prepared, clock)
  const insertEvent = groupCommit((group: QueuedEvent[]) => {
    const { answers, added } = insertGroup.immediate(group)
    recent.added(added)
    notifications.committed(added)
    return answers
  }, { gather: afterPendingIo })

  const shared = sharedRepositories({
    run: (statement, values) => Promise.resolve(statement(prepared).execute(values)),
    insertApikey: async (row) => returningInserts<'sync'>(db, schema).apikey(row).get(),
    noLimit: sqliteDialect.noLimit,
    maxId: Number.MAX_SAFE_INTEGER,
    recent,
    sessions,
    sessionsCurrent: changes.seen,
    access,
    look () {
      try {
        changes.now()
      } catch {
        // the next query reports what is wrong with the database
      }
    }
  })

  const writes = transactionWrites(sqlite, db, prepared, sessions, access)
  return {
    name: 'SQLite',
    location: path,
    poolSize: 1,
    apikeys: { ...shared.apikeys, revoke: writes.revoke },
    clients: { ...shared.clients, create: writes.createClient, end: writes.endClient },
    events: {
      ...shared.events,
      create: (event: NewEventRecord, idempotency?: IdempotencyKey): Promise<PostedEvent> =>
        insertEvent(idempotency === undefined ? event : { ...event, idempotency })
    },
    access: shared.access,
    notifications,
    bridge: { ...shared.bridge, lead: async (name: string) => lead(path, name) },
    ping,
    ready: () => readiness('SQLite', ping, notifications),
    async close () {
      if (sqlite.open) sqlite.close()
    }
  }
}
