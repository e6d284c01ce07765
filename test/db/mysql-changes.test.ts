// How a MariaDB / MySQL instance learns of other instances' changes (db/mysql/changes.ts),
// without a server: the looks it makes, and what it tells, in which order.
import t from 'tap'
import { LOOK_GAP_MS, PolledChanges, type Latest } from '../../db/mysql/changes.js'
import type { AccessEnded, CommittedEvents } from '../../db/repositories.js'

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A database as the looks read it, with the calls counted. */
function fakeDatabase () {
  const state = { latest: { events: 0, access: 0 } as Latest, ended: [] as AccessEnded[], down: false, looks: 0, endedReads: 0 }
  const reads = {
    latest: async () => {
      state.looks++
      if (state.down) throw new Error('connection refused')
      return { ...state.latest }
    },
    ended: async (after: number, upTo: number) => {
      state.endedReads++
      return state.ended.slice(after, upTo)
    }
  }
  return { state, reads }
}

t.test('one look per interval while something listens, however many listen; none before or after', async (t) => {
  const { state, reads } = fakeDatabase()
  const changes = new PolledChanges(reads, 50, { events: () => {}, ended: () => {}, connected: () => {} })
  await delay(200)
  t.equal(state.looks, 0, 'no look while nothing listens')
  t.notOk(changes.listening())
  const listeners = await Promise.all(Array.from({ length: 20 }, () => changes.listen(() => {}, () => {})))
  t.ok(changes.listening(), 'listening once a look answered')
  const before = state.looks
  await delay(520)
  const looks = state.looks - before
  t.ok(looks >= 4 && looks <= 11, `about one look per 50 ms for 20 listeners: ${looks} in 520 ms`)
  for (const listener of listeners) await listener.close()
  const after = state.looks
  await delay(200)
  t.ok(state.looks - after <= 1, 'no more looks once nobody listens')
  t.notOk(changes.listening())
})

t.test('ends are told before the events committed after them; a look that finds nothing new tells nothing', async (t) => {
  const { state, reads } = fakeDatabase()
  const heard: string[] = []
  const changes = new PolledChanges(reads, 20, {
    events: (latest) => heard.push(`events ${latest}`),
    ended: (ended) => heard.push(`ended ${JSON.stringify(ended)}`),
    connected: () => heard.push('connected')
  })
  const told: CommittedEvents[] = []
  const listener = await changes.listen((committed) => told.push(committed), () => heard.push('onConnected'))
  t.teardown(() => listener.close())
  t.same(heard, ['ended "unknown"', 'connected', 'onConnected'], 'the first look: anything may have ended before')
  heard.length = 0
  await delay(60)
  t.same(heard, [], 'nothing new, nothing told')
  state.ended = [{ clientIds: [7] }, { apikeyIds: [3] }]
  state.latest = { events: 12, access: 2 }
  await delay(60)
  t.same(heard, ['ended {"clientIds":[7]}', 'ended {"apikeyIds":[3]}', 'events 12'], 'in commit order')
  t.same(told, [{ latest: 12 }])
  t.equal(state.endedReads, 1, 'the access rows read once')

  heard.length = 0
  changes.ownEnd(3)
  state.ended.push({ clientIds: [8] }, { clientIds: [9] })
  changes.ownCommit({ events: 13, access: 4 })
  await delay(5)
  t.same(heard.slice(0, 3), ['ended {"clientIds":[8]}', 'ended {"clientIds":[9]}', 'events 13'], 'its own commit, after the ends its transaction saw before it')
})

t.test('an own commit is told at once, without waiting for the next look', async (t) => {
  const { state, reads } = fakeDatabase()
  const heard: string[] = []
  // a look an hour: only the first one happens during the test
  const changes = new PolledChanges(reads, 3_600_000, { events: (latest) => heard.push(`events ${latest}`), ended: () => {}, connected: () => {} })
  const listener = await changes.listen(() => {}, () => {})
  t.teardown(() => listener.close())
  const looks = state.looks
  changes.ownCommit({ events: 5, access: 0 })
  await delay(20)
  t.same(heard, ['events 5'], 'told')
  t.equal(state.looks, looks, 'with no look')
})

t.test('a failed look: not listening; the next good one tells that anything may have changed', async (t) => {
  const { state, reads } = fakeDatabase()
  const heard: string[] = []
  const changes = new PolledChanges(reads, 20, { events: () => {}, ended: (ended) => heard.push(JSON.stringify(ended)), connected: () => heard.push('connected') })
  const listener = await changes.listen(() => {}, () => {})
  t.teardown(() => listener.close())
  heard.length = 0
  state.down = true
  await delay(60)
  t.notOk(changes.listening(), 'not listening while looks fail')
  state.down = false
  await delay(60)
  t.ok(changes.listening(), 'listening again, by itself')
  t.same(heard, ['"unknown"', 'connected'])
  changes.lost()
  t.notOk(changes.listening(), 'a lost connection: not listening until the next look')
})

t.test('rows read more than LOOK_GAP_MS after the look before may have been purged: anything may have ended', async (t) => {
  const { state, reads } = fakeDatabase()
  const heard: string[] = []
  const clock = { now: 0 }
  const changes = new PolledChanges(reads, 20, { events: () => {}, ended: (ended) => heard.push(JSON.stringify(ended)), connected: () => {} }, () => clock.now)
  const listener = await changes.listen(() => {}, () => {})
  t.teardown(() => listener.close())
  heard.length = 0
  // a look half a gap later: the rows above the last seen are all there
  clock.now += LOOK_GAP_MS / 2
  state.ended = [{ clientIds: [7] }]
  state.latest = { events: 0, access: 1 }
  await delay(60)
  t.same(heard, ['{"clientIds":[7]}'], 'the row as written')
  heard.length = 0
  // the process stalled for longer than the gap (no look meanwhile): a row may be gone
  clock.now += LOOK_GAP_MS + 1
  state.ended.push({ clientIds: [8] })
  state.latest = { events: 0, access: 2 }
  await delay(60)
  t.same(heard, ['"unknown"'], 'not the rows: whoever holds sessions re-checks them')
  heard.length = 0
  state.ended.push({ apikeyIds: [3] })
  state.latest = { events: 0, access: 3 }
  await delay(60)
  t.same(heard, ['{"apikeyIds":[3]}'], 'the next look reads the rows again')
})
