// The repository methods that are the same in every dialect: they run the statements of
// ./statements.ts, prepared, through the dialect's `run`. A dialect adds what it does its own
// way: creating clients and events, ending sessions, revoking keys (./sqlite, ./postgres).
import type { Table } from 'drizzle-orm'
import type { Permission } from '../schemas/apikeys.js'
import type { AccessListeners } from './access.js'
import {
  DatabaseUnavailableError,
  type ApiKeyRecord, type ApiKeyRepository, type BridgeRepository, type ClientKind, type ClientRepository, type EventNotifications, type EventRecord,
  type EventRepository, type ListFilter, type RevokeResult, type SessionRecord
} from './repositories.js'
import { hashSecret, newApiKey } from './secrets.js'
import type { SessionCache } from './session-cache.js'
import { idsValue, listRead, pageValues, type ListStatements, type Mode, type NewApiKeyRow, type Runnable, type statements, type Values } from './statements.js'

/** A statement as `prepareAll` prepares it: named `cred_<key>`, a list's oldest-first one `cred_<key>_oldest`. */
type PreparedOf<S> = {
  [K in keyof S]: S[K] extends { prepare (name: string): infer P }
    ? P
    : S[K] extends ListStatements<{ prepare (name: string): infer P }> ? ListStatements<P> : never
}

type Preparable = { prepare (name: string): unknown } | ListStatements<{ prepare (name: string): unknown }>

/** Prepares every statement of `queries` (see `PreparedOf`). */
export function prepareAll<S extends Record<string, Preparable>> (queries: S): PreparedOf<S> {
  const prepared: Record<string, unknown> = {}
  for (const [key, query] of Object.entries(queries)) {
    const name = `cred_${key}`
    prepared[key] = 'prepare' in query
      ? query.prepare(name)
      : { newest: query.newest.prepare(name), oldest: query.oldest.prepare(`${name}_oldest`) }
  }
  // each key holds what PreparedOf<S> says: its statement, or its pair of statements, prepared
  return prepared as PreparedOf<S>
}

/** The shared statements, prepared, as the shared methods run them (either mode). */
export type SharedStatements = PreparedOf<ReturnType<typeof statements<Mode, Table>>>

/** What the shared methods need of a dialect. */
export interface DialectParts {
  /** Runs one prepared statement (PostgreSQL: on the current pool, with its deadline). */
  run<R> (statement: (prepared: SharedStatements) => Runnable<R>, values?: Values): Promise<R>
  /** Inserts a new API key: its record, as the insert answers it. */
  insertApikey (row: NewApiKeyRow): Promise<ApiKeyRecord | undefined>
  /** the LIMIT value that means no limit */
  noLimit: number | null
  /** Ids above it name no row (PostgreSQL's `integer` columns): no query is sent for them. */
  maxId: number
  /** the newest events in memory (./recent-events.ts): undefined where they cannot answer now */
  recent: { list (filter: ListFilter): EventRecord[] | undefined, latestId (): number | undefined }
  sessions: SessionCache
  /**
   * Called before a session is answered from memory: throws when the database cannot tell whether
   * it is current. Unset where notifications (or the looks) keep the cache current.
   */
  sessionsCurrent? (): void
  access: AccessListeners
  /** `AccessChanges.look`; unset where notifications (or the looks) tell the listeners, in commit order */
  look? (): void
}

/** Whether `id` may name a row: ids above `maxId` never do, and are not sent to the database. */
export const isRowId = (id: number, maxId: number): boolean => Number.isInteger(id) && id >= 1 && id <= maxId

