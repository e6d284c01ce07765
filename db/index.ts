import type { CredConfig } from '../schemas/config.js'
import { openMysql } from './mysql/index.js'
import type { Repositories } from './repositories.js'
import { openPostgres } from './postgres/index.js'
import { openSqlite } from './sqlite/index.js'

export * from './repositories.js'

/** Opens the configured database, applies its migrations, and returns the repositories. */
export async function openDatabase (database: CredConfig['database']): Promise<Repositories> {
  if (database.kind === 'postgresql') return openPostgres(database)
  if (database.kind === 'mysql') return openMysql(database)
  return openSqlite(database.database)
}
