// Bounded answers on every list route (API.md, "List parameters"): no list holds more than
// maxPageSize items, a larger `limit` is a 400 naming the maximum, and a client polling with
// `after=<highest id it has seen>` and no limit gets every event exactly once, in order, however
// many arrive meanwhile.
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { bearer, build, forEachBackend } from './helper.js'

const CAP = 5

/** Ids of a list answer, checking it is a 200. */
async function listIds (t: Test, app: FastifyInstance, url: string, sessionKey: string): Promise<number[]> {
  const res = await app.inject({ url, headers: bearer(sessionKey) })
  t.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 200)}`)
  const body = res.json() as Record<string, unknown>
  const items = (body.events ?? body.clients ?? body.apikeys) as Array<{ id: number }>
  return items.map((item) => item.id)
}

/**
 * The real client's loop: first `?full=true&limit=1`, then `?full=true&after=<highest id seen>`
 * until an answer is empty, taking the highest id of each answer as its next cursor.
 * `between(round)` runs after each poll (to post more events meanwhile). Answers every page.
 */
async function pollLikeTheClient (t: Test, app: FastifyInstance, url: string, sessionKey: string, between: (round: number) => Promise<void>): Promise<number[][]> {
  const pages = [await listIds(t, app, `${url}?full=true&limit=1`, sessionKey)]
  let cursor = pages[0]![0] ?? 0
  for (let round = 1; ; round++) {
    await between(round)
    const page = await listIds(t, app, `${url}?full=true&after=${cursor}`, sessionKey)
    if (page.length === 0) return pages
    if (round > 200) throw new Error(`${url}: still polling after 200 rounds`)
    pages.push(page)
    cursor = Math.max(cursor, ...page)
  }
}

/** Posts events named `names` as `sessionKey`, one request each, all at once; answers them in id order. */
async function post (app: FastifyInstance, sessionKey: string, names: string[]): Promise<Array<{ id: number, name: string }>> {
  const events = await Promise.all(names.map(async (name, i) => {
    const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name, value: i } } })
    if (res.statusCode !== 201) throw new Error(`posting failed: ${res.statusCode} ${res.body}`)
    return { id: (res.json() as { event: { id: number } }).event.id, name }
  }))
  return events.sort((a, b) => a.id - b.id)
}

/** The ids of events just posted. */
const idsOf = (events: Array<{ id: number }>) => events.map((event) => event.id)

forEachBackend(t, async (t, backend) => {
  t.test('every event list polled as the real client polls gives every event once, in order, with more new events than the cap', async (t) => {
    const { app, session } = await build(t, { maxPageSize: CAP }, { backend })
    const sensor = await session('write', { device: 'Sensor' })
    const other = await session('write', { device: 'Other' })
    const panel = await session('read', { device: 'Panel', subscribe: { Light: {} } })
    // every list gets events the others do not: Light from the sensor, Door from the sensor, Light from another client
    const mix = (count: number) => Array.from({ length: count }, (_, i) => i % 3 === 0 ? 'Door' : 'Light')
    const lists = [
      { url: '/events', reader: panel.sessionKey, wanted: () => true },
      { url: `/clients/${sensor.id}/events`, reader: panel.sessionKey, wanted: (event: Posted) => event.by === sensor.id },
      { url: `/clients/${panel.id}/subscribedevents`, reader: panel.sessionKey, wanted: (event: Posted) => event.name === 'Light' }
    ]
    interface Posted { id: number, name: string, by: number }
    const posted: Posted[] = []
    const postMix = async (by: { id: number, sessionKey: string }, count: number) => {
      for (const event of await post(app, by.sessionKey, mix(count))) posted.push({ ...event, by: by.id })
    }
    await postMix(sensor, 3)
    await postMix(other, 1)
    for (const list of lists) {
      t.test(list.url, async (t) => {
        const pages = await pollLikeTheClient(t, app, list.url, list.reader, async (round) => {
          // after the first poll (the newest event of the list) several times the cap arrive
          if (round === 1) {
            await postMix(sensor, 4 * CAP)
            await postMix(other, CAP)
          }
          // and more between the next polls
          if (round >= 2 && round <= 4) {
            await postMix(sensor, CAP + 2)
            await postMix(other, 2)
          }
        })
        const [first, ...rest] = pages
        const wanted = posted.filter(list.wanted).map((event) => event.id)
        t.equal(first!.length, 1)
        const from = wanted.indexOf(first![0]!)
        t.ok(from >= 0, 'the first poll finds an event of the list')
        for (const page of rest) {
          t.ok(page.length <= CAP, `a page holds at most ${CAP} events: ${page.join(', ')}`)
          t.same(page, [...page].sort((a, b) => b - a), 'newest first within the page')
        }
        t.ok(rest.some((page) => page.length === CAP), 'pages were cut at the cap')
        const collected = pages.flatMap((page) => [...page].reverse())
        t.same(collected, wanted.slice(from), 'every event after the first poll\'s, each once, in order')
        t.ok(collected.length > 6 * CAP, `more events than the cap: ${collected.length}`)
      })
    }
  })

  t.test('a list without limit holds at most maxPageSize items; a larger limit is a 400 naming the maximum', async (t) => {
    const { app, session, repos } = await build(t, { maxPageSize: CAP }, { backend })
    const admin = await session('admin', { device: 'Admin', subscribe: { Light: {} } })
    for (let i = 0; i < 8; i++) await session('read', { device: `Reader ${i}` })
    const eventIds = idsOf(await post(app, admin.sessionKey, Array.from({ length: 12 }, () => 'Light')))
    const clientIds = (await repos.clients.listActive(0, {})).map((client) => client.id).sort((a, b) => a - b)
    const keyIds = (await repos.apikeys.list({})).map((key) => key.id).sort((a, b) => a - b)
    t.ok(clientIds.length > CAP + 2 && keyIds.length > CAP + 2, 'more clients and keys than the cap')
    const lists: Array<[string, number[]]> = [
      ['/events', eventIds],
      [`/clients/${admin.id}/events`, eventIds],
      [`/clients/${admin.id}/subscribedevents`, eventIds],
      ['/clients', clientIds],
      ['/apikeys', keyIds]
    ]
    for (const [url, ids] of lists) {
      const newest = [...ids].reverse()
      t.same(await listIds(t, app, url, admin.sessionKey), newest.slice(0, CAP), `${url}: the newest ${CAP}`)
      t.same(await listIds(t, app, `${url}?offset=2`, admin.sessionKey), newest.slice(2, 2 + CAP), `${url}: the newest ${CAP} after the offset`)
      t.same(await listIds(t, app, `${url}?limit=${CAP}`, admin.sessionKey), newest.slice(0, CAP), `${url}: limit=${CAP} is allowed`)
      t.same(await listIds(t, app, `${url}?after=${ids[0]}`, admin.sessionKey), ids.slice(1, 1 + CAP).reverse(), `${url}: after=, the ${CAP} right after it`)
      t.same(await listIds(t, app, `${url}?after=${ids[0]}&limit=2`, admin.sessionKey), newest.slice(0, 2), `${url}: after= with a limit, the newest`)
      t.same(await listIds(t, app, `${url}?after=${ids.at(-4)}`, admin.sessionKey), newest.slice(0, 3), `${url}: not cut, nothing changes`)
      for (const limit of [CAP + 1, 1e9]) {
        const res = await app.inject({ url: `${url}?limit=${limit}`, headers: bearer(admin.sessionKey) })
        t.equal(res.statusCode, 400, `${url}?limit=${limit}`)
        t.same(res.json(), { status: 400, message: `querystring/limit must be <= ${CAP}` }, 'the message names the parameter and the maximum')
      }
    }
  })

  t.test('long polls answer from the same capped list: the events right after the cursor', async (t) => {
    const { app, session } = await build(t, { maxPageSize: CAP }, { backend })
    const sensor = await session('write', { device: 'Sensor' })
    const panel = await session('read', { device: 'Panel', subscribe: { Light: {} } })
    const [cursor] = idsOf(await post(app, sensor.sessionKey, ['Light']))
    const urls = ['/events', `/clients/${sensor.id}/events`, `/clients/${panel.id}/subscribedevents`]
    const waiting = urls.map((url) => listIds(t, app, `${url}?after=${cursor}&wait=10`, panel.sessionKey))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const ids = idsOf(await post(app, sensor.sessionKey, Array.from({ length: 2 * CAP }, () => 'Light')))
    for (const [i, page] of (await Promise.all(waiting)).entries()) {
      // the poll wakes at the first event: it may answer before the others are committed
      t.ok(page.length >= 1 && page.length <= CAP, `${urls[i]}: a page of at most ${CAP}`)
      t.same(page, ids.slice(0, page.length).reverse(), `${urls[i]}: the oldest after the cursor, newest first`)
    }
    for (const url of urls) {
      t.same(await listIds(t, app, `${url}?after=${cursor}&wait=10`, panel.sessionKey), ids.slice(0, CAP).reverse(), `${url}: more than the cap waiting: answered at once, from the cursor`)
    }
  })

  t.test('the default cap is 1,000: a list of more events holds 1,000, and limit=1e9 is a 400', async (t) => {
    const { app, session, repos, config } = await build(t, {}, { backend })
    t.equal(config.maxPageSize, 1000)
    const writer = await session('write', { device: 'Sensor' })
    const created = await Promise.all(Array.from({ length: 1234 }, (_, i) =>
      repos.events.create({ clientId: writer.id, device: 'Sensor', name: 'Light', location: null, action: null, value: String(i) })))
    const ids = created.map((event) => event.id)
    const newest = [...ids].reverse()
    // stored through another handle, as by another instance: seen once that instance's commits
    // are heard (MariaDB: at its next look, within pollInterval)
    const until = Date.now() + 1000
    while ((await listIds(t, app, '/events?limit=1', writer.sessionKey))[0] !== newest[0] && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
    t.same(await listIds(t, app, '/events', writer.sessionKey), newest.slice(0, 1000), 'the newest 1,000')
    t.same(await listIds(t, app, `/events?after=${ids[99]}`, writer.sessionKey), ids.slice(100, 1100).reverse(), 'the 1,000 right after the cursor')
    t.same(await listIds(t, app, `/events?after=${ids[299]}`, writer.sessionKey), newest.slice(0, 934), 'fewer than 1,000 after it: all of them')
    t.equal((await listIds(t, app, '/events?limit=1000', writer.sessionKey)).length, 1000)
    for (const limit of ['1001', '1e9']) {
      const res = await app.inject({ url: `/events?limit=${limit}`, headers: bearer(writer.sessionKey) })
      t.equal(res.statusCode, 400, `limit=${limit}`)
      t.same(res.json(), { status: 400, message: 'querystring/limit must be <= 1000' })
    }
  })
})
