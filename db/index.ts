import type { CredConfig } from '../schemas/config.js'
import { DatabaseUnavailableError, type Repositories } from './repositories.js'
import { openSqlite } from './sqlite.js'

export * from './repositories.js'

/** Opens the configured database, applies its migrations, and returns the repositories. */
export async function openDatabase (database: CredConfig['database']): Promise<Repositories> {
  if (database.kind === 'sqlite') return openSqlite(database.database)
  throw new DatabaseUnavailableError(
    `database type '${database.type}' is not supported by this version yet; use 'sqlite3'`)
}
