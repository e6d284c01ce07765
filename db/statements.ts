// Every statement that reads the same in each dialect, written once with drizzle's query
// builder. A dialect (./sqlite, ./postgres) passes its drizzle database, its tables and the
// little of its SQL that differs (`SqlDialect`). `QueryDb` and `Tables` name what these
// statements use of them: TypeScript checks each dialect's database and schema against them
// (the columns' types too), and types the rows as drizzle reads them (`Row`).
import { and, asc, count, desc, eq, gt, gte, isNotNull, isNull, lt, max, or, sql, type AnyColumn, type Placeholder, type SQL, type Table } from 'drizzle-orm'
import type { SelectResult } from 'drizzle-orm/query-builders/select.types'
import type { Permission } from '../schemas/apikeys.js'
import { listPage, pageAnswer, type ClientKind, type EventRecord, type ListFilter, type ListPage, type NewEventRecord, type Subscription } from './repositories.js'

/** A column holding `T` (or null, unless `NotNull`), in any dialect. */
type Col<T, NotNull extends boolean = true> = AnyColumn<{ data: T, notNull: NotNull }>

/**
 * The tables and columns the shared statements use: every dialect's schema has them, with
 * these types. `T` is the dialect's table class (drizzle's MySqlTable is more than a Table).
 */
export interface Tables<T extends Table = Table> {
  apikeys: T & { id: Col<number>, keyHash: Col<string>, permission: Col<Permission>, created: Col<number>, revoked: Col<number, false> }
  clients: T & {
    id: Col<number>,
    device: Col<string, false>,
    location: Col<string, false>,
    sessionHash: Col<string>,
    apikeyId: Col<number>,
    created: Col<number>,
    lastActive: Col<number>,
    ended: Col<number, false>,
    kind: Col<ClientKind>
  }
  subscriptions: T & { clientId: Col<number>, eventName: Col<string>, location: Col<string, false> }
  events: T & {
    id: Col<number>,
    clientId: Col<number>,
    device: Col<string, false>,
    name: Col<string>,
    location: Col<string, false>,
    action: Col<string, false>,
    value: Col<string, false>,
    time: Col<number>
  }
  bridges: T & { name: Col<string>, lastEventId: Col<number>, apikeyId: Col<number, false> }
}

/** What a select may read: columns and SQL expressions, by the property names of its rows. */
export type Fields = Record<string, AnyColumn | SQL>
/** A row of a select of `F` from (inner-joined) tables, as drizzle reads it. */
export type Row<F> = SelectResult<F, 'partial', Record<string, 'not-null'>>
/** Placeholder values by name (drizzle's `sql.placeholder`). */
export type Values = Record<string, unknown>

/**
 * How a dialect runs statements: 'async' drivers (postgres.js) only through `execute`; a 'sync'
 * driver (better-sqlite3) also at once, for transactions that must not wait.
 */
export type Mode = 'sync' | 'async'
export interface Runnable<R> {
  execute (values?: Values): PromiseLike<R>
}
export interface SyncRunnable<R> extends Runnable<R> {
  all (values?: Values): R
  get (values?: Values): R extends Array<infer Item> ? Item | undefined : unknown
  run (values?: Values): unknown
}
export type Runs<M extends Mode, R> = M extends 'sync' ? SyncRunnable<R> : Runnable<R>

/** A statement as built: its SQL (scripts/explain-plans.ts) and, prepared, something that runs. */
export type Statement<M extends Mode, R> = Runs<M, R> & {
  toSQL (): { sql: string, params: unknown[] }
  /** prepared once; `name` names it on PostgreSQL */
  prepare (name: string): Runs<M, R>
}
type SelectQuery<M extends Mode, R, T extends Table = Table> = Statement<M, R> & {
  where (where: SQL | undefined): SelectQuery<M, R, T>
  innerJoin (table: T, on: SQL | undefined): SelectQuery<M, R, T>
  orderBy (...order: SQL[]): SelectQuery<M, R, T>
  limit (limit: number | Placeholder): SelectQuery<M, R, T>
  offset (offset: number | Placeholder): SelectQuery<M, R, T>
}

/** The part of a drizzle database (or transaction) the shared statements use, in every dialect. */
export interface QueryDb<M extends Mode, T extends Table = Table> {
  select<F extends Fields> (fields: F): { from (table: T): { $dynamic (): SelectQuery<M, Array<Row<F>>, T> } }
  update (table: T): { set (values: Record<string, SQL | Placeholder>): { where (where: SQL | undefined): Statement<M, unknown> } }
  insert (table: T): { values (values: Record<string, unknown> | Array<Record<string, unknown>>): Statement<M, unknown> }
}

/** A drizzle database whose inserts answer columns of the rows they insert (RETURNING: SQLite, PostgreSQL). */
export interface ReturningDb<M extends Mode> {
  insert (table: Table): {
    values (values: Record<string, unknown>): { returning<F extends Fields> (fields: F): Statement<M, Array<Row<F>>> }
  }
}

