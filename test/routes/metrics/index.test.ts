import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import parsePrometheusTextFormat, { type HistogramSample, type MetricFamily, type Sample } from 'parse-prometheus-text-format'
import t, { type Test } from 'tap'
import cred from '../../../app.js'
import { tcpProxy } from '../../db/tcp-proxy.js'
import { backends, bearer, build, forEachBackend, tempDir, testDatabase, testMariadb, testPostgres, type TestApp } from '../../helper.js'
import { openStream } from '../../sse-client.js'

/** GET /metrics (at `root`), checked to be Prometheus text, and parsed by a Prometheus text parser. */
async function scrape (t: Test, app: FastifyInstance, { root = '', headers = {} }: { root?: string, headers?: Record<string, string> } = {}) {
  const res = await app.inject({ url: `${root}/metrics`, headers })
  t.equal(res.statusCode, 200, 'GET /metrics is 200')
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  return metricsOf(res.body)
}

function metricsOf (text: string) {
  const families = new Map<string, MetricFamily>(parsePrometheusTextFormat(text).map((family) => [family.name, family]))
  const samples = (name: string, labels: Record<string, string>) => {
    const family = families.get(name)
    if (family === undefined) throw new Error(`no metric ${name}`)
    return family.metrics.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value))
  }
  return {
    text,
    families,
    /** the value of a counter or gauge sample (0 when no sample has these labels) */
    value (name: string, labels: Record<string, string> = {}): number {
      const [sample] = samples(name, labels) as Sample[]
      return sample === undefined ? 0 : Number(sample.value)
    },
    /** observations of a histogram without labels */
    count (name: string): number {
      const [sample] = samples(name, {}) as HistogramSample[]
      return Number(sample?.count ?? 0)
    },
    /**
     * The `_count` line of a histogram with labels, as prom-client writes it. (The parser
     * merges the series of a histogram with labels into one: its open issue #13.)
     */
    countLine: (name: string, labels: string, count: number) => `\n${name}_count{${labels}} ${count}\n`,
    type: (name: string) => families.get(name)?.type
  }
}

const postEvent = async (app: FastifyInstance, sessionKey: string, name: string, root = '') => {
  const res = await app.inject({ method: 'POST', url: `${root}/events`, headers: bearer(sessionKey), payload: { event: { name } } })
  if (res.statusCode !== 201) throw new Error(`post failed: ${res.statusCode} ${res.body}`)
  return res.json().event.id as number
}

/** POST /auth with a key made directly in the database (so only this request touches /auth). */
async function login (test: TestApp, permission: 'read' | 'write' = 'write', body: Record<string, unknown> = {}) {
  const res = await test.app.inject({ method: 'POST', url: '/auth', payload: { apikey: await test.key(permission), ...body } })
  if (res.statusCode !== 201) throw new Error(`auth failed: ${res.statusCode} ${res.body}`)
  return res.json() as { id: number, sessionKey: string }
}

