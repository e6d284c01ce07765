import { bigint, customType, index, int, mysqlTable, primaryKey, uniqueIndex, varchar } from 'drizzle-orm/mysql-core'

// Keep in step with ../sqlite/schema.ts and ../postgres/schema.ts: same tables, columns,
// indexes and meaning (`Tables` in ../statements.ts checks the columns the shared statements
// use, with their types). Times are epoch milliseconds (bigint read as a JS number).
//
// Text is stored as bytes (VARBINARY / BLOB holding UTF-8), so that it compares as the other
// two databases compare it: exactly. MySQL's and MariaDB's text collations ignore case and
// accents, or (utf8mb4_bin, a PAD SPACE collation) trailing spaces, and the exact NO PAD
// collations are named differently on each server (utf8mb4_nopad_bin, utf8mb4_0900_bin):
// bytes are exact on both, 4-byte characters included.

/** Text as UTF-8 bytes: VARBINARY(bytes), or BLOB when `bytes` is 'blob'. Read back as a string. */
const utf8 = customType<{ data: string, driverData: Buffer | string, config: { bytes: number | 'blob' } }>({
  dataType: (config) => config?.bytes === 'blob' ? 'blob' : `varbinary(${config?.bytes ?? 255})`,
  fromDriver: (value) => typeof value === 'string' ? value : value.toString('utf8')
})

/** The most bytes of a name, location, device or action: NAME_MAX (240) characters of up to 4 bytes. */
const NAME_BYTES = 960

export const apikeys = mysqlTable('apikeys', {
  id: int('id').primaryKey().autoincrement(),
  keyHash: utf8('key_hash', { bytes: 64 }).notNull().unique(),
  permission: varchar('permission', { length: 5, enum: ['read', 'write', 'admin'] }).notNull(),
  created: bigint('created', { mode: 'number' }).notNull(),
  revoked: bigint('revoked', { mode: 'number' })
})

export const clients = mysqlTable('clients', {
  id: int('id').primaryKey().autoincrement(),
  device: utf8('device', { bytes: NAME_BYTES }),
  location: utf8('location', { bytes: NAME_BYTES }),
  sessionHash: utf8('session_hash', { bytes: 64 }).notNull().unique(),
  apikeyId: int('apikey_id').notNull().references(() => apikeys.id),
  created: bigint('created', { mode: 'number' }).notNull(),
  lastActive: bigint('last_active', { mode: 'number' }).notNull(),
  /** when the session was ended (DELETE /auth); null while it is usable */
  ended: bigint('ended', { mode: 'number' }),
  /** a device, or a viewer (a dashboard sign-in, listed apart) */
  kind: varchar('kind', { length: 6, enum: ['device', 'viewer'] }).notNull().default('device')
}, (table) => [
  index('clients_last_active_idx').on(table.lastActive),
  index('clients_apikey_device_idx').on(table.apikeyId, table.device)
])

export const subscriptions = mysqlTable('subscriptions', {
  id: int('id').primaryKey().autoincrement(),
  clientId: int('client_id').notNull().references(() => clients.id, { onDelete: 'cascade' }),
  eventName: utf8('event_name', { bytes: NAME_BYTES }).notNull(),
  location: utf8('location', { bytes: NAME_BYTES })
}, (table) => [
  uniqueIndex('subscriptions_client_event_idx').on(table.clientId, table.eventName)
])

export const events = mysqlTable('events', {
  id: int('id').primaryKey().autoincrement(),
  clientId: int('client_id').notNull().references(() => clients.id),
  device: utf8('device', { bytes: NAME_BYTES }),
  name: utf8('name', { bytes: NAME_BYTES }).notNull(),
  location: utf8('location', { bytes: NAME_BYTES }),
  action: utf8('action', { bytes: NAME_BYTES }),
  value: utf8('value', { bytes: 'blob' }),
  time: bigint('time', { mode: 'number' }).notNull()
}, (table) => [
  index('events_name_id_idx').on(table.name, table.id),
  index('events_client_id_idx').on(table.clientId, table.id)
])

/**
 * The `Idempotency-Key`s of POST /events: which event a key sent by an API key created, and
 * when. Read only while younger than IDEMPOTENCY_WINDOW_MS; older rows are purged along
 * `created`.
 */
export const idempotencyKeys = mysqlTable('idempotency_keys', {
  apikeyId: int('apikey_id').notNull().references(() => apikeys.id),
  key: utf8('key', { bytes: 1020 }).notNull(),
  eventId: int('event_id').notNull().references(() => events.id),
  created: bigint('created', { mode: 'number' }).notNull()
}, (table) => [
  primaryKey({ columns: [table.apikeyId, table.key] }),
  index('idempotency_keys_created_idx').on(table.created)
])

/**
 * Sessions ended and keys revoked, in commit order (written under the `order` lock): other
 * instances read the rows above the last one they saw (../mysql/changes.ts), as PostgreSQL's
 * instances hear a notification. Exactly one of `clientId` and `apikeyId` is set. Rows older
 * than ACCESS_ENDED_KEEP_MS are purged along `created` (../mysql/index.ts).
 */
export const accessEnded = mysqlTable('access_ended', {
  id: int('id').primaryKey().autoincrement(),
  clientId: int('client_id'),
  apikeyId: int('apikey_id'),
  created: bigint('created', { mode: 'number' }).notNull()
}, (table) => [
  index('access_ended_created_idx').on(table.created)
])

/**
 * One row per lock cred takes in a transaction (`select … for update`), held until it commits:
 * `order` orders event inserts, ended sessions and revocations across instances (MariaDB's
 * GET_LOCK is not released by a commit, and lives on after a failed statement).
 */
export const locks = mysqlTable('cred_locks', {
  name: varchar('name', { length: 32 }).primaryKey()
})

/**
 * What a bridge (the MQTT bridge: `name` 'mqtt') keeps across restarts: the id of the last event
 * the broker acknowledged, and the API key its devices' clients belong to.
 */
export const bridges = mysqlTable('bridges', {
  name: varchar('name', { length: 64 }).primaryKey(),
  lastEventId: int('last_event_id').notNull(),
  apikeyId: int('apikey_id').references(() => apikeys.id)
})
