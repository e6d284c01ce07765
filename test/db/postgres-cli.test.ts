// cred-gen and cred-server as real processes (dist/, run `npm run build` first) on PostgreSQL:
// keys made by cred-gen, two servers sharing one database, and a server whose database is down.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { postgresUnavailable, testDatabase, testPostgres } from '../helper.js'
import { oneLine, run, sandbox, startServer, type Sandbox } from '../process-helper.js'

t.jobs = 2

/** A credrc (nested layout) in the sandbox for a PostgreSQL database; returns its path. */
function credrc (box: Sandbox, database: string, port: number = testPostgres.port): string {
  const file = join(box.root, 'credrc-postgres.yaml')
  writeFileSync(file, [
    'port: 0',
    "host: '127.0.0.1'",
    'database:',
    '  type: postgresql',
    `  host: '${testPostgres.host}'`,
    `  port: ${port}`,
    `  user: '${testPostgres.user}'`,
    "  password: ''",
    `  database: '${database}'`,
    ''
  ].join('\n'))
  return file
}

async function call (origin: string, path: string, init: { method?: string, sessionKey?: string, body?: unknown } = {}) {
  const res = await fetch(`${origin}${path}`, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.sessionKey === undefined ? {} : { authorization: `Bearer ${init.sessionKey}` }),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' })
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
  })
  return { status: res.status, body: await res.json() as any }
}

async function newKey (t: Test, box: Sandbox, config: string, permission: 'admin' | 'write' | 'read'): Promise<{ id: number, apikey: string }> {
  const res = await run(t, 'cred-gen', [`--${permission}`, '--json', '--config', config], box)
  t.equal(res.code, 0, `cred-gen --${permission}: ${res.stderr}`)
  return JSON.parse(res.stdout)
}

if (postgresUnavailable !== null) {
  t.plan(0, postgresUnavailable)
} else {
  t.test('cred-gen makes and lists keys in PostgreSQL; two cred-servers on that database serve them alike', async (t) => {
    const box = sandbox(t)
    const { database } = await testDatabase(t, 'postgresql')
    const config = credrc(box, database)

    const admin = await newKey(t, box, config, 'admin')
    const writer = await newKey(t, box, config, 'write')
    const list = await run(t, 'cred-gen', ['--list', '--json', '--config', config], box)
    t.equal(list.code, 0, list.stderr)
    t.match(JSON.parse(list.stdout), [{ id: writer.id, permission: 'write' }, { id: admin.id, permission: 'admin' }])

    const [one, two] = await Promise.all([startServer(t, box, ['--config', config]), startServer(t, box, ['--config', config])])
    t.not(one.port, two.port, 'two servers, two ports')

    const login = await call(one.origin, '/auth', { method: 'POST', body: { apikey: writer.apikey, device: 'Switch' } })
    t.equal(login.status, 201, 'the cred-gen key works on server one')
    const onTwo = await call(two.origin, '/auth', { method: 'POST', body: { apikey: writer.apikey } })
    t.equal(onTwo.status, 201, '... and on server two')
    const me = await call(two.origin, '/clients/me', { sessionKey: login.body.sessionKey })
    t.equal(me.status, 200, 'a session from server one works on server two')
    t.equal(me.body.client.id, login.body.id)

    const posted = await call(one.origin, '/events', { method: 'POST', sessionKey: login.body.sessionKey, body: { event: { name: 'Light', value: 'On' } } })
    t.equal(posted.status, 201)
    const listed = await call(two.origin, '/events?full=true', { sessionKey: onTwo.body.sessionKey })
    t.match(listed.body.events, [{ id: posted.body.event.id, name: 'Light', value: 'On', device: 'Switch' }], 'server two lists the event posted to one')
    const next = await call(two.origin, '/events', { method: 'POST', sessionKey: onTwo.body.sessionKey, body: { event: { name: 'Door' } } })
    t.ok(next.body.event.id > posted.body.event.id, 'one id sequence for both servers')
  })

  t.test('with PostgreSQL unreachable, cred-server and cred-gen exit 1 with one line naming host, port and database', async (t) => {
    const box = sandbox(t)
    const config = credrc(box, 'cred_unreachable', 1)
    for (const [name, args] of [['cred-server', []], ['cred-gen', ['--admin']]] as const) {
      const res = await run(t, name, [...args, '--config', config], box)
      t.equal(res.code, 1, `${name} exit code`)
      oneLine(t, res.stderr, `${testPostgres.host}:1`, 'cred_unreachable')
    }
  })
}
