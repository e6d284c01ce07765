import { readFileSync } from 'node:fs'
import mysql from 'mysql2/promise'
import type { CredConfig } from '../../schemas/config.js'
import { deadline, errorCode, rootCause } from '../pool.js'
import { DatabaseUnavailableError } from '../repositories.js'

export type MysqlSettings = CredConfig['database']

/** How long MariaDB / MySQL work may take before the caller gets DatabaseUnavailableError. */
export interface MysqlTimeouts {
  /** seconds to open a connection: TCP, handshake and authentication */
  connectSeconds: number
  /**
   * ms one repository call may take in all, connecting included. A call still unanswered
   * then fails and the pool is replaced (see ../pool.ts).
   */
  callMs: number
}

export const defaultTimeouts: MysqlTimeouts = { connectSeconds: 5, callMs: 12_000 }

/** host, port and database as the driver will use them. */
export interface Target { host: string, port: number, database: string }

export const describe = (target: Target): string => `${target.host}:${target.port}/${target.database}`

/**
 * Errors of the network, the driver's connection handling, or a server that cannot serve now:
 * refused credentials or database, too many connections, shutting down, read-only, out of space.
 * The ER_ names are mysql2's, which are MySQL's: the numbers are the same on MariaDB and MySQL 8.
 * Of these, MySQL 8 alone has ER_SERVER_OFFLINE_MODE (3032), ER_SESSION_WAS_KILLED (3169) and
 * ER_CLIENT_INTERACTION_TIMEOUT (4031: an idle connection closed after wait_timeout, 8.0.24+).
 */
const unavailableCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR', 'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_CON_COUNT_ERROR', 'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_SERVER_SHUTDOWN', 'ER_NORMAL_SHUTDOWN', 'ER_QUERY_INTERRUPTED', 'ER_OPTION_PREVENTS_STATEMENT', 'ER_SERVER_OFFLINE_MODE',
  'ER_SESSION_WAS_KILLED', 'ER_CLIENT_INTERACTION_TIMEOUT', 'ER_READ_ONLY_MODE', 'ER_RECORD_FILE_FULL', 'ER_DISK_FULL',
  'ER_LOCK_WAIT_TIMEOUT', 'CONNECT_TIMEOUT', 'PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED'
])

/** MariaDB's own error numbers of the same kind, which mysql2 names not (it knows MySQL's): 1927 ER_CONNECTION_KILLED. */
const unavailableErrnos = new Set([1927])

/** Whether `err` means the database cannot be reached or cannot serve now (rather than a fault of the statement). */
export function isUnavailable (err: unknown): boolean {
  const cause = rootCause(err)
  const code = errorCode(cause)
  if (code === undefined) {
    const errno = (cause as { errno?: unknown } | null)?.errno
    // mysql2 refuses a query on a connection that has closed with a message and no code
    return (typeof errno === 'number' && unavailableErrnos.has(errno)) ||
      (cause instanceof Error && /connection is in closed state/.test(cause.message))
  }
  return unavailableCodes.has(code)
}

/** Why a connection failed, in words, on one line. */
export function reason (err: unknown, timeouts: MysqlTimeouts): string {
  const cause = rootCause(err)
  const code = errorCode(cause)
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused (ECONNREFUSED)'
    case 'ETIMEDOUT': case 'CONNECT_TIMEOUT': return `no answer within ${timeouts.connectSeconds} s (${code})`
    case 'ENOTFOUND': case 'EAI_AGAIN': return `host name not found (${code})`
    case 'PROTOCOL_CONNECTION_LOST': return 'the server closed the connection (PROTOCOL_CONNECTION_LOST)'
    // MySQL 8's caching_sha2_password, for a user the server has not seen since it started
    case 'PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED':
      return "the server asks for the user's full caching_sha2_password authentication, which without TLS needs its RSA public key: set database.serverPublicKey to a copy of it (docs/mariadb.md, MySQL 8) (PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED)"
    default: {
      const message = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]!.trim()
      return code === undefined || message.includes(code) ? message : `${message} (${code})`
    }
  }
}

/** The one line cred-server and cred-gen print when the database cannot be reached at start. */
export function cannotConnect (target: Target, err: unknown, timeouts: MysqlTimeouts): DatabaseUnavailableError {
  return new DatabaseUnavailableError(
    `cannot connect to MariaDB / MySQL at ${target.host}:${target.port} (database '${target.database}'): ${reason(err, timeouts)}`,
    { cause: err })
}

