import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { and, count, desc, eq, gt, gte, isNull, lt, or, sql } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import type { Permission } from '../schemas/apikeys.js'
import { apikeys, clients, events, subscriptions } from './schema/sqlite.js'
import {
  DatabaseUnavailableError,
  type ApiKeyRecord, type ListFilter, type Repositories, type SessionRecord
} from './repositories.js'
import { hashSecret, newApiKey, newSessionKey } from './secrets.js'

const migrationsFolder = fileURLToPath(new URL('./migrations/sqlite', import.meta.url))

const after = sql.placeholder('after')
const before = sql.placeholder('before')
const limit = sql.placeholder('limit')
const offset = sql.placeholder('offset')

/** Placeholder values for a list filter; SQLite reads LIMIT -1 as "no limit". */
function page (filter: ListFilter) {
  return {
    after: filter.after ?? -1,
    before: filter.before ?? Number.MAX_SAFE_INTEGER,
    limit: filter.limit ?? -1,
    offset: filter.offset ?? 0
  }
}

const apikeyColumns = {
  id: apikeys.id, permission: apikeys.permission, created: apikeys.created, revoked: apikeys.revoked
}
const clientColumns = {
  id: clients.id, device: clients.device, location: clients.location, lastActive: clients.lastActive
}

/**
 * Opens (creating if needed) the SQLite file, applies migrations and returns the repositories.
 * WAL mode with a busy timeout; synchronous stays FULL so an acknowledged write survives a crash.
 */
export function openSqlite (file: string): Repositories {
  const path = file === ':memory:' ? file : resolve(file)
  let sqlite: Database.Database
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
    sqlite = new Database(path)
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('busy_timeout = 5000')
    sqlite.pragma('foreign_keys = ON')
  } catch (err) {
    throw new DatabaseUnavailableError(`cannot open SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }
  const db = drizzle({ client: sqlite })
  try {
    migrate(db, { migrationsFolder })
  } catch (err) {
    sqlite.close()
    throw new DatabaseUnavailableError(`cannot apply migrations to SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }

  const listWhere = (...conditions: Parameters<typeof and>) => and(gt(events.id, after), lt(events.id, before), ...conditions)

  const statements = {
    apikeyByHash: db.select(apikeyColumns).from(apikeys)
      .where(and(eq(apikeys.keyHash, sql.placeholder('hash')), isNull(apikeys.revoked))).prepare(),
    apikeyById: db.select(apikeyColumns).from(apikeys).where(eq(apikeys.id, sql.placeholder('id'))).prepare(),
    apikeyList: db.select(apikeyColumns).from(apikeys)
      .where(and(gt(apikeys.id, after), lt(apikeys.id, before)))
      .orderBy(desc(apikeys.id)).limit(limit).offset(offset).prepare(),
    apikeyCount: db.select({ n: count() }).from(apikeys).prepare(),
    sessionByHash: db.select({ ...clientColumns, apikeyId: clients.apikeyId, permission: apikeys.permission })
      .from(clients).innerJoin(apikeys, eq(apikeys.id, clients.apikeyId))
      .where(and(eq(clients.sessionHash, sql.placeholder('hash')), isNull(apikeys.revoked))).prepare(),
    clientTouch: db.update(clients).set({ lastActive: sql`${sql.placeholder('now')}` })
      .where(eq(clients.id, sql.placeholder('id'))).prepare(),
    clientById: db.select(clientColumns).from(clients).where(eq(clients.id, sql.placeholder('id'))).prepare(),
    clientsActive: db.select(clientColumns).from(clients)
      .where(and(gte(clients.lastActive, sql.placeholder('since')), gt(clients.id, after), lt(clients.id, before)))
      .orderBy(desc(clients.id)).limit(limit).offset(offset).prepare(),
    eventById: db.select().from(events).where(eq(events.id, sql.placeholder('id'))).prepare(),
    eventList: db.select().from(events).where(listWhere())
      .orderBy(desc(events.id)).limit(limit).offset(offset).prepare(),
    eventsByClient: db.select().from(events).where(listWhere(eq(events.clientId, sql.placeholder('clientId'))))
      .orderBy(desc(events.id)).limit(limit).offset(offset).prepare(),
    // One query over all of the client's subscriptions: each subscription reaches its events
    // through events_name_id_idx (name, id), so `after=` is a range read on that index.
    eventsSubscribed: db.select({
      id: events.id, clientId: events.clientId, device: events.device, name: events.name,
      location: events.location, action: events.action, value: events.value, time: events.time
    }).from(subscriptions)
      .innerJoin(events, and(
        eq(events.name, subscriptions.eventName),
        or(isNull(subscriptions.location), eq(events.location, subscriptions.location))
      ))
      .where(listWhere(eq(subscriptions.clientId, sql.placeholder('clientId'))))
      .orderBy(desc(events.id)).limit(limit).offset(offset).prepare()
  }

  const insertClient = sqlite.transaction((client: Parameters<Repositories['clients']['create']>[0], sessionHash: string, now: number) => {
    const row = db.insert(clients).values({
      device: client.device, location: client.location, sessionHash, apikeyId: client.apikeyId, created: now, lastActive: now
    }).returning({ id: clients.id }).get()
    if (client.subscriptions.length > 0) {
      db.insert(subscriptions).values(client.subscriptions.map((s) => ({ clientId: row.id, eventName: s.eventName, location: s.location }))).run()
    }
    return row.id
  })

  return {
    kind: 'sqlite',
    location: path,
    apikeys: {
      async create (permission: Permission) {
        const apikey = newApiKey()
        const row = db.insert(apikeys).values({ keyHash: hashSecret(apikey), permission, created: Date.now() })
          .returning(apikeyColumns).get()
        return { ...row, apikey }
      },
      async findByKey (apikey: string): Promise<ApiKeyRecord | undefined> {
        return statements.apikeyByHash.get({ hash: hashSecret(apikey) })
      },
      async get (id: number) {
        return statements.apikeyById.get({ id })
      },
      async list (filter: ListFilter) {
        return statements.apikeyList.all(page(filter))
      },
      async count () {
        return statements.apikeyCount.get()?.n ?? 0
      }
    },
    clients: {
      async create (client) {
        const sessionKey = newSessionKey()
        const id = insertClient(client, hashSecret(sessionKey), Date.now())
        return { id, sessionKey }
      },
      async findBySession (sessionKey: string): Promise<SessionRecord | undefined> {
        return statements.sessionByHash.get({ hash: hashSecret(sessionKey) })
      },
      async touch (id: number, now: number) {
        statements.clientTouch.run({ id, now })
      },
      async get (id: number) {
        return statements.clientById.get({ id })
      },
      async listActive (since: number, filter: ListFilter) {
        return statements.clientsActive.all({ since, ...page(filter) })
      }
    },
    events: {
      async create (event) {
        return db.insert(events).values({ ...event, time: Date.now() }).returning().get()
      },
      async get (id: number) {
        return statements.eventById.get({ id })
      },
      async list (filter: ListFilter) {
        return statements.eventList.all(page(filter))
      },
      async listByClient (clientId: number, filter: ListFilter) {
        return statements.eventsByClient.all({ clientId, ...page(filter) })
      },
      async listSubscribed (clientId: number, filter: ListFilter) {
        return statements.eventsSubscribed.all({ clientId, ...page(filter) })
      }
    },
    async close () {
      if (sqlite.open) sqlite.close()
    }
  }
}
