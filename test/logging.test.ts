import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import cred, { serverLogging } from '../app.js'
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
