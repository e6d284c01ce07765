import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions, type LightMyRequestResponse } from 'fastify'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import type { Test } from 'tap'
import cred from '../app.js'
import { resolveConfig } from '../config/resolve.js'
import { openDatabase, type Repositories } from '../db/index.js'
import { CHANGE_CHECK_MS } from '../db/sqlite/index.js'
import { databaseUrl, withConnection, type DatabaseConfig } from '../scripts/bench/harness.js'
import type { Permission } from '../schemas/apikeys.js'
import type { CredConfig, SettingsInput } from '../schemas/config.js'

/** A temporary directory removed when the test ends. */
export function tempDir (t: Test, prefix = 'cred-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface TestApp {
  app: FastifyInstance
  config: CredConfig
  /** the database settings, to start another instance on the same database */
  database: TestDatabase
  /** a second handle on the same database, for arranging data and checking what was stored */
  repos: Repositories
  /** creates an API key and returns its secret */
  key: (permission: Permission) => Promise<string>
  /** authenticates with a new key of `permission`; returns the client id and session key */
  session: (permission: Permission, body?: Record<string, unknown>) => Promise<{ id: number, sessionKey: string }>
  /** JSON body of a response */
  json: (res: LightMyRequestResponse) => any
}

export type Backend = 'sqlite' | 'postgresql' | 'mariadb'

/** The PostgreSQL server of the tests (trust auth, as `.ci/run` sets it up); each test gets its own database there. */
export const testPostgres = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const

