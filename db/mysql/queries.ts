import { sql } from 'drizzle-orm'
import type { MySqlTable } from 'drizzle-orm/mysql-core'
import type { MySql2Database } from 'drizzle-orm/mysql2'
import { statements, type SqlDialect } from '../statements.js'
import * as schema from './schema.js'

export const mysqlDialect: SqlDialect = {
  idBound: (value) => value,
  idIn: (id) => sql`${id} in (select j.id from json_table(${sql.placeholder('ids')}, '$[*]' columns (id int path '$')) as j)`,
  // MySQL has no LIMIT ALL; the driver writes a bound number into the statement, and a larger
  // one than this would not survive being a JavaScript number
  noLimit: Number.MAX_SAFE_INTEGER
}

/** Every statement the MariaDB / MySQL repositories prepare, unprepared: the shared ones. */
export function mysqlQueries (db: MySql2Database) {
  return statements<'async', MySqlTable>(db, schema, mysqlDialect)
}
