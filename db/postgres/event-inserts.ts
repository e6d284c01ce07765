// How a group of posts is stored (../batch.ts gathers them): one statement on the writer
// connection, or one transaction when some carry an Idempotency-Key.
import type postgres from 'postgres'
import { IDEMPOTENCY_WINDOW_MS, keyOf, keysOf, purgeSchedule, sortOut, type QueuedEvent } from '../idempotency.js'
import type { EventRecord, IdempotencyKey, NewEventRecord, PostedEvent } from '../repositories.js'
import { insertedEvents } from '../statements.js'
import { lockNames } from './locks.js'
import { eventsChannel } from './notifications.js'

/**
 * One group of events, inserted in order under the event-order lock, with a notification (see
 * `eventInserts`). It answers one row: the new ids in ascending order, comma-separated.
 */
const insertGroupStatement = `
  with locked as materialized (select pg_advisory_xact_lock(hashtextextended($1, 0))),
  ins as (
    insert into events (client_id, device, name, location, action, value, time)
    select e.client_id, e.device, e.name, e.location, e.action, e.value, $2::bigint
    from locked, json_to_recordset($3::text::json)
      as e(client_id integer, device text, name text, location text, action text, value text)
    returning id
  )
  select string_agg(id::text, ',' order by id) as ids, pg_notify($4, max(id)::text) from ins`

/**
 * Posts with an Idempotency-Key (../idempotency.ts): the events the keys of a group ($1, a JSON
 * array of {apikey_id, key}) name while younger than $2, one row per key found, on the
 * primary key (apikey_id, key)...
 */
const idempotentEventsStatement = `
  select w.apikey_id, w.key, e.id, e.client_id, e.device, e.name, e.location, e.action, e.value, e.time
  from json_to_recordset($1::text::json) as w(apikey_id integer, key text)
  join idempotency_keys k on k.apikey_id = w.apikey_id and k.key = w.key
  join events e on e.id = k.event_id
  where k.created > $2::bigint`

/** ...the keys naming their new events ($1: {apikey_id, key, event_id}; an expired key names the new one now)... */
const rememberKeysStatement = `
  insert into idempotency_keys (apikey_id, key, event_id, created)
  select r.apikey_id, r.key, r.event_id, $2::bigint
  from json_to_recordset($1::text::json) as r(apikey_id integer, key text, event_id integer)
  on conflict (apikey_id, key) do update set event_id = excluded.event_id, created = excluded.created`

/** ...and the expired keys deleted, a range on idempotency_keys_created_idx. */
const purgeKeysStatement = 'delete from idempotency_keys where created <= $1::bigint'

/** A row of idempotentEventsStatement as postgres.js reads it (bigint as text). */
interface IdempotentEventRow {
  apikey_id: number
  key: string
  id: number
  client_id: number
  device: string | null
  name: string
  location: string | null
  action: string | null
  value: string | null
  time: string
}

/**
 * Inserts events with insertGroupStatement on `on`: the writer connection, or a transaction on
 * it. The statement is named and prepared (parsing and analysing the CTE each time cost about a
 * third of its time), and answers only the new ids, in order: each stored row is the group's
 * own values with its id and the time sent as $2, so reading the rows back would be work for
 * nothing, most of it the driver's.
 */
async function insertRows (on: Pick<postgres.Sql, 'unsafe'>, group: NewEventRecord[], time: number): Promise<EventRecord[]> {
  const rows = group.map((event) => ({
    client_id: event.clientId, device: event.device, name: event.name, location: event.location, action: event.action, value: event.value
  }))
  const [answer] = await on.unsafe<Array<{ ids: string }>>(insertGroupStatement,
    [lockNames.eventOrder, time, JSON.stringify(rows), eventsChannel], { prepare: true })
  return insertedEvents(group, answer!.ids.split(','), time)
}

/**
 * How a group of posts is stored, in commit order across instances.
 *
 * Ids come from a sequence, so two instances' inserts could commit out of id order and a
 * client polling `after=<highest id seen>` would skip the one that committed late. The
 * transaction lock makes each group of inserts take its ids and commit before the next one
 * starts, as SQLite's single writer does.
 *
 * A group without keys is ONE statement, so one round trip: take the lock, insert the rows (the
 * sequence numbers them in array order, after the lock: the plan evaluates nextval above the
 * join with `locked`), and notify every listening instance with the highest id, which
 * PostgreSQL delivers when (and only if) the transaction commits.
 *
 * A group with idempotency keys is one transaction of several statements. The event-order lock
 * is taken first, by a statement of its own: the lookup after it then reads with a snapshot
 * taken once the lock is held, and so sees every key another instance committed before it
 * released the lock (in one statement, as insertGroupStatement, the snapshot would predate the
 * lock). The insert takes the lock again, which the transaction already holds, and notifies as
 * always.
 */
export function eventInserts () {
  const purge = purgeSchedule()

  function insertKeyed (writer: postgres.Sql, group: QueuedEvent[], keys: IdempotencyKey[], time: number) {
    return writer.begin(async (tx) => {
      await tx.unsafe('select pg_advisory_xact_lock(hashtextextended($1, 0))', [lockNames.eventOrder])
      const since = time - IDEMPOTENCY_WINDOW_MS
      const rows = await tx.unsafe<IdempotentEventRow[]>(idempotentEventsStatement,
        [JSON.stringify(keys.map((key) => ({ apikey_id: key.apikeyId, key: key.key }))), since])
      const found = new Map(rows.map((row) => [keyOf({ apikeyId: row.apikey_id, key: row.key }), {
        id: row.id, clientId: row.client_id, device: row.device, name: row.name, location: row.location, action: row.action, value: row.value, time: Number(row.time)
      }]))
      const sorted = sortOut(group, (key) => found.get(keyOf(key)))
      const added = sorted.fresh.length > 0 ? await insertRows(tx, sorted.fresh, time) : []
      const { answers, keyRows } = sorted.answers(added)
      if (keyRows.length > 0) {
        await tx.unsafe(rememberKeysStatement, [JSON.stringify(keyRows.map((row) => ({ apikey_id: row.apikeyId, key: row.key, event_id: row.eventId }))), time])
      }
      if (purge.due(time)) await tx.unsafe(purgeKeysStatement, [since])
      return { answers, added }
    })
  }

  /** Stores `group` at `time` on the writer connection: each post's answer, and the events added. */
  return async (writer: postgres.Sql, group: QueuedEvent[], time: number): Promise<{ answers: PostedEvent[], added: EventRecord[] }> => {
    const keys = keysOf(group)
    if (keys.length > 0) return insertKeyed(writer, group, keys, time)
    const added = await insertRows(writer, group, time)
    return { answers: added, added }
  }
}