forEachBackend(t, async (t, backend) => {
  t.test('after known traffic, the counters match it exactly', async (t) => {
    const test = await build(t, {}, { backend })
    const { app } = test
    const writer = await login(test)
    for (const apikey of ['wrong', 'also wrong']) {
      t.equal((await app.inject({ method: 'POST', url: '/auth', payload: { apikey } })).statusCode, 401)
    }
    const ids = [await postEvent(app, writer.sessionKey, 'Light'), await postEvent(app, writer.sessionKey, 'Door'), await postEvent(app, writer.sessionKey, 'Light')]
    t.equal((await app.inject({ url: `/events/${ids[0]}`, headers: bearer(writer.sessionKey) })).statusCode, 200)
    t.equal((await app.inject({ url: '/events/999999', headers: bearer(writer.sessionKey) })).statusCode, 404)
    t.equal((await app.inject({ url: '/no/such/thing' })).statusCode, 404)

    const m = await scrape(t, app)
    t.equal(m.type('cred_events_posted_total'), 'COUNTER')
    t.equal(m.value('cred_events_posted_total'), 3, 'events posted')
    t.equal(m.value('cred_auth_attempts_total', { outcome: 'success' }), 1, 'auth: 1 success')
    t.equal(m.value('cred_auth_attempts_total', { outcome: 'invalid_key' }), 2, 'auth: 2 invalid keys')
    t.equal(m.value('cred_auth_attempts_total', { outcome: 'rate_limited' }), 0, 'auth: none rate limited (exposed at 0)')
    t.ok(m.families.get('cred_auth_attempts_total')!.metrics.some((sample) => sample.labels?.outcome === 'rate_limited'))

    const requests = (method: string, route: string, status: string) => m.value('cred_http_requests_total', { method, route, status })
    t.equal(requests('POST', '/auth', '201'), 1)
    t.equal(requests('POST', '/auth', '401'), 2)
    t.equal(requests('POST', '/events', '201'), 3)
    t.equal(requests('GET', '/events/:id', '200'), 1, 'by route template, not by URL')
    t.equal(requests('GET', '/events/:id', '404'), 1)
    t.equal(requests('GET', 'unmatched', '404'), 1, 'a URL no route matches')
    t.equal(m.families.get('cred_http_requests_total')!.metrics.reduce((sum, sample) => sum + Number((sample as Sample).value), 0), 9,
      'every request before the scrape, and nothing else')
    t.equal(m.type('cred_http_request_duration_seconds'), 'HISTOGRAM')
    t.ok(m.text.includes(m.countLine('cred_http_request_duration_seconds', 'method="POST",route="/events"', 3)), 'latency: one observation per request')
    t.ok(m.text.includes(m.countLine('cred_http_request_duration_seconds', 'method="POST",route="/auth"', 3)))

    t.equal(m.value('cred_clients_active'), 1, 'active clients')
    t.equal(m.value('cred_streams_open'), 0)
    t.equal(m.value('cred_long_polls_waiting'), 0)
    t.equal(m.type('cred_db_query_duration_seconds'), 'HISTOGRAM')
    t.ok(m.text.includes(m.countLine('cred_db_query_duration_seconds', 'query="events.create"', 3)), 'one events.create call per event')
    t.ok(m.text.includes(m.countLine('cred_db_query_duration_seconds', 'query="clients.create"', 1)))
    t.ok(m.text.includes(m.countLine('cred_db_query_duration_seconds', 'query="apikeys.findByKey"', 3)), 'one key lookup per /auth')
    t.equal(m.value('cred_db_calls_in_flight'), 0)
    t.equal(m.value('cred_db_pool_size'), backend === 'sqlite' ? 1 : 10)

    for (const name of ['cred_process_resident_memory_bytes', 'cred_process_cpu_seconds_total', 'cred_nodejs_eventloop_lag_seconds', 'cred_nodejs_heap_size_used_bytes']) {
      t.ok(m.families.has(name), `process metric ${name}`)
    }
    t.equal(m.type('cred_nodejs_gc_duration_seconds'), 'HISTOGRAM', 'GC durations')
    t.ok(m.value('cred_process_resident_memory_bytes') > 0)
    for (const name of m.families.keys()) t.match(name, /^cred_/, `${name} is prefixed cred_`)

    const again = await scrape(t, app)
    t.equal(again.value('cred_http_requests_total', { method: 'GET', route: '/metrics', status: '200' }), 1, 'the scrape itself is counted')
    t.equal(again.value('cred_events_posted_total'), 3)
  })

  t.test('open streams, waiting long polls and the delivery lag of pushed events', async (t) => {
    const test = await build(t, {}, { backend })
    const { app } = test
    const base = await app.listen({ port: 0, host: '127.0.0.1' })
    const writer = await login(test)
    const reader = await login(test, 'read', { subscribe: { Light: {} } })
    const all = await openStream(`${base}/events/stream`, bearer(reader.sessionKey))
    t.teardown(all.close)
    const subscribed = await openStream(`${base}/clients/${reader.id}/subscribedevents/stream`, bearer(reader.sessionKey))
    t.teardown(subscribed.close)
    const latest = await postEvent(app, writer.sessionKey, 'Door')
    await all.received(1)

    const held = app.inject({ url: `/events?after=${latest}&wait=10`, headers: bearer(reader.sessionKey) })
    let m = await scrape(t, app)
    for (let i = 0; i < 100 && m.value('cred_long_polls_waiting') === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      m = await scrape(t, app)
    }
    t.equal(m.value('cred_streams_open'), 2, 'two streams open')
    t.equal(m.value('cred_long_polls_waiting'), 1, 'one long poll waiting')
    t.equal(m.count('cred_delivery_lag_seconds'), 1, 'the Door event was pushed on one stream')

    await postEvent(app, writer.sessionKey, 'Light')
    t.equal((await held).json().events.length, 1, 'the long poll got the event')
    await all.received(2)
    await subscribed.received(1)
    m = await scrape(t, app)
    t.equal(m.value('cred_long_polls_waiting'), 0)
    t.equal(m.count('cred_delivery_lag_seconds'), 3, 'one observation per event written on a stream')
    t.equal(m.type('cred_delivery_lag_seconds'), 'HISTOGRAM')

    all.close()
    subscribed.close()
    for (let i = 0; i < 100 && m.value('cred_streams_open') > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      m = await scrape(t, app)
    }
    t.equal(m.value('cred_streams_open'), 0, 'closed streams are not counted')
  })
})

