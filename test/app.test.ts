import { existsSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import t from 'tap'
import cred from '../app.js'
import { tickObjectShapeKept } from '../lib/tick-shape.js'
import { bearer, build, capturedLogs, tempDir } from './helper.js'

// first: no other test of this file has registered cred yet
t.test('registering cred leaves the process as it was: no process-wide tricks for the host app', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(cred, { config: { database: { database: join(tempDir(t), 'tick.db') } } })
  await app.ready()
  t.equal(tickObjectShapeKept(), false, 'the nextTick shape is cred-server\'s business (lib/tick-shape.ts), not the plugin\'s')
})

t.test('unknown routes are 404 Not Found in the envelope', async (t) => {
  const { app, session } = await build(t)
  const { sessionKey } = await session('admin')
  for (const [method, url] of [['GET', '/nope'], ['GET', '/events/1/extra'], ['PUT', '/nope']] as const) {
    const res = await app.inject({ method, url, headers: bearer(sessionKey) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.same(res.json(), { status: 404, message: 'Not Found' })
  }
})

t.test('a known path with another method is 405 with Allow, in the envelope', async (t) => {
  const { app, session } = await build(t, {}, { prefix: '/cred' })
  const { sessionKey } = await session('admin')
  const cases: Array<[string, string, string]> = [
    ['PUT', '/cred/events', 'GET, HEAD, POST'],
    ['DELETE', '/cred/events?full=true', 'GET, HEAD, POST'],
    ['PUT', '/cred/auth', 'GET, HEAD, POST, DELETE'],
    ['POST', '/cred/events/17', 'GET, HEAD'],
    ['PATCH', '/cred/apikeys/3', 'GET, HEAD, DELETE']
  ]
  for (const [method, url, allow] of cases) {
    const res = await app.inject({ method: method as 'PUT', url, headers: bearer(sessionKey) })
    t.equal(res.statusCode, 405, `${method} ${url}`)
    t.equal(res.headers.allow, allow)
    t.same(res.json(), { status: 405, message: `Method Not Allowed: ${method} is not answered here; use ${allow}` })
  }
})

t.test('malformed bodies get a 4xx envelope naming the problem', async (t) => {
  const { app, session } = await build(t, { bodyLimit: 2048 })
  const { sessionKey } = await session('write')
  const post = (payload: string, contentType = 'application/json') =>
    app.inject({ method: 'POST', url: '/events', headers: { ...bearer(sessionKey), 'content-type': contentType }, payload })

  const broken = await post('{"event": {"name": "Light"')
  t.equal(broken.statusCode, 400)
  t.match(broken.json(), { status: 400, message: /JSON/ })

  const empty = await post('')
  t.equal(empty.statusCode, 400)
  t.equal(empty.json().status, 400)

  const text = await post('hello', 'text/plain')
  t.equal(text.statusCode, 415)
  t.same(text.json(), { status: 415, message: 'Unsupported content type: text/plain (this route reads application/json)' }, 'names what was sent and what is read')
  const auth = await app.inject({ method: 'POST', url: '/auth', headers: { 'content-type': 'text/csv' }, payload: 'apikey,x' })
  t.same(auth.json(), { status: 415, message: 'Unsupported content type: text/csv (this route reads application/json or application/x-www-form-urlencoded)' })

  const big = await post(JSON.stringify({ event: { name: 'Light', value: 'x'.repeat(3000) } }))
  t.equal(big.statusCode, 413)
  t.same(big.json(), { status: 413, message: 'Request body is too large (limit 2048 bytes)' })

  for (const res of [broken, empty, text, big]) {
    t.notMatch(res.body, /at .*\.(ts|js):\d+/, 'no stack trace')
    t.match(res.headers['content-type'], /application\/json/)
  }
})

t.test('form-encoded bodies are read on POST /auth only: elsewhere they are 415 in the envelope', async (t) => {
  const { app, session, key } = await build(t)
  const { sessionKey } = await session('admin')
  const form = { 'content-type': 'application/x-www-form-urlencoded' }
  const refused = { status: 415, message: 'Unsupported content type: application/x-www-form-urlencoded (this route reads application/json)' }
  const event = await app.inject({ method: 'POST', url: '/events', headers: { ...bearer(sessionKey), ...form }, payload: 'event[name]=Light' })
  t.same([event.statusCode, event.json()], [415, refused], 'POST /events')
  const apikey = await app.inject({ method: 'POST', url: '/apikeys', headers: { ...bearer(sessionKey), ...form }, payload: 'permission=admin' })
  t.same([apikey.statusCode, apikey.json()], [415, refused], 'POST /apikeys')
  const viaCookie = await app.inject({ method: 'POST', url: '/events', cookies: { sessionKey }, headers: form, payload: `sessionKey=${sessionKey}&event[name]=Light` })
  t.same([viaCookie.statusCode, viaCookie.json()], [415, refused], 'whatever the session')
  const signIn = await app.inject({ method: 'POST', url: '/auth', headers: form, payload: `apikey=${await key('read')}&device=Panel` })
  t.equal(signIn.statusCode, 201, 'POST /auth reads them, for the original web UI')
})

t.test('bodies up to 1 MiB are accepted by default, larger are 413', async (t) => {
  const { app, key } = await build(t)
  const apikey = await key('read')
  const padding = 'x'.repeat(1024 * 1024)
  const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, padding } })
  t.equal(res.statusCode, 413)
  t.match(res.json().message, /too large/)
  const ok = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, padding: padding.slice(0, 1000) } })
  t.equal(ok.statusCode, 201)
})

