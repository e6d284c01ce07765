import type postgres from 'postgres'
import type { Lease } from '../repositories.js'
import { connect, connectionOptions, deadline, noAnswer, type PostgresSettings, type PostgresTimeouts } from './connection.js'
import { lockNames } from './locks.js'

/** How often a held role checks that its connection still answers (a server gone without closing it). */
const CHECK_MS = 2000

/** A connection of its own, and what to do when it closes. */
interface Holder { sql: postgres.Sql, closed: () => void }

/**
 * Roles held by one instance at a time (`BridgeRepository.lead`): a session-level advisory lock,
 * on a connection of its own. The lock lives as long as that connection: when the process dies,
 * the server sees the socket close and frees it for the next instance that asks. A process
 * that has not got it keeps its connection for the next try, so trying costs one query.
 */
export function leadership (settings: PostgresSettings, timeouts: PostgresTimeouts) {
  const candidates = new Map<string, Holder>()
  function open (name: string): Holder {
    let closed = () => { candidates.delete(name) }
    // onclose is an option postgres.js's own listen() uses; its types leave it out
    const options = {
      ...connectionOptions(settings, timeouts, timeouts.statementMs),
      idle_timeout: null,
      max_lifetime: null,
      onclose: () => closed()
    } as unknown as postgres.Options<Record<string, postgres.PostgresType>>
    return {
      sql: connect(settings, options, 1),
      set closed (then: () => void) { closed = then },
      get closed () { return closed }
    }
  }
  const end = (holder: Holder) => holder.sql.end({ timeout: 0 }).catch(() => {})

  async function lead (name: string, onLost: () => void): Promise<Lease | undefined> {
    let holder = candidates.get(name)
    if (holder === undefined) candidates.set(name, holder = open(name))
    const { sql } = holder
    const lock = `${lockNames.bridge}:${name}`
    try {
      const [row] = await deadline(sql`select pg_try_advisory_lock(hashtextextended(${lock}, 0)) as locked`, timeouts.callMs, () => noAnswer(timeouts))
      if (row?.locked !== true) return undefined
    } catch (err) {
      if (candidates.get(name) === holder) candidates.delete(name)
      await end(holder)
      throw err
    }
    // the connection is the lease's now: the next try opens another
    if (candidates.get(name) === holder) candidates.delete(name)
    let held = true
    const lose = () => {
      if (!held) return
      held = false
      clearInterval(check)
      void end(holder)
      onLost()
    }
    holder.closed = lose
    const check = setInterval(() => {
      deadline(sql`select 1`, timeouts.callMs, () => noAnswer(timeouts)).catch(lose)
    }, CHECK_MS)
    check.unref()
    return {
      async release () {
        if (!held) return
        held = false
        clearInterval(check)
        await sql.end({ timeout: 1 })
      }
    }
  }
  return {
    lead,
    /** Ends the connections kept for the next try (a lease ends its own). */
    close: () => Promise.all([...candidates.values()].map(end)).then(() => candidates.clear())
  }
}
