// cred-gen as a real process (dist/scripts/cred-gen.js): run `npm run build` first.
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t from 'tap'
import { oneLine, request, run, sandbox, startServer } from '../process-helper.js'
import { openStream } from '../sse-client.js'

// every test has its own sandbox: they may run side by side
t.jobs = 4

const keyPattern = '[A-Za-z0-9_-]{32,}'

function write (file: string, text: string): string {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
  return file
}

t.test('--admin, --write, --read print the new key; --list never shows it', async (t) => {
  const box = sandbox(t)
  const keys: string[] = []
  for (const permission of ['admin', 'write', 'read']) {
    const res = await run(t, 'cred-gen', [`--${permission}`], box)
    t.equal(res.code, 0, res.stderr)
    t.equal(res.stderr, '')
    const match = new RegExp(`^Generated API key with ${permission} permission: (${keyPattern})\\n$`).exec(res.stdout)
    t.ok(match, `the key line: ${res.stdout}`)
    if (match !== null) keys.push(match[1]!)
  }
  t.equal(new Set(keys).size, 3, 'three different keys')
  t.ok(existsSync(join(box.cwd, 'cred-server.db')), 'no config: the default cred-server.db in the working directory')

  const list = await run(t, 'cred-gen', ['--list'], box)
  t.equal(list.code, 0, list.stderr)
  const lines = list.stdout.trimEnd().split('\n')
  t.match(lines[0], /^ID\s+PERMISSION\s+CREATED\s+REVOKED$/)
  t.equal(lines.length, 4, 'a header and one line per key')
  const rows = lines.slice(1).map((line) => line.split(/\s+/))
  t.same(rows.map((row) => [row[0], row[1]]), [['3', 'read'], ['2', 'write'], ['1', 'admin']], 'id and permission, newest first')
  for (const row of rows) t.ok(!Number.isNaN(Date.parse(row[2]!)), `created is a date: ${row[2]}`)
  t.same(rows.map((row) => row[3]), ['-', '-', '-'], 'none revoked')
  for (const key of keys) t.notOk(list.stdout.includes(key), 'the secret is not listed')

  const json = await run(t, 'cred-gen', ['--list', '--json'], box)
  t.equal(json.code, 0, json.stderr)
  const items = JSON.parse(json.stdout) as Array<Record<string, unknown>>
  t.equal(items.length, 3)
  for (const item of items) {
    t.same(Object.keys(item).sort(), ['created', 'id', 'permission', 'revoked'])
    t.equal(item.revoked, null)
    t.equal(new Date(item.created as string).toISOString(), item.created, 'created is an ISO timestamp')
  }
  t.same(items.map((item) => [item.id, item.permission]), [[3, 'read'], [2, 'write'], [1, 'admin']])
  for (const key of keys) t.notOk(json.stdout.includes(key), 'the secret is not listed')
})

t.test('--json prints {"id":…,"apikey":"…","permission":"…"}', async (t) => {
  const box = sandbox(t)
  const res = await run(t, 'cred-gen', ['--write', '--json'], box)
  t.equal(res.code, 0, res.stderr)
  t.match(res.stdout, new RegExp(`^\\{"id":1,"apikey":"${keyPattern}","permission":"write"\\}\\n$`))
  const again = await run(t, 'cred-gen', ['--json', '--read'], box)
  t.match(JSON.parse(again.stdout), { id: 2, permission: 'read', apikey: String })
})

t.test('--list lists every key, however small maxPageSize (which bounds the API\'s lists only)', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), 'maxPageSize: 2\n')
  for (let i = 0; i < 4; i++) t.equal((await run(t, 'cred-gen', ['--read'], box)).code, 0)
  const json = await run(t, 'cred-gen', ['--list', '--json'], box)
  t.equal(json.code, 0, json.stderr)
  t.same((JSON.parse(json.stdout) as Array<{ id: number }>).map((item) => item.id), [4, 3, 2, 1])
})

