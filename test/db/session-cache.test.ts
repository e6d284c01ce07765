// The cache of recently used sessions: what it keeps, and when it lets go.
import t from 'tap'
import { SessionCache } from '../../db/session-cache.js'
import type { SessionRecord } from '../../db/repositories.js'

const session = (id: number): SessionRecord => ({ id, device: 'dev', location: null, lastActive: 0, apikeyId: 1, permission: 'read' })

function counting (record: SessionRecord | undefined) {
  const loader = Object.assign((_hash: string) => { loader.calls++; return record }, { calls: 0 })
  return loader
}

t.test('a session looked up again within the ttl is not loaded again', async (t) => {
  const cache = new SessionCache(() => true, 60_000)
  const load = counting(session(1))
  t.same(await cache.lookup('a', load), session(1))
  t.equal(await cache.lookup('a', load), await cache.lookup('a', load), 'the same record')
  t.equal(load.calls, 1)
  cache.clear()
  await cache.lookup('a', load)
  t.equal(load.calls, 2, 'cleared: loaded again')
})

t.test('unknown sessions are not kept', async (t) => {
  const cache = new SessionCache(() => true, 60_000)
  const load = counting(undefined)
  t.equal(await cache.lookup('x', load), undefined)
  t.equal(await cache.lookup('x', load), undefined)
  t.equal(load.calls, 2)
})

t.test('entries expire after the ttl', async (t) => {
  const cache = new SessionCache(() => true, 20)
  const load = counting(session(1))
  await cache.lookup('a', load)
  await new Promise((resolve) => setTimeout(resolve, 40))
  await cache.lookup('a', load)
  t.equal(load.calls, 2)
})

t.test('while not usable, every lookup loads', async (t) => {
  let usable = false
  const cache = new SessionCache(() => usable, 60_000)
  const load = counting(session(1))
  await cache.lookup('a', load)
  await cache.lookup('a', load)
  t.equal(load.calls, 2)
  usable = true
  await cache.lookup('a', load)
  await cache.lookup('a', load)
  t.equal(load.calls, 3)
})

t.test('a lookup that was running when the cache was cleared does not store its answer', async (t) => {
  const cache = new SessionCache(() => true, 60_000)
  let release: (record: SessionRecord) => void = () => {}
  const slow = cache.lookup('a', () => new Promise<SessionRecord>((resolve) => { release = resolve }))
  cache.clear() // e.g. the key was revoked while the query ran
  release(session(1))
  t.same(await slow, session(1), 'the caller still gets what the database said then')
  const load = counting(undefined)
  t.equal(await cache.lookup('a', load), undefined, 'but the next lookup asks again')
  t.equal(load.calls, 1)
})

t.test('it holds at most maxEntries sessions, dropping the oldest', async (t) => {
  const cache = new SessionCache(() => true, 60_000, 2)
  const loads = [counting(session(1)), counting(session(2)), counting(session(3))]
  for (const [i, load] of loads.entries()) await cache.lookup(String(i), load)
  await cache.lookup('0', loads[0]!)
  await cache.lookup('2', loads[2]!)
  t.same(loads.map((load) => load.calls), [2, 1, 1], 'the first was dropped, the newest kept')
})

t.test('peek answers what lookup would answer from memory, and nothing else', async (t) => {
  let usable = true
  const cache = new SessionCache(() => usable, 30)
  t.equal(cache.peek('a'), undefined, 'never looked up')
  await cache.lookup('a', counting(session(1)))
  t.same(cache.peek('a'), session(1), 'looked up: held')
  t.equal(cache.peek('b'), undefined, 'another key')
  usable = false
  t.equal(cache.peek('a'), undefined, 'not while the cache is not usable')
  usable = true
  t.same(cache.peek('a'), session(1))
  cache.clear()
  t.equal(cache.peek('a'), undefined, 'cleared')
  await cache.lookup('a', counting(session(1)))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(cache.peek('a'), undefined, 'past the ttl')
  await cache.lookup('x', counting(undefined))
  t.equal(cache.peek('x'), undefined, 'an unknown session is not held')
})