/** Runs `work` on a short-lived connection to the server's `postgres` database, for CREATE/DROP DATABASE. */
export async function postgresAdmin<T> (work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres({ ...testPostgres, database: 'postgres', max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    return await work(sql)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/**
 * Why the tests of `name` cannot run here (`probe` rejected), or null when they can. In CI
 * (`CI=true`) an unreachable server fails every test file instead: those tests must run.
 */
export function unreachable (name: string, where: string, probe: () => Promise<unknown>): Promise<string | null> {
  return probe().then(() => null, (err: unknown) => {
    const problem = `${name} for the tests at ${where} cannot be reached: ${(err as Error).message}`
    if (process.env.CI === 'true') throw new Error(`${problem}; in CI the ${name} tests must run`)
    console.error(`# ${problem}. The ${name} tests are SKIPPED (with CI=true this is an error).`)
    return problem
  })
}

/** Why the PostgreSQL tests cannot run here, or null when they can. */
export const postgresUnavailable: string | null = await unreachable('PostgreSQL', `${testPostgres.host}:${testPostgres.port} (user ${testPostgres.user})`,
  () => postgresAdmin((sql) => sql`select 1`))

/** The MariaDB server of the tests (root, no password, as `.ci/run` sets it up); each test gets its own database there. */
export const testMariadb = { host: '127.0.0.1', port: 3306, user: 'root' } as const

/** Runs `work` on a short-lived connection to the MariaDB server (no database), for CREATE/DROP DATABASE. */
export async function mariadbAdmin<T> (work: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  const connection = await mysql.createConnection({ ...testMariadb, connectTimeout: 3000 })
  try {
    return await work(connection)
  } finally {
    await connection.end().catch(() => connection.destroy())
  }
}

/** Why the MariaDB tests cannot run here, or null when they can. */
export const mariadbUnavailable: string | null = await unreachable('MariaDB', `${testMariadb.host}:${testMariadb.port} (user ${testMariadb.user})`,
  () => mariadbAdmin((connection) => connection.query('select 1')))

/** The backends the API suite runs against. */
export const backends: Backend[] = [
  'sqlite',
  ...(postgresUnavailable === null ? ['postgresql' as const] : []),
  ...(mariadbUnavailable === null ? ['mariadb' as const] : [])
]

/** Whether `backend` is a server several instances share (PostgreSQL, MariaDB), rather than a file. */
export const isServer = (backend: Backend): boolean => backend !== 'sqlite'

/**
 * Waits until a change made to a session's row through another connection is seen: SQLite
 * within CHANGE_CHECK_MS (the connection reads `data_version` at most that often); a
 * PostgreSQL or MariaDB instance uses a session it looked up for up to a second
 * (db/session-cache.ts) unless the change came with a notification (an access_ended row).
 */
export const sessionChangeSeen = (backend: Backend) =>
  new Promise((resolve) => setTimeout(resolve, isServer(backend) ? 1100 : CHANGE_CHECK_MS + 1))

/** Runs `fn` as one subtest per backend: the same tests, every database. */
export function forEachBackend (t: Test, fn: (t: Test, backend: Backend) => Promise<void>): void {
  for (const backend of backends) t.test(backend, (t) => fn(t, backend))
}

/** Database settings naming one test database (its file, or its PostgreSQL or MariaDB database). */
export type TestDatabase = NonNullable<SettingsInput['database']> & { type: string, database: string }

/** Database settings for a fresh, empty database of `backend`, removed when the test ends. */
export async function testDatabase (t: Test, backend: Backend): Promise<TestDatabase> {
  if (backend === 'sqlite') return { type: 'sqlite3', database: join(tempDir(t), 'cred-test.db') }
  const database = `cred_test_${randomBytes(8).toString('hex')}`
  if (backend === 'mariadb') {
    await mariadbAdmin((connection) => connection.query(`create database \`${database}\``))
    t.teardown(() => mariadbAdmin((connection) => connection.query(`drop database if exists \`${database}\``)))
    return { type: 'mariadb', ...testMariadb, password: '', database }
  }
  await postgresAdmin((sql) => sql.unsafe(`create database "${database}"`))
  // FORCE ends connections still open (an app not closed yet), so the drop never waits on them
  t.teardown(() => postgresAdmin((sql) => sql.unsafe(`drop database if exists "${database}" with (force)`)))
  return { type: 'postgresql', ...testPostgres, password: '', database }
}

/**
 * Runs one SQL statement on a test database directly, on a connection of its own (what a
 * hand-written statement is): for what the API cannot arrange or show. Identifiers quote with
 * double quotes on every backend; MariaDB's text (stored as bytes) reads back as strings.
 */
export async function rawSql (database: TestDatabase, statement: string): Promise<Array<Record<string, unknown>>> {
  return withConnection(databaseUrl(database as DatabaseConfig), async (query) => {
    if (database.type !== 'mariadb') return [...await query(statement)]
    await query("set session sql_mode = concat(@@sql_mode, ',ANSI_QUOTES')")
    const rows = await query(statement)
    if (!Array.isArray(rows)) return []
    return rows.map((row) =>
      Object.fromEntries(Object.entries(row).map(([column, value]) => [column, Buffer.isBuffer(value) ? value.toString('utf8') : value])))
  })
}

export interface BuildOptions {
  backend?: Backend
  /** use this database (e.g. another instance's) instead of a fresh one */
  database?: TestDatabase
  /** register cred under this prefix, as a host app would */
  prefix?: string
  /** options of the Fastify instance cred is registered in (e.g. trustProxy, a logger) */
  server?: FastifyServerOptions
}

/** Builds the cred plugin inside a bare Fastify instance on a fresh database. */
export async function build (t: Test, settings: SettingsInput = {}, { backend = 'sqlite', prefix, database, server }: BuildOptions = {}): Promise<TestApp> {
  const input: SettingsInput = { ...settings, database: { ...database ?? await testDatabase(t, backend), ...settings.database } }
  const config = resolveConfig(input, 'test')
  const { kind: _kind, url: _url, ...sameDatabase } = config.database
  // a server database's first start (its migrations) can take more than Fastify's 10 s on a busy machine
  const app = Fastify({ logger: false, pluginTimeout: 60_000, ...server })
  await app.register(cred, { config, ...(prefix === undefined ? {} : { prefix }) })
  await app.ready()
  const repos = await openDatabase(config.database)
  t.teardown(async () => {
    await app.close()
    await repos.close()
  })
  const key = async (permission: Permission) => (await repos.apikeys.create(permission)).apikey
  const root = prefix ?? ''
  return {
    app,
    config,
    database: sameDatabase,
    repos,
    key,
    async session (permission, body = {}) {
      const res = await app.inject({ method: 'POST', url: `${root}/auth`, payload: { apikey: await key(permission), ...body } })
      if (res.statusCode !== 201) throw new Error(`auth failed: ${res.statusCode} ${res.body}`)
      const { id, sessionKey } = res.json() as { id: number, sessionKey: string }
      return { id, sessionKey }
    },
    json: (res) => JSON.parse(res.body)
  }
}

/** A logger for `build`'s `server` option whose lines (parsed) are collected in `lines`. */
export function capturedLogs (level = 'info'): { logger: { level: string, stream: Writable }, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { logger: { level, stream }, lines }
}

export const bearer = (sessionKey: string) => ({ authorization: `Bearer ${sessionKey}` })

/** Listens on a free port of 127.0.0.1 (for real HTTP clients: streams, fetch); returns the base URL. */
export const listen = (app: FastifyInstance): Promise<string> => app.listen({ port: 0, host: '127.0.0.1' })

/** Posts an event as the client of `sessionKey`; returns its id. */
export async function postEvent (app: FastifyInstance, sessionKey: string, event: Record<string, unknown>): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
  if (res.statusCode !== 201) throw new Error(`post failed: ${res.body}`)
  return (res.json() as { event: { id: number } }).event.id
}