t.test('a database fault is a 500 envelope without details; the server keeps serving', async (t) => {
  const { app, session, config } = await build(t)
  const { sessionKey } = await session('read')
  const raw = new Database(config.database.database)
  raw.exec('DROP TABLE events')
  raw.close()
  const res = await app.inject({ url: '/events', headers: bearer(sessionKey) })
  t.equal(res.statusCode, 500)
  t.same(res.json(), { status: 500, message: 'Internal Server Error' })
  const still = await app.inject({ url: '/clients/me', headers: bearer(sessionKey) })
  t.equal(still.statusCode, 200)
})

t.test('approot: every route lives under it and uris include it', async (t) => {
  const { app, session } = await build(t, {}, { prefix: '/cred' })
  const res = await app.inject({ method: 'POST', url: '/cred/auth', payload: { apikey: 'nope' } })
  t.equal(res.statusCode, 401)
  const { sessionKey } = await session('write')
  const posted = await app.inject({ method: 'POST', url: '/cred/events', headers: { ...bearer(sessionKey), host: 'devices.example:8080' }, payload: { event: { name: 'Light' } } })
  t.equal(posted.json().event.uri, `http://devices.example:8080/cred/events/${posted.json().event.id}`)
  const outside = await app.inject({ url: '/events', headers: bearer(sessionKey) })
  t.equal(outside.statusCode, 404)
  const docs = await app.inject({ url: '/cred/documentation/json' })
  t.equal(docs.statusCode, 200)
})

t.test('embedded in a host app: the host keeps its routes, error handler and decorators', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'embedded.db')
  const host = Fastify({ logger: false })
  host.decorate('hostThing', 'mine')
  host.setErrorHandler((_err, _req, reply) => reply.code(418).send('host error handler'))
  host.setNotFoundHandler((_req, reply) => reply.code(404).send('host not found'))
  host.get('/', async () => ({ host: 'home' }))
  host.post('/echo', async (request) => request.body)
  host.get('/boom', async () => { throw new Error('host failure') })
  await host.register(cred, { prefix: '/cred', config: { database: { database: file } } })
  await host.ready()

  t.same((await host.inject({ url: '/' })).json(), { host: 'home' })
  t.equal((await host.inject({ url: '/boom' })).body, 'host error handler')
  t.equal((await host.inject({ url: '/nowhere' })).body, 'host not found')
  t.equal(host.hasDecorator('repos'), false, 'cred\'s decorators stay inside')
  t.equal(host.hasDecorator('hostThing'), true)

  t.same((await host.inject({ url: '/cred/nowhere' })).json(), { status: 404, message: 'Not Found' })
  t.same((await host.inject({ url: '/cred/events' })).json(), { status: 401, message: 'Not Authenticated' })
  const form = await host.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'a=1' })
  t.equal(form.statusCode, 418, 'cred\'s form parser is not the host\'s')

  const spec = (await host.inject({ url: '/cred/documentation/json' })).json()
  t.ok(spec.paths['/cred/events'], 'cred documents its own routes')
  t.notOk(spec.paths['/'], 'and not the host\'s')

  t.ok(existsSync(`${file}-wal`), 'database open in WAL mode')
  await host.close()
  t.notOk(existsSync(`${file}-wal`), 'the database was closed with the host')
})

t.test('plugin options are validated like credrc', async (t) => {
  const host = Fastify({ logger: false })
  host.register(cred, { config: { port: 'many' } as never })
  await t.rejects(async () => { await host.ready() }, /Invalid configuration in plugin options at key 'port'/)
})

t.test('CORS: no cross-origin access by default', async (t) => {
  const { app, session } = await build(t)
  const { sessionKey } = await session('read')
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/events',
    headers: { origin: 'http://old-web-ui.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' }
  })
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'the preflight allows no origin')
  t.equal(preflight.headers['access-control-allow-credentials'], undefined, 'and offers no credentials')
  const read = await app.inject({ url: '/events', cookies: { sessionKey }, headers: { origin: 'http://old-web-ui.example' } })
  t.equal(read.headers['access-control-allow-origin'], undefined, 'the browser keeps the answer from the page')
  const sameHostOtherPort = await app.inject({ url: '/events', cookies: { sessionKey }, headers: { origin: 'http://localhost:8080' } })
  t.equal(sameHostOtherPort.headers['access-control-allow-origin'], undefined, 'a page on another port of the same host is another origin')
})