t.test('--list on an empty database says how to make a key', async (t) => {
  const box = sandbox(t)
  const text = await run(t, 'cred-gen', ['--list'], box)
  t.equal(text.code, 0, text.stderr)
  t.match(text.stdout, /No API keys yet.*cred-gen --admin/)
  const json = await run(t, 'cred-gen', ['--list', '--json'], box)
  t.equal(json.stdout, '[]\n')
})

t.test('usage errors exit 2 with one line and a pointer to --help on stderr, before touching any database', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['no permission flag', [], /choose a permission/],
    ['only --json', ['--json'], /choose a permission/],
    ['two permission flags', ['--admin', '--read'], /only one of/],
    ['three permission flags', ['--admin', '--write', '--read'], /only one of/],
    ['--list with a permission', ['--list', '--write'], /only one of/],
    ['--revoke with a permission', ['--revoke', '1', '--admin'], /only one of/],
    ['--revoke without a number', ['--revoke', 'abc'], /--revoke takes a key id/],
    ['an unknown flag', ['--admin', '--bogus'], /Unknown option '--bogus'/],
    ['a positional argument', ['--admin', 'extra'], /extra/],
    ['--config without a path', ['--admin', '--config'], /--config/]
  ]
  t.jobs = 4
  for (const [name, args, problem] of cases) {
    t.test(name, async (t) => {
      const box = sandbox(t)
      const res = await run(t, 'cred-gen', args, box)
      t.equal(res.code, 2)
      t.equal(res.stdout, '')
      t.match(res.stderr, /^cred-gen: /)
      t.match(res.stderr, problem)
      t.match(res.stderr, /\nSee 'cred-gen --help'\.\n$/, 'then a pointer to --help')
      t.equal(res.stderr.split('\n').length, 3, 'two lines, not the whole help')
      t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'no database created')
    })
  }
})

t.test('--revoke ID revokes a key; --list shows when; the last admin key stays', async (t) => {
  const box = sandbox(t)
  for (const flag of ['--admin', '--write', '--admin']) {
    t.equal((await run(t, 'cred-gen', [flag], box)).code, 0)
  }
  const revoked = await run(t, 'cred-gen', ['--revoke', '2'], box)
  t.equal(revoked.code, 0, revoked.stderr)
  t.match(revoked.stdout, /^Revoked API key 2 \(write permission\) at \d{4}-\d\d-\d\dT[\d:.]+Z\n$/)
  const json = JSON.parse((await run(t, 'cred-gen', ['--revoke', '3', '--json'], box)).stdout)
  t.match(json, { id: 3, permission: 'admin', revoked: /Z$/ })

  const last = await run(t, 'cred-gen', ['--revoke', '1'], box)
  t.equal(last.code, 1)
  t.match(last.stderr, /^cred-gen: key 1 is the last unrevoked admin key/)
  t.equal(last.stderr.trimEnd().split('\n').length, 1, 'one line')
  const missing = await run(t, 'cred-gen', ['--revoke', '99'], box)
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no API key with id 99/)

  const list = (await run(t, 'cred-gen', ['--list'], box)).stdout.trimEnd().split('\n').slice(1).map((line) => line.split(/\s+/))
  t.same(list.map((row) => [row[0], row[3] === '-' ? '-' : 'revoked']), [['3', 'revoked'], ['2', 'revoked'], ['1', '-']])
})

