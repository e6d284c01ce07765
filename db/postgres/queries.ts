import { and, asc, desc, eq, sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT, PgTable } from 'drizzle-orm/pg-core'
import { depth, eventColumns, idWindow, limit, offset, statements, subscriptionMatches, type SqlDialect } from '../statements.js'
import * as schema from './schema.js'

const { events, subscriptions } = schema

export const postgresDialect: SqlDialect = {
  // ids are `integer`: see idWindow
  idBound: (value) => sql`${value}::bigint`,
  idIn: (id) => sql`${id} = any(array(select json_array_elements_text(${sql.placeholder('ids')}::text::json)::integer))`,
  // PostgreSQL refuses a negative limit; LIMIT NULL is LIMIT ALL
  noLimit: null
}

/**
 * Every statement the PostgreSQL repositories prepare, unprepared (scripts/explain-plans.ts
 * reads their SQL): the shared ones, with the subscriptions query of its own.
 */
export function postgresQueries (db: PgDatabase<PgQueryResultHKT, Record<string, never>>) {
  // For each of the client's subscriptions (LATERAL), its newest `limit + offset` events in the
  // id window, read backwards on events_name_id_idx (name, id); then those few are merged.
  // PostgreSQL's planner would otherwise walk the primary key newest-first, hoping for an early
  // match, through the whole table when the subscribed names are rare (docs/query-plans.md).
  const matched = db.select(eventColumns(events)).from(events)
    .where(and(subscriptionMatches(events, subscriptions), idWindow(postgresDialect, events.id)))
    .orderBy(desc(events.id)).limit(depth)
    .as('matched')
  // oldest first (and the catch-up of streams): per subscription its oldest `limit` events in the window
  const matchedOldest = db.select(eventColumns(events)).from(events)
    .where(and(subscriptionMatches(events, subscriptions), idWindow(postgresDialect, events.id)))
    .orderBy(asc(events.id)).limit(limit)
    .as('matched_oldest')
  const ofClient = eq(subscriptions.clientId, sql.placeholder('clientId'))
  return {
    ...statements<'async', PgTable>(db, schema, postgresDialect),
    eventsSubscribed: {
      newest: db.select(eventColumns(matched)).from(subscriptions).crossJoinLateral(matched).where(ofClient)
        .orderBy(desc(matched.id)).limit(limit).offset(offset),
      oldest: db.select(eventColumns(matchedOldest)).from(subscriptions).crossJoinLateral(matchedOldest).where(ofClient)
        .orderBy(asc(matchedOldest.id)).limit(limit)
    }
  }
}
