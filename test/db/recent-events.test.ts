// The in-memory window of the newest events (SQLite, and PostgreSQL through notifications):
// whenever it answers a list, the answer is the database's; and it answers the common reads.
import fc from 'fast-check'
import t from 'tap'
import { NotifiedRecentEvents, RecentEvents } from '../../db/recent-events.js'
import type { EventRecord, ListFilter } from '../../db/repositories.js'
import { expectedIds } from './list-reference.js'

const event = (id: number): EventRecord => ({ id, clientId: 1, device: 'dev', name: `E${id % 7}`, location: null, action: null, value: String(id), time: id })

/** What the database answers (API.md's rule, see ./list-reference.ts). */
const reference = (table: EventRecord[], filter: ListFilter): number[] => expectedIds(table.map((row) => row.id), filter)

/** A fake table with gaps in its ids, and a data_version that other "connections" bump. */
function fakeDatabase (ids: number[]) {
  const table = ids.map(event)
  let version = 1
  return {
    table,
    newest: (count: number) => [...table].sort((a, b) => b.id - a.id).slice(0, count),
    dataVersion: () => version,
    insertElsewhere (id: number) { table.push(event(id)); version++ }
  }
}

const idsArb = fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { maxLength: 250 }).map((ids) => ids.sort((a, b) => a - b))
/** list filters with id bounds up to `maxId`, offsets up to `maxOffset` and limits (and page caps) up to `maxLimit` */
function filters (maxId: number, maxOffset: number, maxLimit: number) {
  const bound = fc.option(fc.integer({ min: -1, max: maxId }), { nil: undefined })
  return fc.record({
    after: bound,
    before: bound,
    offset: fc.option(fc.integer({ min: 0, max: maxOffset }), { nil: undefined }),
    limit: fc.option(fc.integer({ min: 0, max: maxLimit }), { nil: undefined }),
    maxItems: fc.option(fc.integer({ min: 1, max: maxLimit }), { nil: undefined })
  }).map((filter) => Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined)) as ListFilter)
}
const filterArb = filters(420, 120, 120)

t.test('every answer it gives is the database\'s answer', async (t) => {
  fc.assert(fc.property(idsArb, fc.array(filterArb, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 120 }), (ids, filters, size) => {
    const db = fakeDatabase(ids)
    const recent = new RecentEvents(db.newest, db.dataVersion, size)
    for (const filter of filters) {
      const answer = recent.list(filter)
      if (answer !== undefined) t.same(answer.map((row) => row.id), reference(db.table, filter), JSON.stringify({ size, filter }))
    }
    t.equal(recent.latestId(), ids.length === 0 ? 0 : ids[ids.length - 1]!)
  }), { seed: 20261128, numRuns: 300 })
})

t.test('it answers the reads devices make most', async (t) => {
  const db = fakeDatabase(Array.from({ length: 500 }, (_, i) => i + 1))
  const recent = new RecentEvents(db.newest, db.dataVersion, 100)
  t.same(recent.list({ limit: 10 })?.map((row) => row.id), [500, 499, 498, 497, 496, 495, 494, 493, 492, 491], 'the newest ten')
  t.same(recent.list({ after: 500 }), [], 'nothing after the latest')
  t.same(recent.list({ after: 495 })?.map((row) => row.id), [500, 499, 498, 497, 496], 'the few newer ones')
  t.equal(recent.list({}), undefined, 'the whole table is the database\'s to answer')
  t.equal(recent.list({ after: 10, limit: 200 }), undefined, 'as are rows older than the window')

  // capped at maxItems (as every route's list is): a poll after a recent id gets the events
  // right after it; the newest ones without `after`
  t.same(recent.list({ after: 480, maxItems: 5 })?.map((row) => row.id), [485, 484, 483, 482, 481], 'the five right after the cursor')
  t.same(recent.list({ after: 480, maxItems: 5, offset: 2 })?.map((row) => row.id), [485, 484, 483, 482, 481], 'cut at the cap: the offset changes nothing')
  t.same(recent.list({ after: 496, maxItems: 5, offset: 2 })?.map((row) => row.id), [498, 497], 'not cut: newest first minus the offset')
  t.same(recent.list({ after: 480, maxItems: 5, limit: 2 })?.map((row) => row.id), [500, 499], 'with a limit, the newest')
  t.same(recent.list({ maxItems: 5 })?.map((row) => row.id), [500, 499, 498, 497, 496], 'without after, the newest five')
  t.same(recent.list({ after: 400, maxItems: 5 })?.map((row) => row.id), [405, 404, 403, 402, 401], 'the lowest held is 401')
  t.equal(recent.list({ after: 399, maxItems: 5 }), undefined, 'event 400 is not held: the database answers')

  const small = fakeDatabase([3, 7, 9])
  const all = new RecentEvents(small.newest, small.dataVersion, 100)
  t.same(all.list({})?.map((row) => row.id), [9, 7, 3], 'a small table is held whole')
})