t.test('--revoke ends the key\'s streams and long polls on a server running on the same SQLite file within a second; nothing posted after reaches them', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), "host: '127.0.0.1'\nport: 0\ndatabase:\n  database: 'shared.db'\n")
  const keys: Record<string, { id: number, apikey: string }> = {}
  for (const permission of ['write', 'read']) {
    const made = await run(t, 'cred-gen', [`--${permission}`, '--json'], box)
    t.equal(made.code, 0, made.stderr)
    keys[permission] = JSON.parse(made.stdout) as { id: number, apikey: string }
  }
  const server = await startServer(t, box)
  const auth = async (apikey: string) => (await request(`${server.origin}/auth`, { method: 'POST', body: { apikey } })).json() as { sessionKey: string }
  const writer = await auth(keys.write!.apikey)
  const reader = await auth(keys.read!.apikey)
  const post = async () => (await request(`${server.origin}/events`, { method: 'POST', body: { sessionKey: writer.sessionKey, event: { name: 'Light' } } })).json().event.id as number
  const stream = await openStream(`${server.origin}/events/stream`, { authorization: `Bearer ${reader.sessionKey}` })
  const writerStream = await openStream(`${server.origin}/events/stream`, { authorization: `Bearer ${writer.sessionKey}` })
  t.teardown(() => { stream.close(); writerStream.close() })
  const first = await post()
  t.same((await stream.received(1)).map((m) => Number(m.id)), [first], 'the stream is live')
  const poll = fetch(`${server.origin}/events?after=${first}&wait=30`, { headers: { authorization: `Bearer ${reader.sessionKey}` } })
    .then(async (res) => ({ status: res.status, body: await res.json() as unknown }))
  await new Promise((resolve) => setTimeout(resolve, 200))

  const revoked = await run(t, 'cred-gen', ['--revoke', String(keys.read!.id)], box)
  t.equal(revoked.code, 0, revoked.stderr)
  const oneSecond = new Promise((resolve) => setTimeout(() => resolve(false), 1000))
  const later = await post()
  t.ok(await Promise.race([Promise.all([stream.ended, poll]).then(() => true), oneSecond]), 'the stream closed and the long poll answered within a second')
  t.same(await poll, { status: 401, body: { status: 401, message: 'Not Authenticated' } }, 'the long poll answers 401')
  t.same((await writerStream.received(2)).map((m) => Number(m.id)), [first, later], 'the event was delivered to a valid session')
  t.same(stream.messages.map((m) => Number(m.id)), [first], 'but not to the revoked key\'s')
})

t.test('--help prints the usage and exits 0', async (t) => {
  const box = sandbox(t)
  for (const flag of ['--help', '-h']) {
    const res = await run(t, 'cred-gen', [flag], box)
    t.equal(res.code, 0)
    t.equal(res.stderr, '')
    t.match(res.stdout, /^Usage: cred-gen/)
    t.match(res.stdout, /--list/)
    t.match(res.stdout, /--config PATH/)
  }
  t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'no database created')
  for (const flag of ['--version', '-v']) {
    const res = await run(t, 'cred-gen', [flag], box)
    t.equal(res.code, 0)
    t.match(res.stdout, /^cred-gen \d+\.\d+\.\d+\n$/, `${flag} prints the version`)
  }
})

t.test('a bad config exits 1 with one line naming the file and the key', async (t) => {
  t.jobs = 3
  t.test('wrong type in ./credrc', async (t) => {
    const box = sandbox(t)
    const file = write(join(box.cwd, 'credrc'), "port: 'abc'\n")
    const res = await run(t, 'cred-gen', ['--admin'], box)
    t.equal(res.code, 1)
    t.equal(res.stdout, '')
    oneLine(t, res.stderr, 'cred-gen: ', file, "'port'")
  })
  t.test('broken YAML in ~/.credrc', async (t) => {
    const box = sandbox(t)
    const file = write(join(box.home, '.credrc'), "scheduler: False\ndatabase:\n  database: 'x.db\n")
    const res = await run(t, 'cred-gen', ['--list'], box)
    t.equal(res.code, 1)
    oneLine(t, res.stderr, file, "'database'", 'unreadable YAML')
  })
  t.test('--config names a missing file', async (t) => {
    const box = sandbox(t)
    write(join(box.cwd, 'credrc'), 'port: 5000\n')
    const res = await run(t, 'cred-gen', ['--admin', '--config', 'missing.yaml'], box)
    t.equal(res.code, 1)
    oneLine(t, res.stderr, join(box.cwd, 'missing.yaml'), 'file not found')
    t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'no database created')
  })
})

