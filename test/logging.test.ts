import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import cred, { serverLogging } from '../app.js'
import { SLOW_REQUEST_MS } from '../config/logging.js'
import { openDatabase } from '../db/index.js'
import { resolveConfig } from '../config/resolve.js'
import { bearer, tempDir } from './helper.js'

t.test('logs: a request id on every request line, and never a key, session key or cookie', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line)
        lines.push(JSON.parse(line))
      }
      done()
    }
  })
  const options = serverLogging('trace')
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  const config = resolveConfig({ database: { database: join(tempDir(t), 'log.db') } }, 'test')
  await app.register(cred, { config })
  await app.ready()
  const repos = await openDatabase(config.database)
  t.teardown(async () => { await app.close(); await repos.close() })
  const apikey = (await repos.apikeys.create('admin')).apikey

  const viaQuery = await app.inject({ url: `/auth?apikey=${encodeURIComponent(apikey)}&device=Lamp` })
  t.equal(viaQuery.statusCode, 201)
  const viaBody = await app.inject({ method: 'POST', url: '/auth', payload: { apikey, device: 'Panel' }, headers: { 'x-request-id': 'device-42.req:7' } })
  const { sessionKey } = viaBody.json()
  t.equal(viaBody.headers['x-request-id'], 'device-42.req:7', 'an incoming X-Request-Id is kept and echoed')
  const wrong = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: `${apikey}x` } })
  t.equal(wrong.statusCode, 401)
  await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name: 'Light' } } })
  await app.inject({ method: 'POST', url: '/events', payload: { sessionKey, event: { name: 'Door' } } })
  await app.inject({ url: '/events?sessionKey=' + sessionKey, cookies: { sessionKey } })
  const created = await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(sessionKey), payload: { permission: 'read' } })
  const newKey = created.json().apikey.apikey as string
  const odd = await app.inject({ url: '/health/live', headers: { 'x-request-id': 'bad id\nwith newline' } })
  t.match(odd.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'an unusable X-Request-Id is replaced by a new id')

  t.ok(lines.length > 10, `${lines.length} log lines`)
  for (const secret of [apikey, sessionKey, newKey, encodeURIComponent(apikey)]) {
    t.notOk(raw.some((line) => line.includes(secret)), 'no line holds a key, a session key or a cookie value')
  }
  const requestLines = lines.filter((line) => line.req !== undefined || line.res !== undefined)
  t.ok(requestLines.length >= 16, 'incoming and completed lines for every request')
  t.ok(requestLines.every((line) => typeof line.reqId === 'string' && line.reqId !== ''), 'each carries a request id')
  const mine = lines.filter((line) => line.reqId === 'device-42.req:7')
  t.ok(mine.length >= 3, 'the incoming id is on every line of that request (incoming, authenticated, completed)')
  t.ok(mine.some((line) => line.msg === 'client authenticated'), '... including the app\'s own lines')
  const queryLine = lines.find((line) => typeof (line.req as { url?: string } | undefined)?.url === 'string' && (line.req as { url: string }).url.startsWith('/auth?'))
  t.match((queryLine?.req as { url: string }).url, /^\/auth\?apikey=\[redacted\]&device=Lamp$/, 'the URL is logged with the key redacted')
})

t.test('logs: a secret query parameter is redacted whatever the case or percent-encoding of its name', async (t) => {
  const raw: string[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString().split('\n').filter(Boolean))
      done()
    }
  })
  // at debug: the request lines, which carry the URL
  const options = serverLogging('debug')
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  const config = resolveConfig({ database: { database: join(tempDir(t), 'log.db') } }, 'test')
  await app.register(cred, { config })
  await app.ready()
  const repos = await openDatabase(config.database)
  t.teardown(async () => { await app.close(); await repos.close() })
  const apikey = (await repos.apikeys.create('read')).apikey

  const encoded = await app.inject({ url: `/auth?api%6Bey=${apikey}&device=Lamp` })
  t.equal(encoded.statusCode, 201, 'an encoded name is read as apikey: it authenticates')
  const { sessionKey } = encoded.json()
  const secrets = [apikey, sessionKey as string]
  const urls = [
    `/auth?%61%70%69%6b%65%79=${apikey}`,
    `/auth?APIKEY=${apikey}`,
    `/auth?apikey%5B0%5D=${apikey}`,
    `/auth?device=x&api+key=1&apikey=${apikey}`,
    `/events?session%4Bey=${sessionKey as string}`,
    `/events?SessionKey=${sessionKey as string}&full=true`
  ]
  for (const url of urls) await app.inject({ url })
  for (const secret of secrets) {
    t.notOk(raw.some((line) => line.includes(secret)), 'no line holds the key or the session key')
  }
  const logged = raw.map((line) => JSON.parse(line) as { req?: { url?: string } }).flatMap((line) => line.req?.url ?? [])
  t.ok(logged.includes('/auth?api%6Bey=[redacted]&device=Lamp'), 'the name is logged as sent, the value redacted')
  t.ok(logged.includes('/events?session%4Bey=[redacted]'))
  t.ok(logged.includes('/events?SessionKey=[redacted]&full=true'), 'other parameters are kept')
  t.ok(logged.includes('/auth?device=x&api+key=1&apikey=[redacted]'), 'a name that only looks alike is kept')
})

