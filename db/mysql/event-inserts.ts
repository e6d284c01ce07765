// How a group of posts is stored (../batch.ts gathers them): one round trip of several
// statements on the writer connection, three when some carry an Idempotency-Key.
import type mysql from 'mysql2/promise'
import { IDEMPOTENCY_WINDOW_MS, keyOf, keysOf, purgeSchedule, sortOut, type QueuedEvent } from '../idempotency.js'
import type { EventRecord, NewEventRecord, PostedEvent } from '../repositories.js'
import { insertedEvents } from '../statements.js'

/** Takes the `order` lock row until the transaction ends (see schema.ts `locks`). */
export const lockOrder = "select name from cred_locks where name = 'order' for update"

/**
 * The most events one insert statement takes: a larger group is inserted by several, in the
 * same transaction, so that no statement comes near the server's max_allowed_packet (a
 * 4,096-character value is up to 16 KB of UTF-8).
 */
const INSERT_ROWS = 64

const insertSql = (rows: number) =>
  `insert into events (client_id, device, name, location, action, value, time) values ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`

/** The highest row of access_ended, read under the lock: the ends committed before this group. */
const accessSql = 'select coalesce(max(id), 0) as access from access_ended'

/** A text column as mysql2 reads a VARBINARY / BLOB: bytes, or null. */
const text = (value: unknown): string | null => value === null ? null : Buffer.isBuffer(value) ? value.toString('utf8') : String(value)

interface InsertPlan {
  sql: string[]
  values: unknown[]
  /** rows of each insert statement */
  chunks: NewEventRecord[][]
}

function insertPlan (group: NewEventRecord[], time: number): InsertPlan {
  const plan: InsertPlan = { sql: [], values: [], chunks: [] }
  for (let start = 0; start < group.length; start += INSERT_ROWS) {
    const chunk = group.slice(start, start + INSERT_ROWS)
    plan.sql.push(insertSql(chunk.length))
    plan.chunks.push(chunk)
    for (const e of chunk) plan.values.push(e.clientId, e.device, e.name, e.location, e.action, e.value, time)
  }
  return plan
}

/** The events a plan stored, from the answers of its insert statements (ids follow each insert's first id). */
function stored (plan: InsertPlan, headers: mysql.ResultSetHeader[], increment: number, time: number): EventRecord[] {
  return plan.chunks.flatMap((chunk, i) => {
    const first = headers[i]!.insertId
    return insertedEvents(chunk, chunk.map((_event, row) => first + row * increment), time)
  })
}

/** What a group's transaction did: each post's answer, the events it added, and the access_ended rows committed before it. */
export interface Stored {
  answers: PostedEvent[]
  added: EventRecord[]
  access: number
}

/**
 * How a group of posts is stored, in commit order across instances.
 *
 * AUTO_INCREMENT ids are handed out at insert, not at commit, so two instances' inserts could
 * commit out of id order and a client polling `after=<highest id seen>` would skip the one
 * that committed late. Each group takes the `order` row lock first and holds it until it
 * commits, as PostgreSQL's advisory lock: its ids are taken and committed before the next
 * group starts. A group's rows are numbered consecutively, `increment` apart (the server's
 * auto_increment_increment), from the first id each insert statement answers (LAST_INSERT_ID;
 * neither server needs RETURNING, which MySQL 8 lacks): nothing else inserts events while the
 * lock is held. That is what makes it hold under every innodb_autoinc_lock_mode: 1 (MariaDB's
 * default) numbers the rows of one multi-row insert consecutively in any case, but 2
 * (interleaved, MySQL 8's default) may interleave the ids of multi-row inserts into one table
 * that run at the same time, and under the lock none do.
 *
 * A group without keys is ONE round trip: begin, lock, insert, read the highest access_ended
 * row, commit. A group with idempotency keys reads them after the lock, in a first round trip
 * (the connection reads committed data: it sees every key the lock's previous holder stored),
 * inserts the new events in a second, and writes their keys and commits in a third.
 */
