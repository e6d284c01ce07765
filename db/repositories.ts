import type { Permission } from '../schemas/apikeys.js'

/** List filters of every list route: ids below `before`, above `after`, then offset, then limit. */
export interface ListFilter {
  before?: number | undefined
  after?: number | undefined
  limit?: number | undefined
  offset?: number | undefined
  /**
   * The most items an answer without `limit` holds (the routes pass `maxPageSize`); unset, such
   * an answer holds them all (for scripts, e.g. `cred-gen --list`). See `listPage`.
   */
  maxItems?: number | undefined
}

/**
 * How a list reads its rows, on every database and in memory alike.
 *
 * - Newest first (`oldestFirst: false`): skip `offset`, then at most `limit` rows (undefined:
 *   all). `limit` is the filter's, or else `maxItems`: without `after`, a capped list is the
 *   newest `maxItems`.
 * - Oldest first (`oldestFirst: true`), for `after` without `limit` on a capped list: a device
 *   polls `after=<highest id it has seen>` and takes the highest id of the answer as its next
 *   cursor, so a page cut at the cap must be the items right *after* the cursor, or those
 *   beyond the page would never be seen. Read the `limit` (= offset + maxItems) oldest matching
 *   rows in ascending id order; `pageAnswer` turns them into the answer: exactly the
 *   newest-first answer when that fits in `maxItems`, otherwise the oldest `maxItems` after the
 *   cursor — newest first either way.
 */
export type ListPage =
  | { oldestFirst: false, offset: number, limit: number | undefined }
  | { oldestFirst: true, offset: number, limit: number, maxItems: number }

export function listPage ({ after, limit, offset = 0, maxItems }: ListFilter): ListPage {
  if (limit === undefined && after !== undefined && maxItems !== undefined) {
    return { oldestFirst: true, offset, limit: offset + maxItems, maxItems }
  }
  return { oldestFirst: false, offset, limit: limit ?? maxItems }
}

/** The answer of a list from the rows `page` read (in its order): newest first. */
export function pageAnswer<T> (page: ListPage, rows: T[]): T[] {
  if (!page.oldestFirst) return rows
  return rows.slice(0, Math.max(0, Math.min(page.maxItems, rows.length - page.offset))).reverse()
}

export interface ApiKeyRecord {
  id: number
  permission: Permission
  /** epoch ms */
  created: number
  revoked: number | null
}

export interface ClientRecord {
  id: number
  device: string | null
  location: string | null
  lastActive: number
}

/** A client found by its session key, with what its API key allows. */
export interface SessionRecord extends ClientRecord {
  apikeyId: number
  permission: Permission
}

export interface EventRecord {
  id: number
  clientId: number
  device: string | null
  name: string
  location: string | null
  action: string | null
  value: string | null
  /** epoch ms */
  time: number
}

/** A client's interest in one event name, from one location or (null) any. */
export interface Subscription {
  eventName: string
  location: string | null
}

/** A device, or a viewer: a person's browser signed in to watch (the dashboard). */
export type ClientKind = 'device' | 'viewer'

export interface NewClient {
  device: string | null
  location: string | null
  apikeyId: number
  subscriptions: Subscription[]
  /** 'device' unless given */
  kind?: ClientKind
}

export interface NewEventRecord {
  clientId: number
  device: string | null
  name: string
  location: string | null
  action: string | null
  value: string | null
}

/** An `Idempotency-Key` as one API key sent it: keys of different API keys are independent. */
export interface IdempotencyKey {
  apikeyId: number
  key: string
}

/**
 * What posting an event stored: the new event, or, marked `replayed`, the event an earlier post
 * with the same idempotency key stored (then nothing new was stored).
 */
export type PostedEvent = EventRecord & { replayed?: true }

/** What revoking a key did. */
export type RevokeResult =
  | { outcome: 'revoked', apikey: ApiKeyRecord }
  | { outcome: 'not-found' }
  | { outcome: 'last-admin' }

export interface ApiKeyRepository {
  /** Creates a key; the returned `apikey` is the only copy of the secret. */
  create (permission: Permission): Promise<ApiKeyRecord & { apikey: string }>
  /** The unrevoked key with this secret, if any. */
  findByKey (apikey: string): Promise<ApiKeyRecord | undefined>
  get (id: number): Promise<ApiKeyRecord | undefined>
  list (filter: ListFilter): Promise<ApiKeyRecord[]>
  count (): Promise<number>
  /**
   * Revokes a key at `now` (already revoked: left as it was). The last unrevoked admin key
   * is never revoked: checked and written atomically, also against other instances.
   */
  revoke (id: number, now: number): Promise<RevokeResult>
}

