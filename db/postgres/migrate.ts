import { fileURLToPath } from 'node:url'
import { drizzle } from 'drizzle-orm/postgres-js'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import { DatabaseUnavailableError } from '../repositories.js'
import {
  cannotConnect, connect, connectionOptions, deadline, describe, isUnavailable, noAnswer, reason, targetOf,
  type PostgresSettings, type PostgresTimeouts, type Target
} from './connection.js'
import { lockNames } from './locks.js'

const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url))

/**
 * Applies the migrations on a dedicated connection holding a session advisory lock, so that
 * instances starting together take turns: the first applies them, the others then find them
 * applied. (drizzle's migrator alone would race on CREATE SCHEMA / CREATE TABLE.) Answers
 * where the database is.
 */
export async function migrateOnce (settings: PostgresSettings, timeouts: PostgresTimeouts): Promise<Target> {
  // no statement_timeout here: a long migration must finish, and waiting for the lock is waiting for one
  const client = connect(settings, connectionOptions(settings, timeouts, 0), 1)
  const target = targetOf(client)
  let answered = false
  try {
    try {
      // the driver's connect_timeout does not cover a server that closes connections unanswered
      await deadline(client`select 1`, timeouts.connectSeconds * 1000, () => noAnswer(timeouts))
      answered = true
      await client`select pg_advisory_lock(hashtextextended(${lockNames.migrations}, 0))`
    } catch (err) {
      throw cannotConnect(target, err, timeouts)
    }
    try {
      await migrate(drizzle({ client }), { migrationsFolder })
      await client`select pg_advisory_unlock(hashtextextended(${lockNames.migrations}, 0))`
    } catch (err) {
      if (isUnavailable(err)) throw cannotConnect(target, err, timeouts)
      throw new DatabaseUnavailableError(
        `cannot apply migrations to PostgreSQL database ${describe(target)}: ${reason(err, timeouts)}`, { cause: err })
    }
  } finally {
    // ending the session also releases the lock if the unlock was never reached
    await client.end({ timeout: answered ? 1 : 0 })
  }
  return target
}
