// The processes harness of the benchmarks and the CLI tests (scripts/bench/harness.ts): a quiet
// cred-server found by its listening socket, a failed start, clean-up on Ctrl-C. Runs the built
// bins (dist/: run `npm run build` first).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import * as harness from '../../../scripts/bench/harness.js'

t.teardown(() => harness.cleanUp())

const sqlite = (dir: string) => ({ type: 'sqlite3' as const, database: join(dir, 'cred.db') })

t.test('a cred-server at --log-level warn announces nothing: it is found by its listening socket', async (t) => {
  const dir = harness.tempDir()
  const config = harness.writeConfig(dir, 'cred', sqlite(dir))
  const server = await harness.startServer({ args: ['--config', config, '--log-level', 'warn'], gc: true })
  t.teardown(() => server.stop())
  t.equal(server.protocol, 'http')
  t.equal(server.origin, `http://127.0.0.1:${server.port}`)
  t.notOk(server.logs().some((line) => line.level < 40), 'no info lines to find its port in')
  const res = await fetch(`${server.origin}/health/ready`)
  t.equal(res.status, 200, 'and it answers there')
  await res.text()
  t.equal(await server.collectGarbage(), true, 'a full GC on request (started with gc)')
  t.same(server.warnings(), [], 'a fresh database\'s missing-key warning is not a problem')
})

t.test('a busy server\'s info lines are not kept with keepLogs: false, its warnings are', async (t) => {
  const dir = harness.tempDir()
  const config = harness.writeConfig(dir, 'cred', sqlite(dir))
  const server = await harness.startServer({ args: ['--config', config], keepLogs: false })
  t.teardown(() => server.stop())
  for (let i = 0; i < 3; i++) await (await fetch(`${server.origin}/events`)).text()
  t.ok(server.logs().length > 0 && server.logs().every((line) => line.level >= 40), 'only warnings and above')
  t.ok(server.warnings().every((line) => !line.msg.startsWith('no API keys exist yet')))
  t.equal(await server.collectGarbage(), false, 'no GC without gc: SIGUSR2 is not sent')
  t.equal(server.child.exitCode, null, 'and the server still runs')
})

t.test('a cred-server that exits before serving: the start fails with its output', async (t) => {
  const dir = harness.tempDir()
  const config = harness.writeConfig(dir, 'cred', sqlite(dir), { colour: 'blue' })
  await t.rejects(harness.startServer({ args: ['--config', config, '--log-level', 'warn'] }), /exited \(code 1, signal null\) before serving\n(.|\n)*colour/)
})

t.test('listeningPort: the port a process listens on, read from /proc', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  t.equal(harness.listeningPort(process.pid), (server.address() as { port: number }).port, 'this process, on its port')
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'])
  t.teardown(() => { other.kill() })
  await new Promise((resolve) => other.on('spawn', resolve))
  t.equal(harness.listeningPort(other.pid!), null, 'a live process that listens on nothing')
  other.kill()
  await new Promise((resolve) => other.on('exit', resolve))
  t.equal(harness.listeningPort(other.pid!), null, 'a process that has exited')
})

t.test('databaseUrl: a database config as a URL, its user and password encoded', async (t) => {
  t.equal(harness.databaseUrl({ type: 'postgresql', host: 'db.example', port: 6543, user: 'bench@lab', password: 'p/w', database: 'cred_bench_1' }),
    'postgres://bench%40lab:p%2Fw@db.example:6543/cred_bench_1')
  t.equal(harness.databaseUrl({ type: 'mariadb', user: 'root', database: 'cred_bench_2' }), 'mysql://root@127.0.0.1:3306/cred_bench_2', 'MariaDB, its default host and port')
  t.equal(harness.databaseUrl({ type: 'sqlite3', database: '/tmp/cred.db' }), '/tmp/cred.db', 'a SQLite file: its path')
})

t.test('on SIGINT a benchmark stops its servers, removes its files and exits with 130', async (t) => {
  // the built harness in a benchmark's own process: one cred-server, its temp dir, then waiting for a signal
  const file = fileURLToPath(new URL('../../../dist/scripts/bench/harness.js', import.meta.url))
  const script = `
    const harness = await import(${JSON.stringify(file)})
    harness.cleanUpOnSignals()
    const dir = harness.tempDir()
    const config = harness.writeConfig(dir, 'cred', { type: 'sqlite3', database: dir + '/cred.db' })
    const server = await harness.startServer({ args: ['--config', config, '--log-level', 'warn'] })
    process.stdout.write(JSON.stringify({ pid: server.pid, dir }) + '\\n')
    setInterval(() => {}, 1000)
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const started = await new Promise<{ pid: number, dir: string }>((resolve, reject) => {
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!))
    })
    child.once('exit', (code) => reject(new Error(`the benchmark exited (${code}) before starting its server: ${stderr}`)))
  })
  t.ok(existsSync(started.dir), 'its temp dir exists while it runs')
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGINT')
  t.equal(await exited, 130, 'exit code 130')
  t.match(stderr, /SIGINT: cleaning up/)
  t.notOk(existsSync(started.dir), 'the temp dir is removed')
  t.throws(() => process.kill(started.pid, 0), { code: 'ESRCH' }, 'the cred-server is stopped')
})