export interface ClientRepository {
  /** Creates a client with its subscriptions and a new session; returns the plain session key. */
  create (client: NewClient): Promise<{ id: number, sessionKey: string }>
  findBySession (sessionKey: string): Promise<SessionRecord | undefined>
  /**
   * The session `findBySession` would answer from this process's memory (a session looked up in
   * the last second, and not ended or revoked since), with no query and no promise: the
   * authentication of most requests. Undefined when it is not held (or cannot be vouched for
   * now): ask `findBySession`.
   */
  cachedSession (sessionKey: string): SessionRecord | undefined
  /** Marks the client active at `now` (epoch ms). */
  touch (id: number, now: number): Promise<void>
  /** Ends the client's session: its key is refused from now on and it is no longer active. */
  end (id: number, now: number): Promise<void>
  get (id: number): Promise<ClientRecord | undefined>
  /** Clients of `kind` active at or after `since` (epoch ms), sessions not ended. */
  listActive (since: number, filter: ListFilter, kind?: ClientKind): Promise<ClientRecord[]>
  /** How many clients `listActive(since, {}, kind)` would list, in one count on clients_last_active_idx. */
  countActive (since: number, kind?: ClientKind): Promise<number>
  subscriptions (id: number): Promise<Subscription[]>
}

export interface EventRepository {
  /**
   * Stores an event; it is durable when the promise resolves. With `idempotency`: when that API
   * key sent that key within the last 24 hours (IDEMPOTENCY_WINDOW_MS), stores nothing and
   * answers the event it stored then, `replayed` — checked and written atomically, also against
   * other instances, and against posts with the same key at the same moment.
   */
  create (event: NewEventRecord, idempotency?: IdempotencyKey): Promise<PostedEvent>
  get (id: number): Promise<EventRecord | undefined>
  list (filter: ListFilter): Promise<EventRecord[]>
  listByClient (clientId: number, filter: ListFilter): Promise<EventRecord[]>
  /** Events matching any of the client's subscriptions, in one indexed query. */
  listSubscribed (clientId: number, filter: ListFilter): Promise<EventRecord[]>
  /** The highest event id (0 when there are none). */
  latestId (): Promise<number>
  /**
   * Events with id > `after` in ascending order, at most `limit` — all of them, or those
   * matching the subscriptions of client `subscribedBy`. Streams catch up with this.
   */
  listAfter (after: number, limit: number, subscribedBy?: number): Promise<EventRecord[]>
}

/** What a bridge keeps across restarts (`BridgeRepository`). */
export interface BridgeState {
  /** the id of the last event the other side acknowledged */
  lastEventId: number
  /** the API key the bridge's devices' clients belong to (null: none yet) */
  apikeyId: number | null
}

/** A role held by one process among those sharing the database (`BridgeRepository.lead`). */
export interface Lease {
  /** Gives the role up: another process may take it from now on. */
  release (): Promise<void>
}

/**
 * What a bridge to another system (the MQTT bridge, `name` 'mqtt') keeps in the database, and
 * which one of the processes sharing the database runs it.
 */
export interface BridgeRepository {
  /** The bridge's saved state, or undefined before its first start. */
  state (name: string): Promise<BridgeState | undefined>
  /** Saves the state of a bridge that has none yet. */
  create (name: string, state: BridgeState): Promise<void>
  /** Moves the bridge's cursor to `lastEventId`. */
  saveCursor (name: string, lastEventId: number): Promise<void>
  /** Sets the API key of the bridge's devices. */
  saveApikey (name: string, apikeyId: number): Promise<void>
  /** The client of `device` at `location` (null: none) of API key `apikeyId`, its session not ended. */
  deviceClient (apikeyId: number, device: string, location: string | null): Promise<number | undefined>
  /**
   * Takes the role `name` when no other process sharing the database holds it: a lease, or
   * undefined when another holds it now (try again later). While held, no other process gets
   * it; `onLost` is called if the role is lost without `release` (the connection that held it
   * dropped), and the role is free for others when this process dies.
   */
  lead (name: string, onLost: () => void): Promise<Lease | undefined>
}