t.test('failed /auth attempts past authRateLimit count as rate_limited', async (t) => {
  const test = await build(t, { authRateLimit: 2 })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) statuses.push((await test.app.inject({ method: 'POST', url: '/auth', payload: { apikey: `wrong-${i}` } })).statusCode)
  t.same(statuses, [401, 401, 429, 429])
  const m = await scrape(t, test.app)
  t.equal(m.value('cred_auth_attempts_total', { outcome: 'invalid_key' }), 2)
  t.equal(m.value('cred_auth_attempts_total', { outcome: 'rate_limited' }), 2)
  t.equal(m.value('cred_auth_attempts_total', { outcome: 'success' }), 0)
})

t.test('metricsToken: /metrics needs Authorization: Bearer <token>, else 401 in the envelope', async (t) => {
  const { app } = await build(t, { metricsToken: 's3cret-token' })
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer s3cret-token-and-more' }, { authorization: 's3cret-token' }]) {
    const res = await app.inject({ url: '/metrics', headers })
    t.equal(res.statusCode, 401, `refused with ${JSON.stringify(headers)}`)
    t.same(res.json(), { status: 401, message: 'Not Authenticated: send Authorization: Bearer <metricsToken>' })
  }
  const m = await scrape(t, app, { headers: { authorization: 'Bearer s3cret-token' } })
  t.equal(m.value('cred_http_requests_total', { method: 'GET', route: '/metrics', status: '401' }), 4, 'refused scrapes are counted too')

  const spec = (await app.inject({ url: '/documentation/json' })).json()
  t.same(spec.paths['/metrics'].get.security, [{ metricsToken: [] }], 'documented as protected')
  t.same(Object.keys(spec.paths['/metrics'].get.responses).sort(), ['200', '401'])
  t.ok(spec.components.securitySchemes.metricsToken)
})

t.test('embedded in a host app, /metrics is off unless the host asks for it', async (t) => {
  const database = await testDatabase(t, 'sqlite')
  const host = async (config: Record<string, unknown> | undefined) => {
    const app = Fastify({ logger: false })
    app.get('/', async () => ({ hello: 'host' }))
    // as fastify-metrics does: the host's own `metrics` decorator and cred's stay apart
    app.decorate('metrics' as string, { host: true })
    await app.register(cred, { prefix: '/cred', ...(config === undefined ? {} : { config }) })
    await app.ready()
    t.teardown(() => app.close())
    return app
  }
  const off = await host({ database })
  const res = await off.inject({ url: '/cred/metrics' })
  t.equal(res.statusCode, 404, 'not served when not asked for')
  t.same(res.json(), { status: 404, message: 'Not Found' })
  t.notOk((await off.inject({ url: '/cred/documentation/json' })).json().paths['/metrics'], 'nor documented')
  t.equal((await off.inject({ url: '/cred/events' })).statusCode, 401, 'the rest of cred is there')

  const explicitOff = await host({ database, metrics: false })
  t.equal((await explicitOff.inject({ url: '/cred/metrics' })).statusCode, 404)

  const on = await host({ database, metrics: true })
  t.equal((await on.inject({ url: '/' })).statusCode, 200)
  t.equal((await on.inject({ url: '/cred/events' })).statusCode, 401)
  const m = await scrape(t, on, { root: '/cred' })
  t.equal(m.value('cred_http_requests_total', { method: 'GET', route: '/cred/events', status: '401' }), 1, 'cred\'s routes, with the prefix')
  t.equal(m.families.get('cred_http_requests_total')!.metrics.length, 1, 'the host app\'s own routes are not cred\'s to count')
  t.same(on.getDecorator('metrics'), { host: true }, 'the host\'s decorator is untouched')
})