t.test('--config PATH is used instead of the search', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), "database:\n  database: 'searched.db'\n")
  write(join(box.root, 'elsewhere', 'my.yaml'), `database:\n  database: '${join(box.root, 'given.db')}'\n`)
  const res = await run(t, 'cred-gen', ['--read', '-c', join('..', 'elsewhere', 'my.yaml')], box)
  t.equal(res.code, 0, res.stderr)
  t.ok(existsSync(join(box.root, 'given.db')))
  t.notOk(existsSync(join(box.cwd, 'searched.db')))
})

t.test('the config search, in order, in a real process', async (t) => {
  const box = sandbox(t)
  const dbs = join(box.root, 'dbs')
  mkdirSync(dbs)
  const places: Array<[string, string]> = [
    ['cwd-credrc', join(box.cwd, 'credrc')],
    ['cwd-credrc-yaml', join(box.cwd, 'credrc.yaml')],
    ['cwd-credrc-yml', join(box.cwd, 'credrc.yml')],
    ['home', join(box.home, '.credrc')],
    ['data-home', join(box.dataHome, 'cred-server', 'credrc')],
    ['data-dir-1', join(box.dataDirs[0], 'cred-server', 'credrc')],
    ['data-dir-2', join(box.dataDirs[1], 'cred-server', 'credrc')]
  ]
  for (const [name, file] of places) write(file, `database:\n  database: '${join(dbs, `${name}.db`)}'\n`)
  // the second entry of XDG_DATA_DIRS is never searched
  for (const [name, file] of places.slice(0, -1)) {
    const res = await run(t, 'cred-gen', ['--list', '--json'], box)
    t.equal(res.code, 0, res.stderr)
    t.same(readdirSync(dbs).filter((entry) => entry.endsWith('.db')), [`${name}.db`], `${file} is used`)
    rmSync(file)
    for (const entry of readdirSync(dbs)) rmSync(join(dbs, entry))
  }
  const res = await run(t, 'cred-gen', ['--list', '--json'], box)
  t.equal(res.code, 0, res.stderr)
  t.same(readdirSync(dbs), [], 'data-dir-2 is not searched')
  t.ok(existsSync(join(box.cwd, 'cred-server.db')), 'the defaults: cred-server.db in the working directory')
})

t.test('cred-gen and cred-server find the same credrc: the key authenticates', async (t) => {
  const box = sandbox(t)
  const file = write(join(box.cwd, 'credrc'), "host: '127.0.0.1'\nport: 0\ndatabase:\n  database: 'shared.db'\n")
  const made = await run(t, 'cred-gen', ['--admin', '--json'], box)
  t.equal(made.code, 0, made.stderr)
  const { apikey } = JSON.parse(made.stdout) as { apikey: string }
  t.ok(existsSync(join(box.cwd, 'shared.db')), 'the database the credrc names')
  t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'not the default one')

  const server = await startServer(t, box)
  const messages = server.logs().map((line) => line.msg)
  t.ok(messages.includes(`using config file ${file}`), 'the server logs the file it used')
  t.notOk(messages.some((msg) => msg.includes('cred-gen --admin')), 'no first-key hint: a key exists')

  const auth = await request(`${server.origin}/auth`, { method: 'POST', body: { apikey, device: 'Switch', location: 'Hall' } })
  t.equal(auth.status, 201, auth.body)
  t.match(auth.json(), { status: 201, sessionKey: String })
  const wrong = await request(`${server.origin}/auth`, { method: 'POST', body: { apikey: `${apikey}x` } })
  t.equal(wrong.status, 401, 'a key cred-gen did not make is refused')
})
