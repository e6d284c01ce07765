// The in-memory window of the newest events (SQLite): whenever it answers a list, the
// answer is the database's; and it answers the common reads.
import fc from 'fast-check'
import t from 'tap'
import { RecentEvents } from '../../db/recent-events.js'
import type { EventRecord, ListFilter } from '../../db/repositories.js'

const event = (id: number): EventRecord => ({ id, clientId: 1, device: 'dev', name: `E${id % 7}`, location: null, action: null, value: String(id), time: id })

/** What the database answers: ids in the window, newest first, then offset, then limit. */
function reference (table: EventRecord[], filter: ListFilter): number[] {
  const ids = table.map((row) => row.id)
    .filter((id) => id > (filter.after ?? -1) && id < (filter.before ?? Infinity))
    .sort((a, b) => b - a)
  const from = filter.offset ?? 0
  return ids.slice(from, filter.limit === undefined ? undefined : from + filter.limit)
}

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
const bound = fc.option(fc.integer({ min: -1, max: 420 }), { nil: undefined })
const filterArb = fc.record({
  after: bound,
  before: bound,
  offset: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
  limit: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined })
}).map((filter) => Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined)) as ListFilter)

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
