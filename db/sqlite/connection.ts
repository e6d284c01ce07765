import { closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { drizzle, type BetterSQLite3Database } from 'drizzle-orm/better-sqlite3'
import { migrate } from 'drizzle-orm/better-sqlite3/migrator'
import { DatabaseUnavailableError } from '../repositories.js'

const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url))

/**
 * A connection as the repositories use it: WAL mode, a busy timeout, foreign keys enforced, and
 * `synchronous = FULL`, so that every commit is flushed to disk (fsync of the WAL) before it
 * returns and an acknowledged write survives a power loss or an OS crash. It has to be set:
 * better-sqlite3 is built with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, i.e. NORMAL in WAL mode,
 * where a commit is only flushed at the next checkpoint.
 */
export function openConnection (path: string): Database.Database {
  const sqlite = new Database(path)
  try {
    sqlite.pragma('journal_mode = WAL')
    sqlite.pragma('synchronous = FULL')
    sqlite.pragma('busy_timeout = 5000')
    sqlite.pragma('foreign_keys = ON')
  } catch (err) {
    sqlite.close()
    throw err
  }
  return sqlite
}

/** A SQLite file opened for the repositories. */
export interface SqliteFile {
  sqlite: Database.Database
  db: BetterSQLite3Database
  /** the file's absolute path (or ':memory:') */
  path: string
  /** Resolves when the file is still the one opened and answers; DatabaseUnavailableError otherwise. */
  ping (): Promise<void>
}

/**
 * Opens (creating if needed) the SQLite file on one connection from `openConnection` and applies
 * the migrations.
 */
/**
 * Creates the database file's own folder when it is missing and its parent exists. Nothing
 * deeper: a typo in the path must not make a tree of folders (and Node's recursive mkdir spins
 * for ever on some paths it cannot create, such as one under /proc).
 */
function createFolder (path: string): void {
  const folder = dirname(path)
  if (existsSync(folder)) return
  const parent = dirname(folder)
  if (!existsSync(parent)) throw new Error(`neither its folder ${folder} nor that folder's parent ${parent} exists (cred creates only the file's own folder)`)
  mkdirSync(folder)
}

export function openFile (file: string): SqliteFile {
  const path = file === ':memory:' ? file : resolve(file)
  let sqlite: Database.Database
  try {
    if (path !== ':memory:') {
      createFolder(path)
      // Events and device names are private: a new file is the owner's only, and SQLite gives
      // its -wal and -shm files the database file's permissions.
      closeSync(openSync(path, 'a', 0o600))
    }
    sqlite = openConnection(path)
  } catch (err) {
    throw new DatabaseUnavailableError(`cannot open SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }
  const db = drizzle({ client: sqlite })
  // the file opened, to tell later whether it is still there (a deleted or replaced file keeps
  // answering through the open handle, while nothing written to it would survive a restart)
  const inode = path === ':memory:' ? null : statSync(path).ino
  try {
    migrate(db, { migrationsFolder })
  } catch (err) {
    sqlite.close()
    throw new DatabaseUnavailableError(`cannot apply migrations to SQLite database ${path}: ${(err as Error).message}`, { cause: err })
  }
  return {
    sqlite,
    db,
    path,
    async ping () {
      try {
        if (inode !== null && statSync(path).ino !== inode) throw new Error('the file was replaced')
        sqlite.prepare('select 1').get()
      } catch (err) {
        throw new DatabaseUnavailableError(`SQLite database ${path} is unavailable: ${(err as Error).message}`, { cause: err })
      }
    }
  }
}