export function eventInserts (increment: number) {
  const purge = purgeSchedule()

  /** Runs `statements` (joined) on `connection`; on failure the transaction is rolled back. */
  async function run (connection: mysql.PoolConnection, statements: string[], values: unknown[]): Promise<unknown[]> {
    try {
      const [results] = await connection.query(statements.join(';\n'), values)
      // one statement answers its result; several, an array of theirs
      return statements.length === 1 ? [results] : results as unknown[]
    } catch (err) {
      await connection.query('rollback').catch(() => connection.destroy())
      throw err
    }
  }

  async function insertPlain (connection: mysql.PoolConnection, group: NewEventRecord[], time: number): Promise<Stored> {
    const plan = insertPlan(group, time)
    const results = await run(connection, ['start transaction', lockOrder, ...plan.sql, accessSql, 'commit'], plan.values)
    const added = stored(plan, results.slice(2, 2 + plan.chunks.length) as mysql.ResultSetHeader[], increment, time)
    const [row] = results[2 + plan.chunks.length] as mysql.RowDataPacket[]
    return { answers: added, added, access: Number(row!.access) }
  }

  async function insertKeyed (connection: mysql.PoolConnection, group: QueuedEvent[], time: number): Promise<Stored> {
    const keys = keysOf(group)
    const since = time - IDEMPOTENCY_WINDOW_MS
    const lookup = `select k.apikey_id, k.key, e.id, e.client_id, e.device, e.name, e.location, e.action, e.value, e.time
      from idempotency_keys k join events e on e.id = k.event_id
      where k.created > ? and (${keys.map(() => '(k.apikey_id = ? and k.key = ?)').join(' or ')})`
    const [, , rows] = await run(connection, ['start transaction', lockOrder, lookup],
      [since, ...keys.flatMap((key) => [key.apikeyId, key.key])]) as [unknown, unknown, mysql.RowDataPacket[]]
    const found = new Map(rows.map((row) => [keyOf({ apikeyId: Number(row.apikey_id), key: text(row.key)! }), {
      id: Number(row.id), clientId: Number(row.client_id), device: text(row.device), name: text(row.name)!, location: text(row.location), action: text(row.action), value: text(row.value), time: Number(row.time)
    }]))
    const sorted = sortOut(group, (key) => found.get(keyOf(key)))
    const plan = insertPlan(sorted.fresh, time)
    const headers = plan.sql.length > 0 ? await run(connection, plan.sql, plan.values) as mysql.ResultSetHeader[] : []
    const added = stored(plan, headers, increment, time)
    const { answers, keyRows } = sorted.answers(added)
    const rest: string[] = []
    const values: unknown[] = []
    if (keyRows.length > 0) {
      // (VALUES() in the update is deprecated since MySQL 8.0.20 but accepted; MariaDB has no
      // row alias, the replacement)
      rest.push(`insert into idempotency_keys (apikey_id, \`key\`, event_id, created) values ${keyRows.map(() => '(?, ?, ?, ?)').join(', ')}
        on duplicate key update event_id = values(event_id), created = values(created)`)
      for (const row of keyRows) values.push(row.apikeyId, row.key, row.eventId, time)
    }
    if (purge.due(time)) {
      rest.push('delete from idempotency_keys where created <= ?')
      values.push(since)
    }
    const results = await run(connection, [...rest, accessSql, 'commit'], values)
    const [row] = results[rest.length] as mysql.RowDataPacket[]
    return { answers, added, access: Number(row!.access) }
  }

  /** Stores `group` at `time` on a connection of the writer pool. */
  return async (writer: mysql.Pool, group: QueuedEvent[], time: number): Promise<Stored> => {
    const connection = await writer.getConnection()
    try {
      return keysOf(group).length > 0 ? await insertKeyed(connection, group, time) : await insertPlain(connection, group, time)
    } finally {
      connection.release()
    }
  }
}
