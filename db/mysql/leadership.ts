import type mysql from 'mysql2/promise'
import { deadline } from '../pool.js'
import type { Lease } from '../repositories.js'
import { openConnection, targetOf, type MysqlSettings, type MysqlTimeouts } from './connection.js'

/** How often a held role checks that its connection still answers (a server gone without closing it). */
const CHECK_MS = 2000

/** GET_LOCK names are server-wide and at most 64 characters: the database is part of the name. */
const roleLock = (database: string, name: string) => `cred-server:bridge:${name}:${database}`.slice(0, 64)

/**
 * Roles held by one instance at a time (`BridgeRepository.lead`): a GET_LOCK on a connection of
 * its own, as PostgreSQL's advisory lock (../postgres/leadership.ts). The lock lives as long as
 * that connection: when the process dies, the server frees it for the next instance that asks.
 * A process that has not got it keeps its connection for the next try.
 */
export function leadership (settings: MysqlSettings, timeouts: MysqlTimeouts) {
  const candidates = new Map<string, mysql.Connection>()
  const noAnswer = () => new Error(`no answer within ${timeouts.callMs} ms`)
  const end = (connection: mysql.Connection) => { connection.destroy() }

  async function lead (name: string, onLost: () => void): Promise<Lease | undefined> {
    let connection = candidates.get(name)
    if (connection === undefined) {
      connection = await deadline(openConnection(settings, timeouts), timeouts.callMs, noAnswer)
      // a dropped candidate is simply replaced at the next try
      connection.on('error', () => { if (candidates.get(name) === connection) candidates.delete(name) })
      candidates.set(name, connection)
    }
    const held = connection
    const lock = roleLock(targetOf(settings).database, name)
    try {
      const [rows] = await deadline(held.query<mysql.RowDataPacket[]>('select get_lock(?, 0) as locked', [lock]), timeouts.callMs, noAnswer)
      if (Number(rows[0]?.locked) !== 1) return undefined
    } catch (err) {
      if (candidates.get(name) === held) candidates.delete(name)
      end(held)
      throw err
    }
    // the connection is the lease's now: the next try opens another
    if (candidates.get(name) === held) candidates.delete(name)
    let holding = true
    const lose = () => {
      if (!holding) return
      holding = false
      clearInterval(check)
      end(held)
      onLost()
    }
    held.on('error', lose)
    held.on('end', lose)
    const check = setInterval(() => {
      deadline(held.query('select 1'), timeouts.callMs, noAnswer).catch(lose)
    }, CHECK_MS)
    check.unref()
    return {
      async release () {
        if (!holding) return
        holding = false
        clearInterval(check)
        // released before the session ends, so that the next asker gets it at once (the server
        // frees a lock of an ended session only once it has seen the session end)
        await deadline(held.query('do release_lock(?)', [lock]), timeouts.callMs, noAnswer).catch(() => {})
        await held.end().catch(() => { held.destroy() })
      }
    }
  }
  return {
    lead,
    /** Ends the connections kept for the next try (a lease ends its own). */
    close: async () => {
      for (const connection of candidates.values()) end(connection)
      candidates.clear()
    }
  }
}