t.test('embedded with no config at all, metrics are off too', async (t) => {
  // the default SQLite file, cred-server.db, is made in the working directory
  const cwd = process.cwd()
  process.chdir(tempDir(t))
  t.teardown(() => process.chdir(cwd))
  const app = Fastify({ logger: false })
  await app.register(cred)
  await app.ready()
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 404)
})

t.test('two instances in one process count separately', async (t) => {
  const first = await build(t)
  const second = await build(t)
  const writer = await login(first)
  await postEvent(first.app, writer.sessionKey, 'Light')
  await postEvent(first.app, writer.sessionKey, 'Light')
  const other = await login(second)
  await postEvent(second.app, other.sessionKey, 'Door')

  const a = await scrape(t, first.app)
  const b = await scrape(t, second.app)
  t.equal(a.value('cred_events_posted_total'), 2)
  t.equal(b.value('cred_events_posted_total'), 1)
  t.equal(a.value('cred_http_requests_total', { method: 'POST', route: '/events', status: '201' }), 2)
  t.equal(b.value('cred_http_requests_total', { method: 'POST', route: '/events', status: '201' }), 1)
  t.ok(a.text.includes(a.countLine('cred_db_query_duration_seconds', 'query="events.create"', 2)))
  t.ok(b.text.includes(b.countLine('cred_db_query_duration_seconds', 'query="events.create"', 1)))
  t.ok(a.families.has('cred_process_resident_memory_bytes') && b.families.has('cred_process_resident_memory_bytes'), 'both have the process metrics')
})

for (const backend of ['postgresql', 'mariadb'] as const) {
  t.test(`with the database away (${backend}), a scrape still answers; active clients is NaN`, { skip: backends.includes(backend) ? false : `needs ${backend}` }, async (t) => {
    const database = await testDatabase(t, backend)
    const proxy = await tcpProxy(t, backend === 'postgresql' ? testPostgres : testMariadb)
    const test = await build(t, {}, { database: { ...database, port: proxy.port } })
    await login(test)
    t.equal((await scrape(t, test.app)).value('cred_clients_active'), 1)
    await proxy.stop()
    const m = await scrape(t, test.app)
    t.ok(Number.isNaN(m.value('cred_clients_active')), 'NaN: unknown')
    t.ok(m.families.has('cred_process_resident_memory_bytes'), 'the other metrics are there')
    await proxy.start()
  })
}

t.test('the Grafana dashboard in docs/ uses only metrics that /metrics serves', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string, targets?: Array<{ expr: string }> }>
  }
  const { app } = await build(t)
  const m = await scrape(t, app)
  const titles = dashboard.panels.map((panel) => panel.title)
  for (const wanted of ['Requests / s', 'Errors (5xx)', 'p99 latency', 'Events / s', 'Open streams', 'Delivery lag']) {
    t.ok(titles.includes(wanted), `a "${wanted}" panel`)
  }
  const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((target) => target.expr)
  t.ok(exprs.length > 10)
  const used = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\bcred_[a-z0-9_]+/g)].map(([name]) => name)))
  for (const name of used) {
    const family = name.replace(/_(bucket|count|sum)$/, '')
    t.ok(m.families.has(name) || (m.type(family) === 'HISTOGRAM' && family !== name), `${name} is served`)
  }
})
