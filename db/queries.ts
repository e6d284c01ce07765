// The parts of every query that do not depend on the dialect: which columns a record has,
// how a list filter becomes a WHERE/LIMIT/OFFSET, how a subscription matches an event.
// ./sqlite.ts and ./postgres.ts build their statements from these, side by side.
import { and, eq, gt, isNull, lt, or, sql, type AnyColumn, type Placeholder, type SQL } from 'drizzle-orm'
import type { DatabaseKind } from '../schemas/config.js'
import { listPage, pageAnswer, type EventRecord, type ListFilter, type ListPage, type NewEventRecord } from './repositories.js'

const afterId = sql.placeholder('after')
const beforeId = sql.placeholder('before')

/**
 * LIMIT and OFFSET of every list statement: fill them with `listRead`. Each list has two
 * statements: newest first (`order by id desc limit :limit offset :offset`) and oldest first
 * (`order by id asc limit :limit`), as `listPage` chooses.
 */
export const limit = sql.placeholder('limit')
export const offset = sql.placeholder('offset')
/** limit + offset: how many rows one part of a merged list may contribute (PostgreSQL's subscriptions query). */
export const depth = sql.placeholder('depth')

/**
 * `before < id < after` on `id`. PostgreSQL ids are `integer` and a parameter compared with
 * one is read as an integer too, so there the bounds are cast to bigint: `before=3000000000`
 * is then a bound like any other instead of an out-of-range error. Either way the
 * comparison is a range on the id index.
 */
export function idWindow (dialect: DatabaseKind, id: AnyColumn): SQL | undefined {
  const bound = (value: Placeholder): SQL | Placeholder => dialect === 'postgresql' ? sql`${value}::bigint` : value
  return and(gt(id, bound(afterId)), lt(id, bound(beforeId)))
}

/**
 * `id` is one of the ids in the placeholder `ids`, a JSON array (`idsValue`): one parameter
 * whatever the number of ids, so the statement is prepared once. Each id is a lookup on the
 * primary key.
 */
export function idIn (dialect: DatabaseKind, id: AnyColumn): SQL {
  const ids = sql.placeholder('ids')
  return dialect === 'postgresql'
    ? sql`${id} = any(array(select json_array_elements_text(${ids}::text::json)::integer))`
    : sql`${id} in (select value from json_each(${ids}))`
}

/** The value of `idIn`'s placeholder. */
export const idsValue = (ids: readonly number[]): { ids: string } => ({ ids: JSON.stringify(ids) })

/** Larger values mean "no bound" anyway; clamping keeps every bound a safe 64-bit integer. */
const clamp = (value: number): number => Math.min(value, Number.MAX_SAFE_INTEGER)

/**
 * Placeholder values of a list read as `page` says. No limit is LIMIT -1 in SQLite and
 * LIMIT NULL (= LIMIT ALL) in PostgreSQL, which refuses a negative limit.
 */
export function pageValues (dialect: DatabaseKind, filter: ListFilter, page: ListPage = listPage(filter)) {
  const noLimit = dialect === 'postgresql' ? null : -1
  // oldest first reads from the cursor on: `pageAnswer` applies the offset
  const offsetValue = page.oldestFirst ? 0 : clamp(page.offset)
  return {
    after: filter.after === undefined ? -1 : clamp(filter.after),
    before: filter.before === undefined ? Number.MAX_SAFE_INTEGER : clamp(filter.before),
    limit: page.limit === undefined ? noLimit : clamp(page.limit),
    offset: offsetValue,
    depth: page.limit === undefined ? noLimit : clamp(page.limit + offsetValue)
  }
}

/** A list's statements: newest first and oldest first (see `listPage`). */
export interface ListStatements<R> {
  newest: R
  oldest: R
}

/**
 * How to read a list: which of its statements to run (`pick`), with which values, and how
 * the rows it returns become the answer.
 */
export function listRead (dialect: DatabaseKind, filter: ListFilter) {
  const page = listPage(filter)
  return {
    pick: <R>(statements: ListStatements<R>): R => page.oldestFirst ? statements.oldest : statements.newest,
    values: pageValues(dialect, filter, page),
    answer: <T>(rows: T[]): T[] => pageAnswer(page, rows)
  }
}

export interface ApiKeyColumns { id: AnyColumn, permission: AnyColumn, created: AnyColumn, revoked: AnyColumn }
export interface ClientColumns { id: AnyColumn, device: AnyColumn, location: AnyColumn, lastActive: AnyColumn }
export interface EventColumns {
  id: AnyColumn, clientId: AnyColumn, device: AnyColumn, name: AnyColumn,
  location: AnyColumn, action: AnyColumn, value: AnyColumn, time: AnyColumn
}

/** The columns of an `ApiKeyRecord` (never the hash). */
export const apikeyColumns = <T extends ApiKeyColumns>(apikeys: T): Pick<T, keyof ApiKeyColumns> => ({
  id: apikeys.id, permission: apikeys.permission, created: apikeys.created, revoked: apikeys.revoked
})

/** The columns of a `ClientRecord` (never the session hash). */
export const clientColumns = <T extends ClientColumns>(clients: T): Pick<T, keyof ClientColumns> => ({
  id: clients.id, device: clients.device, location: clients.location, lastActive: clients.lastActive
})

/** The columns of an `EventRecord`, named explicitly for the subscriptions join. */
export const eventColumns = <T extends EventColumns>(events: T): Pick<T, keyof EventColumns> => ({
  id: events.id, clientId: events.clientId, device: events.device, name: events.name,
  location: events.location, action: events.action, value: events.value, time: events.time
})

/** An event matches a subscription with its name, from the subscribed location or (null) any. */
export function subscriptionMatches (
  events: { name: AnyColumn, location: AnyColumn },
  subscriptions: { eventName: AnyColumn, location: AnyColumn }
): SQL | undefined {
  return and(
    eq(events.name, subscriptions.eventName),
    or(isNull(subscriptions.location), eq(events.location, subscriptions.location))
  )
}

/**
 * The records of a group of events just inserted, whose insert answered only their ids (in
 * the order of the group): each event as sent, with its id and the group's time, its
 * properties in the order of a row read back, so that both kinds of record share one shape.
 */
export function insertedEvents (group: NewEventRecord[], ids: ReadonlyArray<number | string>, time: number): EventRecord[] {
  if (ids.length !== group.length) throw new Error(`the group insert stored ${ids.length} events for ${group.length}`)
  return group.map((event, i) => ({
    id: Number(ids[i]), clientId: event.clientId, device: event.device, name: event.name, location: event.location, action: event.action, value: event.value, time
  }))
}
