import { and, gt, lt, lte, max, sql } from 'drizzle-orm'
import type { MySqlTable } from 'drizzle-orm/mysql-core'
import { drizzle, type MySql2Database } from 'drizzle-orm/mysql2'
import type mysql from 'mysql2/promise'
import { AccessListeners } from '../access.js'
import { afterPendingIo, groupCommit } from '../batch.js'
import { purgeSchedule, type QueuedEvent } from '../idempotency.js'
import { replaceablePool } from '../pool.js'
import { NotifiedRecentEvents } from '../recent-events.js'
import type { AccessEnded, ClockOption, IdempotencyKey, NewClient, NewEventRecord, PostedEvent, Repositories, RevokeResult } from '../repositories.js'
import { hashSecret, newSessionKey } from '../secrets.js'
import { SessionCache } from '../session-cache.js'
import { isRowId, prepareAll, readiness, revokeUnderLock, sharedRepositories, withWrites } from '../shared-repositories.js'
import { pageValues, statements, subscriptionsInsert } from '../statements.js'
import { ACCESS_ENDED_KEEP_MS, PolledChanges, type Latest } from './changes.js'
import { connect, defaultTimeouts, describe, endPool, isUnavailable, reason, type MysqlSettings, type MysqlTimeouts } from './connection.js'
import { eventInserts, lockOrder } from './event-inserts.js'
import { leadership } from './leadership.js'
import { migrateOnce } from './migrate.js'
import { mysqlDialect, mysqlQueries } from './queries.js'
import * as schema from './schema.js'

export { defaultTimeouts, type MysqlTimeouts } from './connection.js'
export { mysqlDialect, mysqlQueries } from './queries.js'

export interface MysqlOptions extends ClockOption {
  timeouts?: MysqlTimeouts
}

/** Ids are `int` columns: a larger id names no row. */
const MAX_ID = 2_147_483_647

/**
 * A connection pool with the repositories' statements on it, and a pool of one connection that
 * inserts events (groups are written one at a time under the order lock: one is enough).
 */
function openPool (settings: MysqlSettings, timeouts: MysqlTimeouts, onLost: () => void) {
  const client = connect(settings, timeouts, settings.poolSize, onLost)
  const writer = connect(settings, timeouts, 1, onLost)
  const db = drizzle({ client })
  return {
    client,
    writer,
    db,
    statements: prepareAll(mysqlQueries(db)),
    /** ends both, destroying what has not ended within `timeout` seconds */
    end: async (timeout: number) => {
      await Promise.all([endPool(client, timeout * 1000), endPool(writer, timeout * 1000)])
    }
  }
}

type Pool = ReturnType<typeof openPool>

/** The highest event id and access_ended row, in one statement on two primary keys. */
async function readLatest (db: MySql2Database): Promise<Latest> {
  const [events] = await db.select({ events: max(schema.events.id), access: sql<number | null>`(select max(${schema.accessEnded.id}) from ${schema.accessEnded})` }).from(schema.events)
  return { events: Number(events?.events ?? 0), access: Number(events?.access ?? 0) }
}

/**
 * The writes that run in a transaction of their own, under the order lock (so that their
 * access_ended rows commit in id order, and the last admin key check holds across instances):
 * revoking a key, ending a session; and creating a client with its subscriptions.
 */
function transactionWrites (call: <T>(work: (pool: Pool) => PromiseLike<T>) => Promise<T>, sessions: SessionCache, access: AccessListeners, changes: () => PolledChanges) {
  /** Ends access in a transaction holding the order lock: `work`'s outcome, and the access_ended row written (if any). */
  const underLock = <T>(work: (tx: MySql2Database, queries: ReturnType<typeof statements<'async', MySqlTable>>) => Promise<T>) =>
    call(({ db }) => db.transaction(async (tx) => {
      await tx.execute(sql.raw(lockOrder))
      return work(tx, statements<'async', MySqlTable>(tx, schema, mysqlDialect))
    }))
  const purge = purgeSchedule()
  /**
   * Writes the access_ended row of an end; now and then (at most once a minute per instance)
   * also deletes the rows older than ACCESS_ENDED_KEEP_MS, a range on their `created` index, in
   * the same transaction: rows are only ever added here, so the table holds those of the last
   * minutes, whatever the years of use. The row just written is never among them, so the
   * highest row, which the looks read, stays.
   */
  const recordEnd = async (tx: MySql2Database, ended: { clientId: number } | { apikeyId: number }, now: number) => {
    const [row] = await tx.insert(schema.accessEnded).values({ ...ended, created: now }).$returningId()
    if (purge.due(now)) await tx.delete(schema.accessEnded).where(lt(schema.accessEnded.created, now - ACCESS_ENDED_KEEP_MS))
    return row!.id
  }
  return {
    async revoke (id: number, now: number): Promise<RevokeResult> {
      if (!isRowId(id, MAX_ID)) return { outcome: 'not-found' }
      let row: number | undefined
      const result = await underLock((tx, queries) => revokeUnderLock(queries, id, now, async () => {
        row = await recordEnd(tx, { apikeyId: id }, now)
      })).finally(() => sessions.clear())
      if (row !== undefined) {
        changes().ownEnd(row)
        access.ended({ apikeyIds: [id] })
      }
      return result
    },
    createClient: (client: NewClient) => call(async ({ db }) => {
      const sessionKey = newSessionKey()
      const now = Date.now()
      const id = await db.transaction(async (tx) => {
        const [row] = await tx.insert(schema.clients).values({
          device: client.device, location: client.location, sessionHash: hashSecret(sessionKey), apikeyId: client.apikeyId, created: now, lastActive: now, kind: client.kind ?? 'device'
        }).$returningId()
        if (row === undefined) throw new Error('the insert of a client returned no row')
        if (client.subscriptions.length > 0) await subscriptionsInsert<'async', MySqlTable>(tx, schema, row.id, client.subscriptions).execute()
        return row.id
      })
      return { id, sessionKey }
    }),
    async endClient (id: number, now: number) {
      if (!isRowId(id, MAX_ID)) return
      const row = await underLock(async (tx, queries) => {
        await queries.clientEnd.execute({ id, now })
        return recordEnd(tx, { clientId: id }, now)
      })
      changes().ownEnd(row)
      sessions.clear()
      access.ended({ clientIds: [id] })
    }
  }
}

