// The benchmarks' harness, built (dist/: run `npm run build` first): starting cred-server on a
// free port when another process takes the chosen one first, and cleaning up on Ctrl-C.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const file = fileURLToPath(new URL('../../dist/scripts/bench/harness.js', import.meta.url))
if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before these tests`)
const harness = await import(file) as typeof import('../../scripts/bench/harness.js')
t.teardown(() => harness.cleanUp())

/** Ports handed out in order, then free ones; each one handed out is recorded. */
function ports (first: number[]) {
  const chosen: number[] = []
  return {
    chosen,
    choosePort: async () => {
      const port = first.shift() ?? await harness.freePort()
      chosen.push(port)
      return port
    }
  }
}

t.test('startOnFreePort tries another port when the chosen one is taken before cred-server binds it', async (t) => {
  // another process's port, with an HTTP server on it that answers like cred-server
  const taken = createServer((req, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"status":401,"message":"Not Authenticated"}'))
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  const takenPort = (taken.address() as { port: number }).port
  const dir = harness.tempDir()
  const { chosen, choosePort } = ports([takenPort])
  const { server, config } = await harness.startOnFreePort('test', dir, 'cred', { type: 'sqlite3', database: join(dir, 'cred.db') }, { choosePort })
  t.teardown(() => server.stop())
  t.equal(chosen.length, 2, 'a second port was chosen')
  t.equal(chosen[0], takenPort)
  t.equal(server.port, chosen[1], 'the server is on the second')
  t.match(config, /cred\.yaml$/)
  const res = await fetch(`${server.url}/health/ready`)
  t.equal(res.status, 200, 'and answers')
  await res.text()
})

t.test('listensOn: whether a process holds the listening socket of a port', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as { port: number }).port
  t.equal(harness.listensOn(process.pid, port), true, 'this process, on its port')
  const gone = spawn(process.execPath, ['-e', ''])
  await new Promise((resolve) => gone.on('exit', resolve))
  t.equal(harness.listensOn(gone.pid!, port), false, 'a process that has exited (the race a cred-server failing with EADDRINUSE makes)')
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'])
  t.teardown(() => { other.kill() })
  await new Promise((resolve) => other.on('spawn', resolve))
  t.equal(harness.listensOn(other.pid!, port), false, 'a live process that does not hold it')
})

t.test('postgresDatabaseConfig: a database on the server of a URL, with its user and password decoded', async (t) => {
  t.same(harness.postgresDatabaseConfig('postgres://bench%40lab:p%2Fw@db.example:6543/postgres', 'cred_bench_1'), {
    type: 'postgresql', host: 'db.example', port: 6543, user: 'bench@lab', password: 'p/w', database: 'cred_bench_1'
  })
  t.same(harness.postgresDatabaseConfig('postgres://postgres@127.0.0.1/postgres', 'cred_bench_2'), {
    type: 'postgresql', host: '127.0.0.1', port: 5432, user: 'postgres', password: '', database: 'cred_bench_2'
  }, 'the default port')
})

t.test('startOnFreePort does not retry other failures', async (t) => {
  const dir = harness.tempDir()
  const { chosen, choosePort } = ports([])
  // a config cred-server refuses
  await t.rejects(harness.startOnFreePort('test', dir, 'cred', { type: 'sqlite3', database: join(dir, 'cred.db') }, { choosePort, settings: { colour: 'blue' } }),
    /exited \(1\) before serving: .*colour/)
  t.equal(chosen.length, 1, 'one port, one attempt')
})

t.test('on SIGINT a benchmark stops its servers, removes its files and exits with 130', async (t) => {
  // a benchmark in its own process: one cred-server, its temp dir, then waiting for a signal
  const script = `
    const harness = await import(${JSON.stringify(file)})
    const { join } = await import('node:path')
    harness.cleanUpOnSignals()
    const dir = harness.tempDir()
    const { server } = await harness.startOnFreePort('signal test', dir, 'cred', { type: 'sqlite3', database: join(dir, 'cred.db') })
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