export function targetOf (settings: MysqlSettings): Target {
  const port = String(settings.port).trim()
  if (port !== '' && !(/^\d+$/.test(port) && Number(port) <= 65535)) {
    throw new DatabaseUnavailableError(`invalid MariaDB / MySQL port '${port}' in the database settings`)
  }
  return { host: settings.host === '' ? 'localhost' : settings.host, port: port === '' ? 3306 : Number(port), database: settings.database }
}

/**
 * Where and how to connect: text goes both ways as utf8mb4 (4-byte characters too). With
 * `serverPublicKey`, a MySQL 8 caching_sha2_password user's full authentication encrypts the
 * password with that key, which mysql2 otherwise refuses to fetch from the server over a
 * connection without TLS (see `reason`).
 */
export function connectionOptions (settings: MysqlSettings, timeouts: MysqlTimeouts): mysql.ConnectionOptions {
  const target = targetOf(settings)
  return {
    ...(settings.serverPublicKey === '' ? {} : { serverPublicKey: readFileSync(settings.serverPublicKey, 'utf8') }),
    host: target.host,
    port: target.port,
    user: settings.user === '' ? undefined : settings.user,
    password: settings.password === '' ? undefined : settings.password,
    database: target.database,
    connectTimeout: timeouts.connectSeconds * 1000,
    charset: 'utf8mb4_general_ci'
  }
}

/**
 * The SQL mode of every connection cred opens, whatever the server's default, so that MariaDB
 * and MySQL 8 behave alike: MySQL 8's default mode (which MariaDB 10.6+ accepts) with
 * STRICT_ALL_TABLES. Strict: a value that does not fit is an error, not cut short with a warning.
 * And none of the modes that change how a statement reads: ANSI_QUOTES, or NO_BACKSLASH_ESCAPES,
 * under which mysql2's escaping of quotes in values (with a backslash) would break statements.
 */
export const SQL_MODE = 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'
const setSqlMode = `set session sql_mode = '${SQL_MODE}'`

/** One connection of its own (migrations, a role's lock), in SQL_MODE. */
export async function openConnection (settings: MysqlSettings, timeouts: MysqlTimeouts): Promise<mysql.Connection> {
  const connection = await mysql.createConnection(connectionOptions(settings, timeouts))
  try {
    await connection.query(setSqlMode)
  } catch (err) {
    connection.destroy()
    throw err
  }
  return connection
}

/**
 * A pool of `max` connections (see `connectionOptions`). Several statements may be sent in one
 * round trip (the event inserts: ./event-inserts.ts); every connection reads committed data
 * (READ COMMITTED), so that a statement after a lock is taken sees what the lock's previous
 * holder committed, in SQL_MODE. `onLost` is called when a connection is
 * closed by the server or fails.
 */
/** The connections each pool has opened and not seen end, to destroy when ending it takes too long. */
const openConnections = new WeakMap<mysql.Pool, Set<{ destroy: () => void }>>()

export function connect (settings: MysqlSettings, timeouts: MysqlTimeouts, max: number, onLost: () => void = () => {}): mysql.Pool {
  const pool = mysql.createPool({
    ...connectionOptions(settings, timeouts),
    connectionLimit: max,
    maxIdle: max,
    multipleStatements: true,
    supportBigNumbers: true,
    bigNumberStrings: false
  })
  const open = new Set<{ destroy: () => void }>()
  openConnections.set(pool, open)
  pool.pool.on('connection', (connection) => {
    open.add(connection)
    // (runs before the connection's first query; if it fails, that query fails on the closed connection)
    connection.query(`set session transaction isolation level read committed; ${setSqlMode}`, (err) => {
      if (err) connection.destroy()
    })
    connection.on('end', () => {
      open.delete(connection)
      onLost()
    })
    connection.on('error', onLost)
  })
  return pool
}

/**
 * Ends `pool`: its connections say goodbye to the server. A server that went silent never
 * answers that, so after `ms` they are destroyed instead, and ending never hangs.
 */
export async function endPool (pool: mysql.Pool, ms: number): Promise<void> {
  await deadline(pool.end(), ms, () => new Error('the server did not answer the goodbye')).catch(() => {
    for (const connection of openConnections.get(pool) ?? []) connection.destroy()
  })
}