/** The methods every dialect's repositories share. */
export function sharedRepositories (parts: DialectParts) {
  const { run, recent, sessions, access } = parts
  const first = async <R>(rows: Promise<R[]>): Promise<R | undefined> => (await rows)[0]
  /** true when nothing can come after `after`: a poll with nothing new needs no query */
  const nothingAfter = (after: number | undefined): boolean => {
    if (after === undefined) return false
    const latest = recent.latestId()
    return latest !== undefined && after >= latest
  }

  /** Runs a list (see listPage) with the values of `filter` and `values`; answers newest first. */
  async function readList<R> (list: (prepared: SharedStatements) => ListStatements<Runnable<R[]>>, filter: ListFilter, values: Values = {}): Promise<R[]> {
    const read = listRead(parts.noLimit, filter)
    return read.answer(await run((prepared) => read.pick(list(prepared)), { ...values, ...read.values }))
  }

  const apikeys: Omit<ApiKeyRepository, 'revoke'> = {
    async create (permission: Permission) {
      const apikey = newApiKey()
      const row = await parts.insertApikey({ keyHash: hashSecret(apikey), permission, created: Date.now() })
      if (row === undefined) throw new Error('the insert of an API key returned no row')
      return { ...row, apikey }
    },
    findByKey: (apikey: string): Promise<ApiKeyRecord | undefined> => first(run((s) => s.apikeyByHash, { hash: hashSecret(apikey) })),
    get: async (id: number) => isRowId(id, parts.maxId) ? first(run((s) => s.apikeyById, { id })) : undefined,
    list: (filter: ListFilter) => readList((s) => s.apikeyList, filter),
    count: async () => (await first(run((s) => s.apikeyCount)))?.n ?? 0
  }

  function findBySession (sessionKey: string): Promise<SessionRecord | undefined> {
    try {
      parts.sessionsCurrent?.()
    } catch (err) {
      return Promise.reject(err)
    }
    return sessions.lookup(sessionKey, (key) => first(run((s) => s.sessionByHash, { hash: hashSecret(key) })))
  }

  const clients: Omit<ClientRepository, 'create' | 'end'> = {
    // not async: an async function returning a promise adds two turns of the microtask queue
    findBySession,
    cachedSession (sessionKey: string) {
      try {
        parts.sessionsCurrent?.()
      } catch {
        return undefined // findBySession reports it
      }
      return sessions.peek(sessionKey)
    },
    async touch (id: number, now: number) {
      if (isRowId(id, parts.maxId)) await run((s) => s.clientTouch, { id, now })
    },
    get: async (id: number) => isRowId(id, parts.maxId) ? first(run((s) => s.clientById, { id })) : undefined,
    listActive: (since: number, filter: ListFilter, kind: ClientKind = 'device') => readList((s) => s.clientsActive, filter, { since, kind }),
    countActive: async (since: number, kind: ClientKind = 'device') => (await first(run((s) => s.clientsActiveCount, { since, kind })))?.n ?? 0,
    subscriptions: async (id: number) => isRowId(id, parts.maxId) ? run((s) => s.subscriptionsOf, { clientId: id }) : []
  }

  const events: Omit<EventRepository, 'create'> = {
    get: async (id: number) => isRowId(id, parts.maxId) ? first(run((s) => s.eventById, { id })) : undefined,
    list: async (filter: ListFilter) => recent.list(filter) ?? readList((s) => s.eventList, filter),
    listByClient: async (clientId: number, filter: ListFilter) =>
      nothingAfter(filter.after) || !isRowId(clientId, parts.maxId) ? [] : readList((s) => s.eventsByClient, filter, { clientId }),
    listSubscribed: async (clientId: number, filter: ListFilter) =>
      nothingAfter(filter.after) || !isRowId(clientId, parts.maxId) ? [] : readList((s) => s.eventsSubscribed, filter, { clientId }),
    latestId: async () => recent.latestId() ?? (await first(run((s) => s.latestEventId)))?.id ?? 0,
    async listAfter (after: number, count: number, subscribedBy?: number) {
      if (nothingAfter(after)) return []
      // the oldest-first read of a list capped at `count` (not reversed: streams send them in this order)
      const values = pageValues(parts.noLimit, { after, maxItems: count })
      if (subscribedBy === undefined) return run((s) => s.eventList.oldest, values)
      return isRowId(subscribedBy, parts.maxId) ? run((s) => s.eventsSubscribed.oldest, { ...values, clientId: subscribedBy }) : []
    }
  }

  const bridge: Omit<BridgeRepository, 'lead'> = {
    state: (name: string) => first(run((s) => s.bridgeByName, { name })),
    async create (name: string, { lastEventId, apikeyId }) {
      await run((s) => s.bridgeInsert, { name, lastEventId, apikeyId })
    },
    async saveCursor (name: string, lastEventId: number) {
      await run((s) => s.bridgeCursor, { name, lastEventId })
    },
    async saveApikey (name: string, apikeyId: number) {
      await run((s) => s.bridgeApikey, { name, apikeyId })
    },
    deviceClient: async (apikeyId: number, device: string, location: string | null) =>
      (await first(run((s) => s.deviceClient, { apikeyId, device, location: location ?? '' })))?.id
  }

  return {
    apikeys,
    clients,
    events,
    bridge,
    access: {
      listen: access.listen.bind(access),
      ended: async (clientIds: readonly number[]): Promise<number[]> => clientIds.length === 0
        ? []
        : (await run((s) => s.sessionsEnded, idsValue(clientIds))).map((row) => row.id),
      look: parts.look ?? (() => {})
    }
  }
}

/**
 * Revokes key `id` at `now` with `queries` of a transaction that holds the dialect's
 * revocation lock (so that the last admin key check holds across instances); `revoked` is
 * called after this call revoked it (to tell other instances, in the same transaction).
 */
export async function revokeUnderLock (
  queries: Pick<SharedStatements, 'apikeyById' | 'activeAdminCount' | 'apikeyRevoke'>, id: number, now: number, revoked: () => PromiseLike<unknown>
): Promise<RevokeResult> {
  const [key] = await queries.apikeyById.execute({ id })
  if (key === undefined) return { outcome: 'not-found' }
  if (key.revoked !== null) return { outcome: 'revoked', apikey: key }
  if (key.permission === 'admin') {
    const [admins] = await queries.activeAdminCount.execute()
    if ((admins?.n ?? 0) <= 1) return { outcome: 'last-admin' }
  }
  await queries.apikeyRevoke.execute({ id, now })
  await revoked()
  return { outcome: 'revoked', apikey: { ...key, revoked: now } }
}

/** What a dialect writes its own way (see `withWrites`). */
export interface DialectWrites {
  revoke: ApiKeyRepository['revoke']
  createClient: ClientRepository['create']
  endClient: ClientRepository['end']
  createEvent: EventRepository['create']
}

/** The repositories of a dialect: the shared methods, and its own writes. */
export function withWrites (shared: ReturnType<typeof sharedRepositories>, writes: DialectWrites) {
  return {
    apikeys: { ...shared.apikeys, revoke: writes.revoke },
    clients: { ...shared.clients, create: writes.createClient, end: writes.endClient },
    events: { ...shared.events, create: writes.createEvent },
    access: shared.access
  }
}

/** How long readiness waits for the database before calling it down. */
const READY_TIMEOUT_MS = 2000

/** `Repositories.ready` of the database called `name`. */
export async function readiness (name: string, ping: () => Promise<void>, notifications: EventNotifications): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS)
  })
  try {
    await Promise.race([ping(), timeout])
  } catch (err) {
    throw new DatabaseUnavailableError(`the ${name} database is unavailable`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
  if (!notifications.listening()) throw new DatabaseUnavailableError(`the ${name} event listener is not connected`)
}