/** The little that differs between the dialects' SQL for the same statement. */
export interface SqlDialect {
  /** A bound compared with an id column (PostgreSQL: as bigint, see `idWindow`). */
  idBound (value: Placeholder): SQL | Placeholder
  /** `id` is one of the ids in the placeholder `ids`, a JSON array (`idsValue`). */
  idIn (id: AnyColumn): SQL
  /** The LIMIT value that means no limit. */
  noLimit: number | null
}

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
 * `after < id < before` on `id`: a range on the id index. The bounds go through
 * `SqlDialect.idBound`: PostgreSQL ids are `integer`, and a parameter compared with one is read
 * as an integer too, so there `before=3000000000` would be an out-of-range error, not a bound.
 */
export function idWindow (dialect: SqlDialect, id: AnyColumn): SQL | undefined {
  return and(gt(id, dialect.idBound(afterId)), lt(id, dialect.idBound(beforeId)))
}

/** The value of `SqlDialect.idIn`'s placeholder: one parameter whatever the number of ids, so the statement is prepared once. */
export const idsValue = (ids: readonly number[]): { ids: string } => ({ ids: JSON.stringify(ids) })

/** Larger values mean "no bound" anyway; clamping keeps every bound a safe 64-bit integer. */
const clamp = (value: number): number => Math.min(value, Number.MAX_SAFE_INTEGER)

