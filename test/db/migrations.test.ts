// The migrations under db/<dialect>/migrations bring a database made by an earlier release up to date,
// keeping its data.
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3'
import { migrate as migrateSqlite } from 'drizzle-orm/better-sqlite3/migrator'
import { drizzle as drizzleMysql } from 'drizzle-orm/mysql2'
import { migrate as migrateMysql } from 'drizzle-orm/mysql2/migrator'
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js'
import { migrate as migratePg } from 'drizzle-orm/postgres-js/migrator'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import t from 'tap'
import type { Test } from 'tap'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase } from '../../db/index.js'
import { forEachBackend, tempDir, testDatabase, testMariadb, testPostgres, type Backend, type TestDatabase } from '../helper.js'

interface Journal { entries: Array<{ tag: string }> }

/** A copy of the migrations of `backend` with only the first `count` of them. */
function firstMigrations (t: Test, backend: Backend, count: number): string {
  const folder = join(tempDir(t), 'migrations')
  const dialect = { sqlite: 'sqlite', postgresql: 'postgres', mariadb: 'mysql' }[backend]
  cpSync(fileURLToPath(new URL(`../../db/${dialect}/migrations`, import.meta.url)), folder, { recursive: true })
  const journalFile = join(folder, 'meta', '_journal.json')
  const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as Journal
  writeFileSync(journalFile, JSON.stringify({ ...journal, entries: journal.entries.slice(0, count) }))
  return folder
}

/** Applies `migrationsFolder` to `database`, then runs `statements` on it. */
async function makeDatabase (database: TestDatabase, migrationsFolder: string, statements: string[]): Promise<void> {
  if (database.type === 'sqlite3') {
    const sqlite = new Database(database.database)
    try {
      migrateSqlite(drizzleSqlite({ client: sqlite }), { migrationsFolder })
      for (const statement of statements) sqlite.prepare(statement).run()
    } finally {
      sqlite.close()
    }
    return
  }
  if (database.type === 'mariadb') {
    const connection = await mysql.createConnection({ ...testMariadb, database: database.database })
    try {
      await migrateMysql(drizzleMysql({ client: connection }), { migrationsFolder })
      for (const statement of statements) await connection.query(statement)
    } finally {
      await connection.end()
    }
    return
  }
  const sql = postgres({ ...testPostgres, database: database.database, max: 1, onnotice: () => {} })
  try {
    await migratePg(drizzlePg({ client: sql }), { migrationsFolder })
    for (const statement of statements) await sql.unsafe(statement)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

forEachBackend(t, async (t, backend) => {
  // SQLite and PostgreSQL: the schema before idempotency keys (0000-0001); MariaDB: before its lock row (0000)
  const earlier = backend === 'mariadb' ? 1 : 2
  t.test(`a database of an earlier schema (migrations up to ${earlier - 1}) is brought up to date, its data kept`, async (t) => {
    const database = await testDatabase(t, backend)
    await makeDatabase(database, firstMigrations(t, backend, earlier), [
      "insert into apikeys (key_hash, permission, created) values ('a-hash', 'write', 1700000000000)",
      "insert into clients (device, location, session_hash, apikey_id, created, last_active) values ('Switch', 'Hall', 's-hash', 1, 1700000000000, 1700000000000)",
      "insert into events (client_id, device, name, location, action, value, time) values (1, 'Switch', 'Light', 'Hall', 'Toggled', 'On', 1700000000000)"
    ])

    const repos = await openDatabase(resolveConfig({ database }, 'test').database)
    t.teardown(() => repos.close())
    t.same(await repos.events.get(1), { id: 1, clientId: 1, device: 'Switch', name: 'Light', location: 'Hall', action: 'Toggled', value: 'On', time: 1700000000000 },
      'the event stored before is still there')
    const event = { clientId: 1, device: 'Switch', name: 'Light', location: 'Hall', action: 'Toggled', value: 'Off' }
    const first = await repos.events.create(event, { apikeyId: 1, key: 'after-upgrade' })
    t.equal(first.id, 2, 'a new event follows it')
    t.same(await repos.events.create(event, { apikeyId: 1, key: 'after-upgrade' }), { ...first, replayed: true }, 'idempotency keys work on the upgraded database')
    t.same((await repos.events.list({})).map((stored) => stored.id), [2, 1])
  })
})
