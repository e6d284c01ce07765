// What the two server databases (./postgres, ./mysql) share about their connection pools:
// a deadline on every call, and a pool replaced when a call gets no answer.
import { DatabaseUnavailableError } from './repositories.js'

/** The driver's error under drizzle's "Failed query" wrapper. */
export function rootCause (err: unknown): unknown {
  let current = err
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) current = current.cause
  return current
}

export function errorCode (err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/** `work`, or a rejection with `expired()` once `ms` have passed without an answer. */
export function deadline<T> (work: Promise<T>, ms: number, expired: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(expired()), ms)
    work.then(resolve, reject).finally(() => clearTimeout(timer))
  })
}

/** How a dialect tells connection trouble from a fault of the statement, and says why. */
export interface PoolErrors {
  /** the database's name for people: 'PostgreSQL', 'MariaDB' */
  name: string
  /** `where` for messages: host:port/database */
  where: string
  /** ms one call may take in all, connecting included */
  callMs: number
  isUnavailable (err: unknown): boolean
  /** why, in words, on one line */
  reason (err: unknown): string
}

/**
 * Work on a connection pool that `open` makes, and makes again when a call gets no answer.
 * Connection trouble becomes DatabaseUnavailableError; so does a call unanswered after
 * `callMs`, and then the pool it ran on is replaced and ended, its connections with it, so
 * the next call starts afresh. The pool reconnects by itself on the next call once the server
 * is back.
 */
export function replaceablePool<Pool extends { end: (timeout: number) => Promise<unknown> }> (open: () => Pool, errors: PoolErrors) {
  let pool = open()
  let closed = false
  return {
    call<T> (work: (pool: Pool) => PromiseLike<T>): Promise<T> {
      const used = pool
      return deadline(Promise.resolve(work(used)), errors.callMs, () => {
        if (pool === used && !closed) {
          pool = open()
          void used.end(0).catch(() => {})
        }
        return new DatabaseUnavailableError(`${errors.name} at ${errors.where} did not answer within ${errors.callMs} ms`)
      }).catch((err: unknown) => {
        throw errors.isUnavailable(err)
          ? new DatabaseUnavailableError(`${errors.name} at ${errors.where} is unavailable: ${errors.reason(err)}`, { cause: err })
          : err
      })
    },
    async close () {
      closed = true
      // Queries still running get a second to finish (the server has answered its requests by
      // now). The bound matters: postgres.js keeps a query that failed because its socket
      // closed as that connection's current one, and an unbounded end() waits for it forever.
      await pool.end(1)
    }
  }
}
