import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Times are epoch milliseconds in every dialect; the API turns them into ISO 8601 strings.
// Keep in step with ../postgres/schema.ts (`Tables` in ../statements.ts checks the columns
// the shared statements use, with their types).

export const apikeys = sqliteTable('apikeys', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  keyHash: text('key_hash').notNull().unique(),
  permission: text('permission', { enum: ['read', 'write', 'admin'] }).notNull(),
  created: integer('created').notNull(),
  revoked: integer('revoked')
})

export const clients = sqliteTable('clients', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  device: text('device'),
  location: text('location'),
  sessionHash: text('session_hash').notNull().unique(),
  apikeyId: integer('apikey_id').notNull().references(() => apikeys.id),
  created: integer('created').notNull(),
  lastActive: integer('last_active').notNull(),
  /** when the session was ended (DELETE /auth); null while it is usable */
  ended: integer('ended'),
  /** 'viewer': a person's browser signed in to watch (the dashboard), listed apart from devices */
  kind: text('kind', { enum: ['device', 'viewer'] }).notNull().default('device')
}, (table) => [
  index('clients_last_active_idx').on(table.lastActive),
  // the MQTT bridge finds a device's client by its API key, device and location
  index('clients_apikey_device_idx').on(table.apikeyId, table.device)
])

export const subscriptions = sqliteTable('subscriptions', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  clientId: integer('client_id').notNull().references(() => clients.id, { onDelete: 'cascade' }),
  eventName: text('event_name').notNull(),
  location: text('location')
}, (table) => [
  uniqueIndex('subscriptions_client_event_idx').on(table.clientId, table.eventName)
])

export const events = sqliteTable('events', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  clientId: integer('client_id').notNull().references(() => clients.id),
  device: text('device'),
  name: text('name').notNull(),
  location: text('location'),
  action: text('action'),
  value: text('value'),
  time: integer('time').notNull()
}, (table) => [
  index('events_name_id_idx').on(table.name, table.id),
  index('events_client_id_idx').on(table.clientId, table.id)
])

/**
 * The `Idempotency-Key`s of POST /events: which event a key sent by an API key created, and
 * when. Read only while younger than IDEMPOTENCY_WINDOW_MS; older rows are purged along
 * `created`.
 */
export const idempotencyKeys = sqliteTable('idempotency_keys', {
  apikeyId: integer('apikey_id').notNull().references(() => apikeys.id),
  key: text('key').notNull(),
  eventId: integer('event_id').notNull().references(() => events.id),
  created: integer('created').notNull()
}, (table) => [
  primaryKey({ columns: [table.apikeyId, table.key] }),
  index('idempotency_keys_created_idx').on(table.created)
])

/**
 * What a bridge (the MQTT bridge: `name` 'mqtt') keeps across restarts: the id of the last event
 * the broker acknowledged, and the API key its devices' clients belong to.
 */
export const bridges = sqliteTable('bridges', {
  name: text('name').primaryKey(),
  lastEventId: integer('last_event_id').notNull(),
  apikeyId: integer('apikey_id').references(() => apikeys.id)
})
