// Durability of the SQLite repositories: a write is on disk before the call that made it returns.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { CHANGE_CHECK_MS, openConnection, openSqlite } from '../../db/sqlite/index.js'
import { tempDir } from '../helper.js'

t.test('connections flush every commit (synchronous FULL, not the build\'s WAL default NORMAL)', async (t) => {
  const db = openConnection(join(tempDir(t), 'cred.db'))
  t.teardown(() => { db.close() })
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  t.equal(db.pragma('synchronous', { simple: true }), 2, 'FULL')
  t.equal(db.pragma('foreign_keys', { simple: true }), 1)
  t.equal(db.pragma('busy_timeout', { simple: true }), 5000)
})

// What the pragma is for, seen from outside: the WAL is synced before an event's create()
// returns (what a 201 waits for). strace shows the system calls; without it this part skips,
// saying so, except in CI (CI=true), where it must run (.ci/run installs strace).
const straceMissing = spawnSync('strace', ['-V'], { encoding: 'utf8' }).status !== 0
if (straceMissing && process.env.CI === 'true') throw new Error('strace is missing: in CI the SQLite durability test must run')
t.test('an event is synced to the WAL file before create() resolves', { skip: straceMissing ? 'strace is not installed (apt-get install -y strace)' : false }, async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'cred.db')
  const trace = join(dir, 'trace')
  // the built module (npm test builds first), in a plain node process
  const sqliteModule = fileURLToPath(new URL('../../dist/db/sqlite/index.js', import.meta.url))
  // the child opens the repositories, then marks the moments around one create() with writes
  // to a descriptor strace shows by name
  const script = `
    const { openSqlite } = await import(${JSON.stringify(sqliteModule)})
    const { openSync, writeSync } = await import('node:fs')
    const repos = openSqlite(${JSON.stringify(file)})
    const key = await repos.apikeys.create('write')
    const { id } = await repos.clients.create({ device: 'd', location: null, apikeyId: key.id, subscriptions: [] })
    const mark = openSync('/dev/null', 'w')
    writeSync(mark, 'before')
    await repos.events.create({ clientId: id, device: 'd', name: 'Light', location: null, action: null, value: 'On' })
    writeSync(mark, 'after')
    repos.close()`
  const run = spawnSync('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync,write,pwrite64', '-o', trace, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 })
  t.equal(run.status, 0, run.stderr)
  const lines = readFileSync(trace, 'utf8').split('\n')
  const before = lines.findIndex((line) => line.includes('</dev/null>, "before"'))
  const after = lines.findIndex((line) => line.includes('</dev/null>, "after"'))
  t.ok(before !== -1 && after > before, 'both marks traced')
  const between = lines.slice(before, after)
  t.ok(between.some((line) => /(p)?write(64)?\(\d+<[^>]*cred\.db-wal>/.test(line)), 'the event is written to the WAL')
  t.ok(between.some((line) => /f(data)?sync\(\d+<[^>]*cred\.db-wal>/.test(line)), 'and the WAL is synced before create() returns')
})

t.test('a session lookup on a closed database is a rejected promise, not an exception', async (t) => {
  const repos = openSqlite(join(tempDir(t), 'closed.db'))
  await repos.close()
  // past CHANGE_CHECK_MS, so that the lookup reads data_version first (which fails)
  await new Promise((resolve) => setTimeout(resolve, CHANGE_CHECK_MS + 1))
  let lookup: Promise<unknown> | undefined
  t.doesNotThrow(() => { lookup = repos.clients.findBySession('0'.repeat(64)) })
  await t.rejects(lookup!, /not open/)
})

t.test('the database file and its -wal and -shm files are readable by their owner only', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'private.db')
  const repos = openSqlite(file)
  t.teardown(() => repos.close())
  const key = await repos.apikeys.create('write')
  const { id } = await repos.clients.create({ device: 'd', location: null, apikeyId: key.id, subscriptions: [] })
  await repos.events.create({ clientId: id, device: 'd', name: 'Light', location: null, action: null, value: 'On' })
  for (const name of [file, `${file}-wal`, `${file}-shm`]) {
    t.equal((statSync(name).mode & 0o777).toString(8), '600', name.slice(dir.length + 1))
  }

  const existing = join(dir, 'existing.db')
  writeFileSync(existing, '')
  chmodSync(existing, 0o640)
  const other = openSqlite(existing)
  t.teardown(() => other.close())
  t.equal((statSync(existing).mode & 0o777).toString(8), '640', 'an existing file keeps the permissions its owner gave it')
})

t.test('the database file\'s own folder is created, nothing deeper; a path that cannot be made fails at once', async (t) => {
  const dir = tempDir(t)
  const fresh = openSqlite(join(dir, 'data', 'cred.db'))
  t.teardown(() => fresh.close())
  t.ok(existsSync(join(dir, 'data', 'cred.db')), 'a missing folder whose parent exists is created')

  t.throws(() => openSqlite(join(dir, 'typo', 'deeper', 'cred.db')), {
    name: 'DatabaseUnavailableError',
    message: `cannot open SQLite database ${join(dir, 'typo', 'deeper', 'cred.db')}: neither its folder ${join(dir, 'typo', 'deeper')} nor that folder's parent ${join(dir, 'typo')} exists (cred creates only the file's own folder)`
  })
  t.notOk(existsSync(join(dir, 'typo')), 'a typo makes no tree of folders')

  // Node's recursive mkdir spun for ever on this one, ignoring SIGTERM
  if (existsSync('/proc/self')) {
    const started = Date.now()
    t.throws(() => openSqlite('/proc/nope/cred.db'), { name: 'DatabaseUnavailableError', message: /^cannot open SQLite database \/proc\/nope\/cred\.db: / })
    t.ok(Date.now() - started < 5000, 'at once')
  }
})