/**
 * Connects to MariaDB or MySQL, applies migrations and returns the repositories over a pool of
 * `poolSize` connections. Connection failures, at start and later, are DatabaseUnavailableError
 * (a 503 for requests); the pool reconnects by itself on the next call once the server is back.
 * Other instances' events and ends are learnt by a look every `pollInterval` ms (./changes.ts).
 */
export async function openMysql (settings: MysqlSettings, { timeouts = defaultTimeouts, clock = Date.now }: MysqlOptions = {}): Promise<Repositories> {
  const facts = await migrateOnce(settings, timeouts)
  const where = describe(facts.target)
  // a connection the server closed may mean it went away: until the next look says otherwise,
  // nothing is answered from memory
  const pool = replaceablePool(() => openPool(settings, timeouts, () => changes.lost()), {
    name: facts.name, where, callMs: timeouts.callMs, isUnavailable, reason: (err) => reason(err, timeouts)
  })
  const { call } = pool
  const access = new AccessListeners()
  // AUTO_INCREMENT steps by this (1 unless the server is set up for multi-master replication)
  const increment = await call(async ({ client }) => {
    const [rows] = await client.query<mysql.RowDataPacket[]>('select @@auto_increment_increment as increment')
    return Number(rows[0]?.increment ?? 1)
  }).catch((err: unknown) => {
    void pool.close()
    throw err
  })
  const reads = {
    latest: () => call(({ db }) => readLatest(db)),
    ended: (after: number, upTo: number) => call(async ({ db }): Promise<AccessEnded[]> => {
      const rows = await db.select().from(schema.accessEnded)
        .where(and(gt(schema.accessEnded.id, after), lte(schema.accessEnded.id, upTo))).orderBy(schema.accessEnded.id)
      return rows.filter((row) => !changes.isOwn(row.id))
        .map((row) => row.clientId !== null ? { clientIds: [row.clientId] } : { apikeyIds: [row.apikeyId ?? 0] })
    })
  }
  const changes = new PolledChanges(reads, settings.pollInterval, {
    events: (latest) => recent.committed(latest),
    ended (ended) {
      sessions.clear()
      access.ended(ended)
    },
    connected: () => recent.stale()
  })
  const listening = () => changes.listening()
  // used only while this process learns about sessions ended and keys revoked elsewhere
  const sessions = new SessionCache(listening)
  const readNewest = (count: number) => call(({ statements }) => statements.eventList.newest.execute(pageValues(mysqlDialect.noLimit, { limit: count })))
  const recent = new NotifiedRecentEvents(readNewest, listening)

  // Group commit, as on PostgreSQL: see ../postgres/index.ts and ./event-inserts.ts.
  const insertGroup = eventInserts(increment)
  const insertEvent = groupCommit((group: QueuedEvent[]) => call(async ({ writer }): Promise<PostedEvent[]> => {
    const { answers, added, access } = await insertGroup(writer, group, clock())
    recent.added(added)
    const last = added[added.length - 1]
    if (last !== undefined) changes.ownCommit({ events: last.id, access })
    return answers
  }), { gather: afterPendingIo })

  const shared = sharedRepositories({
    run: (statement, values) => call(({ statements }) => statement(statements).execute(values)),
    insertApikey: (row) => call(async ({ db }) => {
      const [inserted] = await db.insert(schema.apikeys).values(row).$returningId()
      return inserted === undefined ? undefined : { id: inserted.id, permission: row.permission, created: row.created, revoked: null }
    }),
    noLimit: mysqlDialect.noLimit,
    maxId: MAX_ID,
    recent,
    sessions,
    // (the looks keep the cache current and tell the listeners)
    access
  })

  const writes = transactionWrites(call, sessions, access, () => changes)
  const leases = leadership(settings, timeouts)
  const ping = () => call(async ({ db }) => {
    await db.execute(sql`select 1`)
  })

  return {
    name: facts.name,
    location: where,
    poolSize: settings.poolSize,
    warnings: facts.warnings,
    ...withWrites(shared, {
      ...writes,
      // grouped, under the order lock: see ./event-inserts.ts
      createEvent: (event: NewEventRecord, idempotency?: IdempotencyKey) => insertEvent(idempotency === undefined ? event : { ...event, idempotency })
    }),
    notifications: changes,
    bridge: { ...shared.bridge, lead: leases.lead },
    ping,
    ready: () => readiness(facts.name, ping, changes),
    async close () {
      await leases.close()
      await pool.close()
    }
  }
}
