import { renameSync } from 'node:fs'
import t from 'tap'
import { backends, build, testDatabase, testPostgres } from '../../helper.js'
import { tcpProxy } from '../../db/tcp-proxy.js'

t.test('GET /health/live and /health/ready need no session and answer 200 when all is well', async (t) => {
  const { app } = await build(t)
  for (const url of ['/health/live', '/health/ready']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.same(res.json(), { status: 200, message: 'OK' })
  }
})

t.test('SQLite: ready is 503 while the database file is gone, and 200 again when it is back', async (t) => {
  const { app, config } = await build(t)
  const file = config.database.database
  renameSync(file, `${file}.away`)
  const down = await app.inject({ url: '/health/ready' })
  t.equal(down.statusCode, 503)
  t.same(down.json(), { status: 503, message: 'Not ready: the SQLite database is unavailable' })
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200, 'still live')
  renameSync(`${file}.away`, file)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
})

t.test('PostgreSQL: ready is 503 while the database is unreachable, and 200 again when it returns', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const proxy = await tcpProxy(t, testPostgres)
  const database = await testDatabase(t, 'postgresql')
  const { app } = await build(t, {}, { backend: 'postgresql', database: { ...database, port: proxy.port } })
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
  await proxy.stop()
  const down = await app.inject({ url: '/health/ready' })
  t.equal(down.statusCode, 503)
  t.match(down.json(), { status: 503, message: /^Not ready: the PostgreSQL (database is unavailable|event listener is not connected)$/ })
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200, 'still live')
  await proxy.start()
  let ready = await app.inject({ url: '/health/ready' })
  for (let i = 0; i < 50 && ready.statusCode !== 200; i++) {
    // the event listener reconnects on its own, a moment after the database is back
    await new Promise((resolve) => setTimeout(resolve, 100))
    ready = await app.inject({ url: '/health/ready' })
  }
  t.equal(ready.statusCode, 200, 'ready again, by itself')
})