t.test('CORS: a request without an Origin header allows no origin and gets no CORS header; OPTIONS without one is 405', async (t) => {
  const { app, session } = await build(t, { cors: ['http://old-web-ui.example'] })
  const { sessionKey } = await session('read')
  const cors = (headers: Record<string, string | string[] | number | undefined>) =>
    Object.keys(headers).filter((name) => name.startsWith('access-control-')).sort()
  const plain = await app.inject({ url: '/events', headers: bearer(sessionKey) })
  t.equal(plain.statusCode, 200)
  t.equal(plain.headers.vary, 'Origin', 'the answer depends on Origin: caches must know')
  t.equal(plain.headers['access-control-allow-origin'], undefined, 'no origin allowed without an Origin')
  const withOrigin = await app.inject({ url: '/events', headers: { ...bearer(sessionKey), origin: 'http://old-web-ui.example' } })
  t.equal(withOrigin.headers.vary, 'Origin')
  t.same(cors(withOrigin.headers), ['access-control-allow-credentials', 'access-control-allow-origin', 'access-control-expose-headers'])
  t.equal(withOrigin.headers['access-control-expose-headers'], 'Retry-After, Idempotent-Replayed', 'a page of a listed origin may read when to retry and whether a post was replayed')
  t.same(cors(plain.headers), [], 'no CORS header at all for a request from no listed origin')
  const options = await app.inject({ method: 'OPTIONS', url: '/events' })
  t.equal(options.statusCode, 405, 'OPTIONS that is no preflight of a listed origin is a method the path does not answer')
  t.equal(options.headers.allow, 'GET, HEAD, POST')
  t.same(cors(options.headers), [])
  t.match(JSON.parse(options.body), { status: 405 }, 'in the envelope')
  const preflight = await app.inject({ method: 'OPTIONS', url: '/events', headers: { origin: 'http://old-web-ui.example', 'access-control-request-method': 'POST' } })
  t.equal(preflight.statusCode, 204, 'a listed origin\'s preflight is answered')
  t.equal(preflight.headers['access-control-allow-methods'], 'GET, POST, DELETE, OPTIONS')
})

t.test('CORS: with a list, exactly those origins, with credentials (written as a browser writes them)', async (t) => {
  const { app } = await build(t, { cors: ['https://UI.example:443', 'http://127.0.0.1:8080'] })
  for (const origin of ['https://ui.example', 'http://127.0.0.1:8080']) {
    const allowed = await app.inject({ url: '/events', headers: { origin } })
    t.equal(allowed.headers['access-control-allow-origin'], origin)
    t.equal(allowed.headers['access-control-allow-credentials'], 'true')
  }
  for (const origin of ['https://evil.example', 'http://ui.example', 'https://ui.example:8443', 'http://127.0.0.1:8081', 'null']) {
    const other = await app.inject({ url: '/events', headers: { origin } })
    t.equal(other.headers['access-control-allow-origin'], undefined, origin)
  }
})

t.test("CORS: '*' is an opt-in that allows any origin and says so at start-up", async (t) => {
  const { logger, lines } = capturedLogs()
  const { app } = await build(t, { cors: '*' }, { server: { logger } })
  const any = await app.inject({ url: '/events', headers: { origin: 'http://anywhere.example' } })
  t.equal(any.headers['access-control-allow-origin'], 'http://anywhere.example')
  t.equal(any.headers['access-control-allow-credentials'], 'true')
  const warning = lines.find((line) => typeof line.msg === 'string' && line.msg.startsWith("cors: '*'"))
  t.equal(warning?.level, 40, 'a warning')
  t.match(warning?.msg, /ANY origin .*session cookie/, 'saying what it allows')

  const quiet = capturedLogs()
  await build(t, { cors: ['https://ui.example'] }, { server: { logger: quiet.logger } })
  t.notOk(quiet.lines.some((line) => String(line.msg).includes('cors')), 'a list is not warned about')
})

t.test('security headers on the documentation pages, not on the API', async (t) => {
  const { app } = await build(t)
  const page = await app.inject({ url: '/documentation' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-security-policy'], /default-src 'self'/)
  t.notMatch(page.headers['content-security-policy'], /upgrade-insecure-requests/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.equal(page.headers['x-frame-options'], 'SAMEORIGIN')
  const api = await app.inject({ url: '/events' })
  t.equal(api.headers['content-security-policy'], undefined)
})
