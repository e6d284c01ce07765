import { and, eq, gt, lte, sql } from 'drizzle-orm'
import type { BaseSQLiteDatabase, SQLiteTable } from 'drizzle-orm/sqlite-core'
import { eventColumns, statements, type SqlDialect } from '../statements.js'
import * as schema from './schema.js'

const { events, idempotencyKeys } = schema

type SqliteDb = BaseSQLiteDatabase<'sync', unknown>

export const sqliteDialect: SqlDialect = {
  idBound: (value) => value,
  idIn: (id) => sql`${id} in (select value from json_each(${sql.placeholder('ids')}))`,
  noLimit: -1
}

/** Every statement the SQLite repositories prepare, unprepared (scripts/explain-plans.ts reads their SQL). */
export function sqliteQueries (db: SqliteDb) {
  return {
    ...statements<'sync', SQLiteTable>(db, schema, sqliteDialect),
    // Posts with an Idempotency-Key (../idempotency.ts), in the group's transaction: the event a
    // key names while it is younger than `since`, on the primary key (apikey_id, key)...
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

/** The most events one insert statement takes: a larger group is inserted by several. */
export const INSERT_ROWS = 32

/**
 * One statement inserting `rows` events, returning their ids: a statement's set-up and its
 * transition into and out of SQLite are paid once for the group. Its values are bound in
 * column order, `time` last, row after row. Only the ids come back: each stored row is the
 * group's own values (strings as sent: validation admits no text SQLite would change) with its
 * id and `time`, so reading them back would only make objects.
 */
export function insertEventsSql (rows: number): string {
  return `insert into events (client_id, device, name, location, action, value, time)
    values ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
    returning id`
}