/** Placeholder values of a list read as `page` says. */
export function pageValues (noLimit: number | null, filter: ListFilter, page: ListPage = listPage(filter)) {
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
export function listRead (noLimit: number | null, filter: ListFilter) {
  const page = listPage(filter)
  return {
    pick: <R>(statements: ListStatements<R>): R => page.oldestFirst ? statements.oldest : statements.newest,
    values: pageValues(noLimit, filter, page),
    answer: <T>(rows: T[]): T[] => pageAnswer(page, rows)
  }
}

/** The columns of an `ApiKeyRecord` (never the hash). */
const apikeyColumns = ({ id, permission, created, revoked }: Tables['apikeys']) => ({ id, permission, created, revoked })

/** The columns of a `ClientRecord` (never the session hash). */
const clientColumns = ({ id, device, location, lastActive }: Tables['clients']) => ({ id, device, location, lastActive })

/** The columns of an `EventRecord`, of the events table or of a subquery reading it (PostgreSQL's subscriptions query). */
export const eventColumns = <T extends Record<keyof EventRecord, unknown>>(e: T): Pick<T, keyof EventRecord> =>
  ({ id: e.id, clientId: e.clientId, device: e.device, name: e.name, location: e.location, action: e.action, value: e.value, time: e.time })

/** An event matches a subscription with its name, from the subscribed location or (null) any. */
export function subscriptionMatches (events: Tables['events'], subscriptions: Tables['subscriptions']): SQL | undefined {
  return and(
    eq(events.name, subscriptions.eventName),
    or(isNull(subscriptions.location), eq(events.location, subscriptions.location))
  )
}

const placeholder = (name: string) => sql.placeholder(name)

/**
 * Every statement the repositories prepare, unprepared (scripts/explain-plans.ts reads their
 * SQL). A dialect may replace one with its own of the same rows: PostgreSQL replaces
 * `eventsSubscribed`.
 */
export function statements<M extends Mode, T extends Table> (db: QueryDb<M, T>, { apikeys, clients, subscriptions, events, bridges }: Tables<T>, dialect: SqlDialect) {
  const window = (id: AnyColumn) => idWindow(dialect, id)
  const byId = (id: AnyColumn) => eq(id, placeholder('id'))
  /** A list's two statements (see listPage), from a function making its query unordered. */
  const bothWays = <R>(query: () => SelectQuery<M, R, T>, id: AnyColumn): ListStatements<SelectQuery<M, R, T>> => ({
    newest: query().orderBy(desc(id)).limit(limit).offset(offset),
    oldest: query().orderBy(asc(id)).limit(limit)
  })
  const apikey = () => db.select(apikeyColumns(apikeys)).from(apikeys).$dynamic()
  const client = () => db.select(clientColumns(clients)).from(clients).$dynamic()
  const event = () => db.select(eventColumns(events)).from(events).$dynamic()
  const activeSince = [gte(clients.lastActive, placeholder('since')), isNull(clients.ended), eq(clients.kind, placeholder('kind'))]
  return {
    apikeyByHash: apikey().where(and(eq(apikeys.keyHash, placeholder('hash')), isNull(apikeys.revoked))),
    apikeyById: apikey().where(byId(apikeys.id)),
    apikeyList: bothWays(() => apikey().where(window(apikeys.id)), apikeys.id),
    apikeyCount: db.select({ n: count() }).from(apikeys).$dynamic(),
    activeAdminCount: db.select({ n: count() }).from(apikeys).$dynamic()
      .where(and(eq(apikeys.permission, 'admin'), isNull(apikeys.revoked))),
    apikeyRevoke: db.update(apikeys).set({ revoked: placeholder('now') }).where(byId(apikeys.id)),
    clientEnd: db.update(clients).set({ ended: placeholder('now') }).where(byId(clients.id)),
    sessionByHash: db.select({ ...clientColumns(clients), apikeyId: clients.apikeyId, permission: apikeys.permission })
      .from(clients).$dynamic().innerJoin(apikeys, eq(apikeys.id, clients.apikeyId))
      .where(and(eq(clients.sessionHash, placeholder('hash')), isNull(clients.ended), isNull(apikeys.revoked))),
    // the open streams' and long polls' sessions that ended or whose key was revoked
    sessionsEnded: db.select({ id: clients.id }).from(clients).$dynamic().innerJoin(apikeys, eq(apikeys.id, clients.apikeyId))
      .where(and(dialect.idIn(clients.id), or(isNotNull(clients.ended), isNotNull(apikeys.revoked)))),
    clientTouch: db.update(clients).set({ lastActive: placeholder('now') }).where(byId(clients.id)),
    clientById: client().where(byId(clients.id)),
    clientsActive: bothWays(() => client().where(and(...activeSince, window(clients.id))), clients.id),
    clientsActiveCount: db.select({ n: count() }).from(clients).$dynamic().where(and(...activeSince)),
    subscriptionsOf: db.select({ eventName: subscriptions.eventName, location: subscriptions.location })
      .from(subscriptions).$dynamic().where(eq(subscriptions.clientId, placeholder('clientId'))),
    eventById: event().where(byId(events.id)),
    // (oldest first, with no upper bound, these are also the catch-up of streams)
    eventList: bothWays(() => event().where(window(events.id)), events.id),
    eventsByClient: bothWays(() => event().where(and(eq(events.clientId, placeholder('clientId')), window(events.id))), events.id),
    // One query over all of the client's subscriptions: each subscription reaches its events
    // through events_name_id_idx (name, id), so `after=` is a range read on that index.
    eventsSubscribed: bothWays(() => db.select(eventColumns(events)).from(subscriptions).$dynamic()
      .innerJoin(events, subscriptionMatches(events, subscriptions))
      .where(and(eq(subscriptions.clientId, placeholder('clientId')), window(events.id))), events.id),
    latestEventId: db.select({ id: max(events.id) }).from(events).$dynamic(),
    bridgeByName: db.select({ lastEventId: bridges.lastEventId, apikeyId: bridges.apikeyId }).from(bridges).$dynamic()
      .where(eq(bridges.name, placeholder('name'))),
    bridgeInsert: db.insert(bridges).values({ name: placeholder('name'), lastEventId: placeholder('lastEventId'), apikeyId: placeholder('apikeyId') }),
    bridgeCursor: db.update(bridges).set({ lastEventId: placeholder('lastEventId') }).where(eq(bridges.name, placeholder('name'))),
    bridgeApikey: db.update(bridges).set({ apikeyId: placeholder('apikeyId') }).where(eq(bridges.name, placeholder('name'))),
    // a bridged device's client: its location '' stands for none (a bridge passes '' for none)
    deviceClient: db.select({ id: clients.id }).from(clients).$dynamic()
      .where(and(eq(clients.apikeyId, placeholder('apikeyId')), eq(clients.device, placeholder('device')),
        sql`coalesce(${clients.location}, '') = ${placeholder('location')}`, isNull(clients.ended)))
      .orderBy(desc(clients.id)).limit(1)
  }
}

/** The row of a new API key. */
export type NewApiKeyRow = { keyHash: string, permission: Permission, created: number }
/** The row of a new client, with its session. */
export type NewClientRow = { device: string | null, location: string | null, sessionHash: string, apikeyId: number, created: number, lastActive: number, kind: ClientKind }

/** Inserts that answer the new row's columns (a dialect without RETURNING writes its own). */
export function returningInserts<M extends Mode> (db: ReturningDb<M>, { apikeys, clients }: Tables) {
  return {
    apikey: (row: NewApiKeyRow) => db.insert(apikeys).values(row).returning(apikeyColumns(apikeys)),
    client: (row: NewClientRow) => db.insert(clients).values(row).returning({ id: clients.id })
  }
}

/** The rows of a new client's subscriptions, inserted in the transaction that inserts the client. */
export function subscriptionsInsert<M extends Mode, T extends Table = Table> (db: QueryDb<M, T>, { subscriptions }: Tables<T>, clientId: number, list: Subscription[]) {
  return db.insert(subscriptions).values(list.map((s) => ({ clientId, eventName: s.eventName, location: s.location })))
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