t.test('its own inserts are added; another connection\'s commit makes it reload', async (t) => {
  const db = fakeDatabase([1, 2, 3])
  const recent = new RecentEvents(db.newest, db.dataVersion, 4)
  db.table.push(event(4), event(5))
  recent.added([event(4), event(5)])
  t.same(recent.list({})?.map((row) => row.id), undefined, 'five events, four held: no longer the whole table')
  t.same(recent.list({ limit: 4 })?.map((row) => row.id), [5, 4, 3, 2])
  t.equal(recent.latestId(), 5)

  db.insertElsewhere(9)
  t.equal(recent.latestId(), 9, 'the other connection\'s event is seen')
  t.same(recent.list({ limit: 2 })?.map((row) => row.id), [9, 5])

  db.insertElsewhere(10)
  db.table.push(event(11))
  recent.added([event(11)])
  t.same(recent.list({ limit: 3 })?.map((row) => row.id), [11, 10, 9], 'an insert after another connection\'s commit reloads')
  recent.added([])
  t.equal(recent.latestId(), 11)
})

// ---------------------------------------------------------------------------------------------
// PostgreSQL: kept current by notifications

/** A load the test resolves when it chooses, with the table as it is then or as it was when asked. */
interface PendingLoad { count: number, askedAt: number, resolve: (rows: EventRecord[]) => void, reject: (err: Error) => void }

function notifiedSetup (size: number, maxAgeMs = Number.POSITIVE_INFINITY) {
  const table: EventRecord[] = []
  const loads: PendingLoad[] = []
  const state = { up: true }
  const newestOf = (upTo: number, count: number) => table.filter((row) => row.id <= upTo).sort((a, b) => b.id - a.id).slice(0, count)
  const recent = new NotifiedRecentEvents((count) => new Promise((resolve, reject) => {
    loads.push({ count, askedAt: table.length, resolve, reject })
  }), () => state.up, size, maxAgeMs)
  return { table, loads, state, newestOf, recent }
}

const settle = () => new Promise((resolve) => setImmediate(resolve))

// small bounds, as ids here stay small; reads and loads weighted up so that many reads are answered
const smallFilterArb = filters(60, 5, 12)
const operationArb = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('own' as const), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('other' as const), count: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('gap' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('notify' as const) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('load' as const), late: fc.boolean(), fail: fc.constantFrom(false, false, false, true) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('listener' as const), up: fc.constantFrom(true, true, false) }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('read' as const), filter: smallFilterArb }) }
)