t.test('request loggers: made only when a line is logged, with the request id on it', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    }
  })
  const options = serverLogging('warn')
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  app.get('/quiet', async (request) => {
    request.log.info('not at warn')
    request.log.debug({ apikey: 'secret' }, 'not at warn either')
    request.log.trace('nor this')
    request.log.silent('never')
    return { level: request.log.level }
  })
  app.get('/loud', async (request) => {
    request.log.warn({ apikey: 'secret' }, 'a warning')
    request.log.info('still not at warn')
    request.log.error('an error')
    request.log.fatal('a fatal one')
    request.log.child({ part: 'inner' }).error('from a child')
    return { level: request.log.level }
  })
  app.get('/verbose', async (request) => {
    request.log.level = 'debug'
    request.log.debug('this request logs at debug')
    return { level: request.log.level, app: app.log.level }
  })
  app.get('/own-level', { logLevel: 'debug' }, async (request) => {
    request.log.info('a route with a level of its own')
    return { level: request.log.level }
  })
  t.teardown(() => app.close())
  let children = 0
  const child = app.log.child
  // (pino's children inherit this from the app's logger: only the app's own calls are counted)
  app.log.child = function (this: typeof app.log, ...args: Parameters<typeof child>) {
    if (this === app.log) children++
    return child.apply(this, args)
  }

  const quiet = await app.inject({ url: '/quiet', headers: { 'x-request-id': 'quiet-1' } })
  t.same(quiet.json(), { level: 'warn' })
  t.same(lines, [], 'nothing logged below the level')
  t.equal(children, 0, 'and no pino child made for the request')

  await app.inject({ url: '/loud', headers: { 'x-request-id': 'loud-1' } })
  t.match(lines, [
    { level: 40, reqId: 'loud-1', msg: 'a warning', apikey: '[redacted]' },
    { level: 50, reqId: 'loud-1', msg: 'an error' },
    { level: 60, reqId: 'loud-1', msg: 'a fatal one' },
    { level: 50, reqId: 'loud-1', part: 'inner', msg: 'from a child' }
  ])
  t.equal(lines.length, 4)
  t.equal(children, 1, 'one child, made for the first line')

  lines.length = 0
  const verbose = await app.inject({ url: '/verbose', headers: { 'x-request-id': 'verbose-1' } })
  t.same(verbose.json(), { level: 'debug', app: 'warn' }, 'a request\'s own level changes that request only')
  t.match(lines, [
    { level: 20, reqId: 'verbose-1', msg: 'this request logs at debug' },
    { level: 20, reqId: 'verbose-1', msg: 'request completed' }
  ])
  t.equal(lines.length, 2)
  await app.inject({ url: '/quiet' })
  t.equal(lines.length, 2, 'the next request is back at warn')

  lines.length = 0
  const own = await app.inject({ url: '/own-level', headers: { 'x-request-id': 'own-1' } })
  t.same(own.json(), { level: 'debug' })
  t.match(lines, [
    { level: 20, reqId: 'own-1', msg: 'incoming request' },
    { level: 30, reqId: 'own-1', msg: 'a route with a level of its own' },
    { level: 20, reqId: 'own-1', msg: 'request completed' }
  ])
})

t.test('request lines: at debug; at info only failed and slow requests (streams and long polls wait on purpose)', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    }
  })
  const options = serverLogging('info')
  const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } })
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  app.get('/fast', async () => ({ ok: true }))
  app.get('/slow', async () => { await pause(SLOW_REQUEST_MS + 50); return { ok: true } })
  app.get('/poll', async () => { await pause(SLOW_REQUEST_MS + 50); return { ok: true } })
  app.get('/fails', async () => { throw new Error('broken') })
  t.teardown(() => app.close())
  const completed = (reqId: string) => lines.filter((line) => line.reqId === reqId && line.msg === 'request completed')

  await app.inject({ url: '/fast', headers: { 'x-request-id': 'fast-1' } })
  t.same(lines, [], 'a fast answer: no line at info')
  await app.inject({ url: '/slow', headers: { 'x-request-id': 'slow-1' } })
  t.match(completed('slow-1'), [{ level: 30, req: { method: 'GET', url: '/slow' }, res: { statusCode: 200 } }], 'a slow one: its line, with the request')
  t.ok((completed('slow-1')[0]?.responseTime as number) >= SLOW_REQUEST_MS, 'and its time')
  await app.inject({ url: '/poll?wait=5', headers: { 'x-request-id': 'poll-1' } })
  t.same(completed('poll-1'), [], 'a long poll waits on purpose: no line')
  await app.inject({ url: '/fails', headers: { 'x-request-id': 'fails-1' } })
  t.match(completed('fails-1'), [{ level: 30, res: { statusCode: 500 } }], 'a failed one: its line')
  t.ok(lines.some((line) => line.reqId === 'fails-1' && line.level === 50), 'beside the error itself')
  t.notOk(lines.some((line) => line.msg === 'incoming request'), 'incoming requests only at debug')
})
