import type { CredConfig } from '../schemas/config.js'
import type { Repositories } from './repositories.js'

export * from './repositories.js'

/**
 * Opens the configured database, applies its migrations, and returns the repositories. Only that
 * database's driver is loaded: the others would cost every process start (cred-server, cred-gen)
 * CPU for nothing.
 */
export async function openDatabase (database: CredConfig['database']): Promise<Repositories> {
  if (database.kind === 'postgresql') return (await import('./postgres/index.js')).openPostgres(database)
  if (database.kind === 'mysql') return (await import('./mysql/index.js')).openMysql(database)
  return (await import('./sqlite/index.js')).openSqlite(database.database)
}
