import { fileURLToPath } from 'node:url'
import { drizzle } from 'drizzle-orm/mysql2'
import { migrate } from 'drizzle-orm/mysql2/migrator'
import type mysql from 'mysql2/promise'
import { deadline } from '../pool.js'
import { DatabaseUnavailableError } from '../repositories.js'
import { cannotConnect, describe, isUnavailable, openConnection, reason, targetOf, type MysqlSettings, type MysqlTimeouts, type Target } from './connection.js'

const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url))

/** What the server told about itself while the migrations were applied. */
export interface ServerFacts {
  target: Target
  /** 'MariaDB' or 'MySQL' */
  name: string
  /** warnings for the log: settings that weaken what cred promises */
  warnings: string[]
}

/**
 * GET_LOCK names are server-wide (not per database, as PostgreSQL's advisory locks are), and
 * at most 64 characters: the database name is part of the name, so that cred instances of
 * different databases on one server do not wait for each other.
 */
const migrationLock = (database: string) => `cred-server:migrations:${database}`.slice(0, 64)

/** How long an instance waits for another one applying the migrations, in seconds. */
const MIGRATION_LOCK_SECONDS = 600

/**
 * Applies the migrations on a dedicated connection holding a GET_LOCK, so that instances
 * starting together take turns: the first applies them, the others then find them applied.
 * Answers where the database is, what the server is, and what in its settings is worth a
 * warning: `innodb_flush_log_at_trx_commit` other than 1 loses acknowledged events in a crash.
 */
export async function migrateOnce (settings: MysqlSettings, timeouts: MysqlTimeouts): Promise<ServerFacts> {
  const target = targetOf(settings)
  let connection: mysql.Connection
  const connecting = openConnection(settings, timeouts)
  try {
    // the driver's connectTimeout does not cover a server that accepts and never answers
    connection = await deadline(connecting, timeouts.connectSeconds * 1000 + 500, () =>
      Object.assign(new Error(`no answer within ${timeouts.connectSeconds} s`), { code: 'CONNECT_TIMEOUT' }))
  } catch (err) {
    // a connection made after the deadline is of no use
    connecting.then((late) => late.destroy(), () => {})
    throw cannotConnect(target, err, timeouts)
  }
  try {
    let facts: ServerFacts
    try {
      const [rows] = await connection.query<mysql.RowDataPacket[]>(
        'select version() as version, @@innodb_flush_log_at_trx_commit as flush, get_lock(?, ?) as locked',
        [migrationLock(target.database), MIGRATION_LOCK_SECONDS])
      const row = rows[0]!
      if (Number(row.locked) !== 1) throw new Error(`another instance held the migration lock for ${MIGRATION_LOCK_SECONDS} s`)
      const name = String(row.version).includes('MariaDB') ? 'MariaDB' : 'MySQL'
      const warnings = Number(row.flush) === 1
        ? []
        : [`${name} at ${describe(target)} runs with innodb_flush_log_at_trx_commit = ${String(row.flush)}: events acknowledged in the last second may be lost if the server crashes; set it to 1 (docs/mariadb.md)`]
      facts = { target, name, warnings }
    } catch (err) {
      throw cannotConnect(target, err, timeouts)
    }
    try {
      await migrate(drizzle({ client: connection }), { migrationsFolder })
      await connection.query('do release_lock(?)', [migrationLock(target.database)])
    } catch (err) {
      if (isUnavailable(err)) throw cannotConnect(target, err, timeouts)
      throw new DatabaseUnavailableError(
        `cannot apply migrations to ${facts.name} database ${describe(target)}: ${reason(err, timeouts)}`, { cause: err })
    }
    return facts
  } finally {
    // ending the session also releases the lock if the release was never reached
    await connection.end().catch(() => connection.destroy())
  }
}