t.test('PostgreSQL: every answer is the database\'s at a moment that includes every commit it was told of', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(operationArb, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 20 }), async (operations, size) => {
    const { table, loads, state, newestOf, recent } = notifiedSetup(size)
    let nextId = 1
    const pendingNotifies: number[] = []
    /** the highest id this instance committed itself or was notified of */
    let known = 0
    const insert = (count: number) => {
      const rows = Array.from({ length: count }, () => event(nextId++))
      table.push(...rows)
      return rows
    }
    for (const operation of operations) {
      switch (operation.op) {
        case 'own': {
          const rows = insert(operation.count)
          recent.added(rows)
          known = rows[rows.length - 1]!.id
          pendingNotifies.push(known)
          break
        }
        case 'other':
          pendingNotifies.push(insert(operation.count).at(-1)!.id)
          break
        case 'gap': // a sequence number used by a rolled-back insert
          nextId++
          break
        case 'notify': {
          const id = pendingNotifies.shift()
          if (id === undefined) break
          if (state.up) {
            known = Math.max(known, id)
            recent.committed(id)
          }
          break
        }
        case 'load': {
          const load = loads.shift()
          if (load === undefined) break
          if (operation.fail) load.reject(new Error('unavailable'))
          else load.resolve(newestOf(operation.late ? Number.POSITIVE_INFINITY : table[load.askedAt - 1]?.id ?? 0, load.count))
          await settle()
          break
        }
        case 'listener':
          if (operation.up && !state.up) {
            state.up = true
            recent.stale() // the listener is back: what happened meanwhile went unheard
          } else if (!operation.up) state.up = false
          break
        case 'read': {
          const answer = recent.list(operation.filter)
          if (answer === undefined) break
          t.ok(state.up, 'answers only while the listener is up')
          const ids = answer.map((row) => row.id)
          const latest = table.at(-1)?.id ?? 0
          const moments = table.map((row) => row.id).concat(0).filter((id) => id >= known && id <= latest)
          const matching = moments.some((upTo) => JSON.stringify(reference(table.filter((row) => row.id <= upTo), operation.filter)) === JSON.stringify(ids))
          if (!matching) t.fail('an answer no moment of the database gives', { filter: operation.filter, ids, known, size })
          break
        }
      }
    }
  }), {
    seed: 20261128,
    numRuns: 300,
    // a load that was running when another instance's commit was notified must not be installed
    examples: [[[{ op: 'read', filter: {} }, { op: 'load', late: true, fail: false }, { op: 'read', filter: {} }, { op: 'other', count: 1 }, { op: 'notify' }, { op: 'read', filter: {} }, { op: 'other', count: 1 }, { op: 'notify' }, { op: 'load', late: false, fail: false }, { op: 'read', filter: {} }], 5]]
  })
})

t.test('PostgreSQL: the window answers polls once loaded, and sees notified commits', async (t) => {
  const { table, loads, state, newestOf, recent } = notifiedSetup(100, 1000)
  table.push(event(1), event(2), event(3))
  t.equal(recent.list({ limit: 2 }), undefined, 'not loaded yet: the caller queries')
  t.equal(recent.latestId(), undefined)
  t.equal(loads.length, 1, 'one load started, however many reads asked')
  loads.shift()!.resolve(newestOf(Infinity, 100))
  await settle()
  t.same(recent.list({ limit: 2 })?.map((row) => row.id), [3, 2])
  t.equal(recent.latestId(), 3)

  recent.added([event(4)])
  table.push(event(4))
  t.equal(recent.latestId(), 4, 'its own insert at once')
  recent.committed(4)
  t.equal(recent.latestId(), 4, 'the notification of its own insert changes nothing')

  table.push(event(5))
  recent.committed(5)
  t.equal(recent.list({ after: 4 }), undefined, 'another instance\'s commit: stale until reloaded')
  loads.shift()!.resolve(newestOf(Infinity, 100))
  await settle()
  t.same(recent.list({ after: 4 })?.map((row) => row.id), [5])

  table.push(event(7))
  recent.added([event(7)])
  t.equal(recent.latestId(), undefined, 'a group after a gap (maybe a commit not yet notified) makes it reload')
  loads.shift()!.resolve(newestOf(Infinity, 100))
  await settle()
  t.equal(recent.latestId(), 7)

  state.up = false
  t.equal(recent.list({ limit: 1 }), undefined, 'not used while the listener is down')
  state.up = true
  t.equal(recent.latestId(), 7)

  const realNow = Date.now
  t.teardown(() => { Date.now = realNow })
  Date.now = () => realNow() + 1500
  t.equal(recent.latestId(), undefined, 'never older than maxAgeMs: a dead listener cannot hide commits for long')
  loads.shift()!.reject(new Error('unavailable'))
  await settle()
  t.equal(recent.latestId(), undefined, 'a failed load leaves it unused')
  loads.shift()!.resolve(newestOf(Infinity, 100))
  await settle()
  t.equal(recent.latestId(), 7, 'the next load brings it back')
})

t.test('PostgreSQL: a load that read before this instance\'s own insert is not installed', async (t) => {
  const { table, loads, newestOf, recent } = notifiedSetup(100)
  table.push(event(1))
  t.equal(recent.latestId(), undefined)
  const early = newestOf(Infinity, 100)
  table.push(event(2))
  recent.added([event(2)])
  loads.shift()!.resolve(early)
  await settle()
  t.equal(recent.latestId(), undefined, 'the rows without its own event are dropped')
  loads.shift()!.resolve(newestOf(Infinity, 100))
  await settle()
  t.equal(recent.latestId(), 2)
})