/** Events committed, as `EventNotifications` tells them. */
export interface CommittedEvents {
  /** the highest id committed, when known */
  latest?: number
  /** the events themselves, in id order: those this process just committed, told at once */
  events?: readonly EventRecord[]
}

/** Tells when events are committed: every dialect has one. */
export interface EventNotifications {
  /**
   * true when the commits of every process sharing the database are told, each after the access
   * changes committed before it (PostgreSQL's LISTEN/NOTIFY): a row read with an id above the
   * highest told may precede a revocation not heard yet, and waits for its notification.
   * false when only this process's own commits are told (SQLite): rows read are handed out as
   * they are, and `access.look()` tells what other processes ended.
   */
  readonly everyCommit: boolean
  /**
   * Calls `onEvents` after events are committed, and `onConnected` each time a connection that
   * listens for other processes' commits is (re)established (events may have been missed before).
   *
   * Events and ended access are told in commit order: when `onEvents` is called, every session
   * ended and key revoked before those events committed has been passed to the `access`
   * listeners already. (On PostgreSQL, only while something listens here are other instances'
   * ends and revocations heard at all.) Listeners must not throw.
   */
  listen (onEvents: (committed: CommittedEvents) => void, onConnected: () => void): Promise<{ close: () => Promise<void> }>
  /** whether changes made elsewhere are heard now (false before listen() and while reconnecting) */
  listening (): boolean
}

/** An option of both dialects' open functions. */
export interface ClockOption {
  /**
   * epoch ms now: the time stored with new events and idempotency keys, by which keys expire
   * (default Date.now; tests move it)
   */
  clock?: () => number
}

/**
 * What ended: these sessions (client ids), every session of these API keys, or — when the
 * repositories only know that something may have changed (another process committed, a
 * notification listener reconnected) — `unknown`: whoever holds sessions re-checks them with
 * `AccessChanges.ended`.
 */
export type AccessEnded =
  | { clientIds: readonly number[] }
  | { apikeyIds: readonly number[] }
  | 'unknown'

/**
 * Sessions that end and keys that are revoked, by this instance or any other sharing the
 * database, for whoever holds something open for a session (event streams, long polls).
 */
export interface AccessChanges {
  /**
   * Calls `listener` synchronously, in the order the changes committed, whenever this process
   * learns that access ended: its own `clients.end` and `apikeys.revoke` before they resolve,
   * and what other processes did as soon as it is told (PostgreSQL: the notification; SQLite:
   * another connection's commit, seen in `data_version`). Returns a function that removes it.
   */
  listen (listener: (ended: AccessEnded) => void): () => void
  /** Those of `clientIds` whose session has ended or whose API key is revoked, in one query. */
  ended (clientIds: readonly number[]): Promise<number[]>
  /**
   * Tells the listeners now of what changed elsewhere, when that needs no query (SQLite:
   * another connection committed since the last look): call it before handing out rows
   * read from the database to someone whose session may have ended meanwhile.
   */
  look (): void
}

/** The data layer the service sees, whatever the database. */
export interface Repositories {
  /** the database's name, for people: 'SQLite', 'PostgreSQL', 'MariaDB', 'MySQL' */
  readonly name: string
  /** where the data lives, for logs (file path, or host:port/database) */
  readonly location: string
  /** how many connections the repositories may open at once */
  readonly poolSize: number
  /** what the database's settings weaken, in words, for the log at start (e.g. a commit not flushed) */
  readonly warnings?: readonly string[]
  apikeys: ApiKeyRepository
  clients: ClientRepository
  events: EventRepository
  access: AccessChanges
  notifications: EventNotifications
  bridge: BridgeRepository
  /** Resolves when the database answers a trivial query; DatabaseUnavailableError when it cannot. */
  ping (): Promise<void>
  /**
   * Resolves when this instance can serve requests: the database answers within a few seconds and
   * changes made elsewhere are heard. Otherwise rejects with a DatabaseUnavailableError whose
   * message says what is down, in words ("the SQLite database is unavailable").
   */
  ready (): Promise<void>
  close (): Promise<void>
}

/** The database could not be opened or reached. */
export class DatabaseUnavailableError extends Error {
  readonly statusCode = 503
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'DatabaseUnavailableError'
  }
}
