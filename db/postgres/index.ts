import { sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/postgres-js'
import type { PgTable } from 'drizzle-orm/pg-core'
import { AccessListeners } from '../access.js'
import { replaceablePool } from '../pool.js'
import { afterPendingIo, groupCommit } from '../batch.js'
import type { QueuedEvent } from '../idempotency.js'
import { NotifiedRecentEvents } from '../recent-events.js'
import type { ClockOption, IdempotencyKey, NewClient, NewEventRecord, PostedEvent, Repositories, RevokeResult } from '../repositories.js'
import { hashSecret, newSessionKey } from '../secrets.js'
import { SessionCache } from '../session-cache.js'
import { isRowId, prepareAll, readiness, revokeUnderLock, sharedRepositories, withWrites } from '../shared-repositories.js'
import { pageValues, returningInserts, statements, subscriptionsInsert } from '../statements.js'
import {
  connect, connectionOptions, defaultTimeouts, describe, isUnavailable, reason,
  type PostgresSettings, type PostgresTimeouts
} from './connection.js'
import { eventInserts } from './event-inserts.js'
import { leadership } from './leadership.js'
import { lockNames } from './locks.js'
import { migrateOnce } from './migrate.js'
import { endedByPayload, ListenNotify, sessionsChannel } from './notifications.js'
import { postgresDialect, postgresQueries } from './queries.js'
import * as schema from './schema.js'

export { defaultTimeouts, type PostgresTimeouts } from './connection.js'
export { lockNames } from './locks.js'
export { postgresDialect, postgresQueries } from './queries.js'

export interface PostgresOptions extends ClockOption {
  timeouts?: PostgresTimeouts
}

/** The application_name of the connection that writes events (the others are 'cred-server'). */
export const writerApplicationName = 'cred-server events'

/** Ids are `integer` columns: a larger id names no row, and must not reach the server as one. */
const MAX_ID = 2_147_483_647

/**
 * A connection pool with the repositories' prepared statements on it, and the one connection
 * that inserts events. Groups of events are written one at a time (see ./event-inserts.ts), so
 * one connection is enough, and keeping them on it keeps one PostgreSQL backend's caches warm.
 */
function openPool (settings: PostgresSettings, timeouts: PostgresTimeouts) {
  const options = connectionOptions(settings, timeouts, timeouts.statementMs)
  const client = connect(settings, options, settings.poolSize)
  // The insert's plan does not depend on its values, so the writer uses a generic plan, made
  // once, instead of planning the statement again on every execution (force_custom_plan, which
  // the list statements need).
  const writer = connect(settings, {
    ...options,
    connection: { ...options.connection, application_name: writerApplicationName, plan_cache_mode: 'auto' }
  }, 1)
  const db = drizzle({ client })
  return {
    writer,
    db,
    statements: prepareAll(postgresQueries(db)),
    /** ends both (see `postgres.Sql.end` for `timeout`) */
    end: (timeout: number) => Promise.all([client.end({ timeout }), writer.end({ timeout })])
  }
}

type Pool = ReturnType<typeof openPool>

/**
 * The writes that run in a transaction of their own: revoking a key under the revocation lock
 * (the last admin key check holds across instances), creating a client with its subscriptions,
 * and ending a session. Revocations and ends notify every instance when they commit.
 */
function transactionWrites (call: <T>(work: (pool: Pool) => PromiseLike<T>) => Promise<T>, sessions: SessionCache, access: AccessListeners) {
  return {
    revoke: (id: number, now: number) => call(async ({ db }): Promise<RevokeResult> => {
      if (!isRowId(id, MAX_ID)) return { outcome: 'not-found' }
      return db.transaction(async (tx): Promise<RevokeResult> => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${lockNames.revocation}, 0))`)
        return revokeUnderLock(statements<'async', PgTable>(tx, schema, postgresDialect), id, now,
          () => tx.execute(sql`select pg_notify(${sessionsChannel}, ${`apikey:${id}`})`))
      }).finally(() => sessions.clear())
    }).then((result) => {
      if (result.outcome === 'revoked') access.ended({ apikeyIds: [id] })
      return result
    }),
    createClient: (client: NewClient) => call(async ({ db }) => {
      const sessionKey = newSessionKey()
      const now = Date.now()
      const id = await db.transaction(async (tx) => {
        const [row] = await returningInserts<'async'>(tx, schema).client({
          device: client.device, location: client.location, sessionHash: hashSecret(sessionKey), apikeyId: client.apikeyId, created: now, lastActive: now, kind: client.kind ?? 'device'
        }).execute()
        if (row === undefined) throw new Error('the insert of a client returned no row')
        if (client.subscriptions.length > 0) await subscriptionsInsert<'async'>(tx, schema, row.id, client.subscriptions).execute()
        return row.id
      })
      return { id, sessionKey }
    }),
    endClient: (id: number, now: number) => call(async ({ db }) => {
      if (!isRowId(id, MAX_ID)) return
      await db.transaction(async (tx) => {
        await statements<'async', PgTable>(tx, schema, postgresDialect).clientEnd.execute({ id, now })
        await tx.execute(sql`select pg_notify(${sessionsChannel}, ${`client:${id}`})`)
      })
      sessions.clear()
      access.ended({ clientIds: [id] })
    })
  }
}

/**
 * Connects to PostgreSQL, applies migrations and returns the repositories over a pool of
 * `poolSize` connections. Connection failures, at start and later, are DatabaseUnavailableError
 * (a 503 for requests); the pool reconnects by itself on the next call once the server is back.
 */
export async function openPostgres (settings: PostgresSettings, { timeouts = defaultTimeouts, clock = Date.now }: PostgresOptions = {}): Promise<Repositories> {
  const where = describe(await migrateOnce(settings, timeouts))
  const pool = replaceablePool(() => openPool(settings, timeouts), {
    name: 'PostgreSQL', where, callMs: timeouts.callMs, isUnavailable, reason: (err) => reason(err, timeouts)
  })
  const { call } = pool
  const access = new AccessListeners()
  const notifications = new ListenNotify(settings, timeouts, {
    events: (latest) => recent.committed(latest),
    ended (payload) {
      sessions.clear()
      access.ended(endedByPayload(payload))
    },
    connected: () => recent.stale()
  })
  const listening = () => notifications.listening()
  // used only while this process hears about sessions ended and keys revoked elsewhere
  const sessions = new SessionCache(listening)
  // the newest events, kept current by the notifications, while they are heard
  const readNewest = (count: number) => call(({ statements }) => statements.eventList.newest.execute(pageValues(postgresDialect.noLimit, { limit: count })))
  const recent = new NotifiedRecentEvents(readNewest, listening)

  // Group commit: posts arriving while a group is being written wait and go in the next group,
  // one transaction and one WAL flush for all of them. Each group gathers for a few turns of
  // the event loop first (afterPendingIo), so that posts sent by the clients the previous
  // group just answered join it.
  const insertGroup = eventInserts()
  const insertEvent = groupCommit((group: QueuedEvent[]) => call(async ({ writer }): Promise<PostedEvent[]> => {
    const { answers, added } = await insertGroup(writer, group, clock())
    recent.added(added)
    return answers
  }), { gather: afterPendingIo })

  const shared = sharedRepositories({
    run: (statement, values) => call(({ statements }) => statement(statements).execute(values)),
    insertApikey: (row) => call(async ({ db }) => (await returningInserts<'async'>(db, schema).apikey(row).execute())[0]),
    noLimit: postgresDialect.noLimit,
    maxId: MAX_ID,
    recent,
    sessions,
    // (the notifications keep the cache current and tell the listeners)
    access
  })

  const writes = transactionWrites(call, sessions, access)
  const leases = leadership(settings, timeouts)
  const ping = () => call(async ({ db }) => {
    await db.execute(sql`select 1`)
  })

  return {
    name: 'PostgreSQL',
    location: where,
    poolSize: settings.poolSize,
    ...withWrites(shared, {
      ...writes,
      // grouped, under the event-order lock: see ./event-inserts.ts
      createEvent: (event: NewEventRecord, idempotency?: IdempotencyKey) => insertEvent(idempotency === undefined ? event : { ...event, idempotency })
    }),
    notifications,
    bridge: { ...shared.bridge, lead: leases.lead },
    ping,
    ready: () => readiness('PostgreSQL', ping, notifications),
    async close () {
      await leases.close()
      await pool.close()
    }
  }
}
