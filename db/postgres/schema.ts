import { bigint, index, integer, pgTable, primaryKey, text, uniqueIndex } from 'drizzle-orm/pg-core'

// Keep in step with ../sqlite/schema.ts: same tables, columns, indexes and meaning
// (`Tables` in ../statements.ts checks the columns the shared statements use, with their
// types). Times are epoch milliseconds (bigint read as a JS number).

export const apikeys = pgTable('apikeys', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  keyHash: text('key_hash').notNull().unique(),
  permission: text('permission', { enum: ['read', 'write', 'admin'] }).notNull(),
  created: bigint('created', { mode: 'number' }).notNull(),
  revoked: bigint('revoked', { mode: 'number' })
})

export const clients = pgTable('clients', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  device: text('device'),
  location: text('location'),
  sessionHash: text('session_hash').notNull().unique(),
  apikeyId: integer('apikey_id').notNull().references(() => apikeys.id),
  created: bigint('created', { mode: 'number' }).notNull(),
  lastActive: bigint('last_active', { mode: 'number' }).notNull(),
  /** when the session was ended (DELETE /auth); null while it is usable */
  ended: bigint('ended', { mode: 'number' }),
  /** 'viewer': a person's browser signed in to watch (the dashboard), listed apart from devices */
  kind: text('kind', { enum: ['device', 'viewer'] }).notNull().default('device')
}, (table) => [
  index('clients_last_active_idx').on(table.lastActive),
  // the MQTT bridge finds a device's client by its API key, device and location
  index('clients_apikey_device_idx').on(table.apikeyId, table.device)
])

export const subscriptions = pgTable('subscriptions', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  clientId: integer('client_id').notNull().references(() => clients.id, { onDelete: 'cascade' }),
  eventName: text('event_name').notNull(),
  location: text('location')
}, (table) => [
  uniqueIndex('subscriptions_client_event_idx').on(table.clientId, table.eventName)
])

export const events = pgTable('events', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  clientId: integer('client_id').notNull().references(() => clients.id),
  device: text('device'),
  name: text('name').notNull(),
  location: text('location'),
  action: text('action'),
  value: text('value'),
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
export const idempotencyKeys = pgTable('idempotency_keys', {
  apikeyId: integer('apikey_id').notNull().references(() => apikeys.id),
  key: text('key').notNull(),
  eventId: integer('event_id').notNull().references(() => events.id),
  created: bigint('created', { mode: 'number' }).notNull()
}, (table) => [
  primaryKey({ columns: [table.apikeyId, table.key] }),
  index('idempotency_keys_created_idx').on(table.created)
])

/**
 * What a bridge (the MQTT bridge: `name` 'mqtt') keeps across restarts: the id of the last event
 * the broker acknowledged, and the API key its devices' clients belong to.
 */
export const bridges = pgTable('bridges', {
  name: text('name').primaryKey(),
  lastEventId: integer('last_event_id').notNull(),
  apikeyId: integer('apikey_id').references(() => apikeys.id)
})
