import postgres from 'postgres'
import type { CredConfig } from '../../schemas/config.js'
import { errorCode, rootCause } from '../pool.js'
import { DatabaseUnavailableError } from '../repositories.js'

export { deadline } from '../pool.js'

export type PostgresSettings = CredConfig['database']

/** How long PostgreSQL work may take before the caller gets DatabaseUnavailableError. */
export interface PostgresTimeouts {
  /** seconds to open a connection: TCP, TLS, start-up and authentication */
  connectSeconds: number
  /** the server's statement_timeout, in ms (migrations run without one) */
  statementMs: number
  /**
   * ms one repository call may take in all, connecting included. A call still unanswered
   * then fails and the pool is replaced: a peer that vanished without a reset, or a proxy
   * that accepts connections and closes them unanswered (the driver then retries forever),
   * never holds a request longer than this.
   */
  callMs: number
}

export const defaultTimeouts: PostgresTimeouts = { connectSeconds: 5, statementMs: 10_000, callMs: 12_000 }

/** host, port and database as the driver will use them (after its PG* environment defaults). */
export interface Target { host: string, port: number, database: string }

export const describe = (target: Target): string => `${target.host}:${target.port}/${target.database}`

/** Errors of the network or the driver's connection handling, not of the statement. */
const connectionCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED'
])

/**
 * SQLSTATEs that mean "the database cannot serve us right now": connection exceptions (08),
 * insufficient resources (53: too many connections, disk full), operator intervention (57:
 * shutdown, starting up, statement timeout), a dropped database (3D000), rejected
 * credentials (28) and a read-only server after a failover (25006).
 */
const unavailableStates = /^(08|53|57|28|3D000$|25006$)/

/** Whether `err` means the database cannot be reached or cannot serve now (rather than a fault of the statement). */
export function isUnavailable (err: unknown): boolean {
  const cause = rootCause(err)
  const code = errorCode(cause)
  if (code === undefined) return false
  if (cause instanceof Error && cause.name === 'PostgresError') return unavailableStates.test(code)
  return connectionCodes.has(code)
}

/** Why a connection failed, in words, on one line. */
export function reason (err: unknown, timeouts: PostgresTimeouts): string {
  const cause = rootCause(err)
  const code = errorCode(cause)
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused (ECONNREFUSED)'
    case 'CONNECT_TIMEOUT': return `no answer within ${timeouts.connectSeconds} s (CONNECT_TIMEOUT)`
    case 'ENOTFOUND': case 'EAI_AGAIN': return `host name not found (${code})`
    case 'CONNECTION_CLOSED': return 'the server closed the connection (CONNECTION_CLOSED)'
    default: {
      const message = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0]!.trim()
      return code === undefined || message.includes(code) ? message : `${message} (${code})`
    }
  }
}

/** The one line cred-server and cred-gen print when PostgreSQL cannot be reached at start. */
export function cannotConnect (target: Target, err: unknown, timeouts: PostgresTimeouts): DatabaseUnavailableError {
  return new DatabaseUnavailableError(
    `cannot connect to PostgreSQL at ${target.host}:${target.port} (database '${target.database}'): ${reason(err, timeouts)}`,
    { cause: err })
}

export function connectionOptions (settings: PostgresSettings, timeouts: PostgresTimeouts, statementTimeoutMs: number) {
  const port = String(settings.port).trim()
  if (port !== '' && !(/^\d+$/.test(port) && Number(port) <= 65535)) {
    throw new DatabaseUnavailableError(`invalid PostgreSQL port '${port}' in the database settings`)
  }
  return {
    host: settings.host === '' ? undefined : settings.host,
    port: port === '' ? undefined : Number(port),
    user: settings.user === '' ? undefined : settings.user,
    password: settings.password === '' ? undefined : settings.password,
    database: settings.database === '' ? undefined : settings.database,
    connect_timeout: timeouts.connectSeconds,
    // A request during an outage tries to connect at once and fails at once; the driver's
    // default backoff would make later requests wait up to 20 s before even trying.
    backoff: () => 0,
    // cred uses no array types: skip the type lookup on every new connection
    fetch_types: false,
    // "schema already exists, skipping" and the like are not worth a line on stdout
    onnotice: () => {},
    connection: {
      application_name: 'cred-server',
      statement_timeout: statementTimeoutMs,
      // Plan each execution with its values: a generic plan of the prepared list statements
      // cannot tell `after=<a minute ago>` from `after=0` and may walk the whole table for it.
      plan_cache_mode: 'force_custom_plan'
    }
  }
}

export function connect (settings: PostgresSettings, options: postgres.Options<Record<string, postgres.PostgresType>>, max: number) {
  const url = settings.url
  return url === undefined ? postgres({ ...options, max }) : postgres(url, { ...options, max })
}

export function targetOf (client: postgres.Sql): Target {
  return { host: client.options.host[0] ?? 'localhost', port: client.options.port[0] ?? 5432, database: client.options.database }
}

export const noAnswer = (timeouts: PostgresTimeouts) =>
  Object.assign(new Error(`no answer within ${timeouts.connectSeconds} s`), { code: 'CONNECT_TIMEOUT' })
