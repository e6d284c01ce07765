// What `npm run bench`'s questions share: cred-servers set up for the workloads, the baseline
// processes, and autocannon runs taken in turns, each server's making a row.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import Database from 'better-sqlite3'
import {
  cpuSeconds, createDatabase, createKey, expectJson, inParallel, postgresAdmin, postgresUrl, progress, rssKb, startServer, stopProcess, tempDir, track, writeConfig,
  type DatabaseConfig
} from './harness.js'

export interface Options {
  connections: number
  /** turns per row: this VM's speed changes for seconds at a time, and shorter turns spread such spells over every server alike */
  turns: number
  /** workload 2's connection counts */
  postConnections: number[]
  duration: number
  warmup: number
  small: number
  big: number
  /** clients listed by workload 4 */
  clients: number
  /** null: no PostgreSQL */
  postgres: string | null
}

/** A server's answers to a workload, measured in turns with the others of its group. */
export interface Row {
  server: string
  workload: string
  connections: number
  /** the servers measured in the same turns */
  group: string[]
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  requests: number
  errors: number
  /** the server process's CPU time (all its threads) per response, in µs */
  serverCpuUsPerRequest: number
  /** req/s over the req/s of another server of the group, by that server's name */
  ratios: Record<string, number>
}

/** What a question found: rows, conclusions, peak RSS by server, problems (any fails the run). */
export interface Report { rows: Row[], notes: string[], problems: string[], peakRssKb: Record<string, number>, [more: string]: unknown }

export const newReport = (): Report => ({ rows: [], notes: [], problems: [], peakRssKb: {} })

/** A fresh database of a kind, on the PostgreSQL server of `options` for 'postgresql'. */
export const freshDatabase = async (kind: string, options: Options): Promise<DatabaseConfig> =>
  kind === 'sqlite' ? { type: 'sqlite3', database: join(tempDir(), 'cred.db') } : await createDatabase(options.postgres!, 'cred_bench_http_')

// ---------------------------------------------------------------------------------------------
// autocannon

/** A request to load, and the process answering it (for its CPU time). */
export interface Target { server: string, url: string, pid: number, method?: 'GET' | 'POST', body?: string, headers?: Record<string, string> }

export interface Run { count: number, seconds: number, latencies: Float64Array, errors: number, cpuSeconds: number }

// autocannon notices that the duration is over only when it samples: by default once a second
const settings = ({ url, method = 'GET', headers, body }: Target, connections: number) => ({ url, method, headers, body, connections, sampleInt: 100 })

/**
 * autocannon for `seconds`, keeping each response's latency (its own percentiles are whole
 * milliseconds); the rate is responses over the run's own wall time. Non-2xx answers are errors.
 */
function cannon (target: Target, seconds: number, connections: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    let latencies = new Float64Array(1 << 16)
    let count = 0
    const started = performance.now()
    const cpuBefore = cpuSeconds(target.pid)
    autocannon({ ...settings(target, connections), duration: seconds }, (err: Error | null, result: autocannon.Result) => {
      if (err !== null && err !== undefined) return reject(err)
      resolve({
        count,
        seconds: (performance.now() - started) / 1000,
        latencies: latencies.subarray(0, count).sort(),
        errors: result.errors + result.non2xx,
        cpuSeconds: cpuSeconds(target.pid) - cpuBefore
      })
    }).on('response', (_client, _status, _bytes, responseTime) => {
      if (count === latencies.length) {
        const grown = new Float64Array(count * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[count++] = responseTime
    })
  })
}

function merged (runs: Run[]): Run {
  const sum = (pick: (run: Run) => number) => runs.reduce((total, run) => total + pick(run), 0)
  const latencies = new Float64Array(sum((run) => run.count))
  runs.reduce((at, run) => { latencies.set(run.latencies, at); return at + run.count }, 0)
  return {
    count: latencies.length,
    seconds: sum((run) => run.seconds),
    latencies: latencies.sort(),
    errors: sum((run) => run.errors),
    cpuSeconds: sum((run) => run.cpuSeconds)
  }
}

/** The `q` quantile of sorted latencies, in ms to two decimals. */
export const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? 0 : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 100) / 100

/** CPU µs per response to one decimal (/proc counts 10 ms ticks: fine over a row's turns). */
export const cpuPerRequest = (run: Run): number => Math.round(run.cpuSeconds / run.count * 1e7) / 10

/**
 * Servers answering the same workload in `turns` turns (each turn in another order), `seconds`
 * in all for a `share` of 1, so that they are compared through the same moments. Each is first
 * warmed up, unmeasured: `warmup` requests, then `warmSeconds`. Records a row per server, with
 * its ratios to those named in `ratiosTo`; returns each server's runs turn by turn.
 */
export async function inTurns (report: Report, workload: string, entries: Array<{ target: Target, share: number }>,
  { seconds, turns, connections, warmup, ratiosTo = [], warmSeconds = 0 }: { seconds: number, turns: number, connections: number, warmup: number, ratiosTo?: string[], warmSeconds?: number }): Promise<Run[][]> {
  const group = entries.map((entry) => entry.target.server)
  progress(`${workload}, ${connections} connections: ${group.join(', ')}, in ${turns} turns`)
  for (const { target } of entries) {
    if (warmup > 0) await autocannon({ ...settings(target, connections), amount: Math.max(warmup, connections) })
    if (warmSeconds > 0) await cannon(target, warmSeconds, connections)
  }
  const runs: Run[][] = entries.map(() => [])
  for (let turn = 0; turn < turns; turn++) {
    for (let i = 0; i < entries.length; i++) {
      const at = (i + turn) % entries.length
      runs[at]!.push(await cannon(entries[at]!.target, seconds * entries[at]!.share / turns, connections))
    }
  }
  const rows = entries.map(({ target }, i): Row => {
    const run = merged(runs[i]!)
    if (run.errors > 0) report.problems.push(`${target.server}, ${workload}: ${run.errors} errors (non-2xx answers or failed connections)`)
    return {
      server: target.server,
      workload,
      connections,
      group,
      requestsPerSecond: Math.round(run.count / run.seconds),
      latencyP50Ms: quantile(run.latencies, 0.5),
      latencyP99Ms: quantile(run.latencies, 0.99),
      requests: run.count,
      errors: run.errors,
      serverCpuUsPerRequest: cpuPerRequest(run),
      ratios: {}
    }
  })
  for (const row of rows) {
    for (const other of rows) {
      if (other !== row && ratiosTo.includes(other.server)) row.ratios[other.server] = Math.round(row.requestsPerSecond / other.requestsPerSecond * 1000) / 1000
    }
  }
  report.rows.push(...rows)
  return runs
}

/** Samples VmRSS of `pid` every 100 ms; `stop()` returns the peak in KiB. */
function watchRss (pid: number): { stop: () => number } {
  let peak = NaN
  const sample = () => { peak = Math.max(rssKb(pid), Number.isNaN(peak) ? 0 : peak) }
  const timer = setInterval(sample, 100)
  return { stop: () => { clearInterval(timer); sample(); return peak } }
}

// ---------------------------------------------------------------------------------------------
// cred and the baselines

/**
 * Starts cred-server `name` on `database`, at --log-level warn unless `logLevel` is null (its
 * default); `stop()` notes its peak RSS and first warnings in the report.
 */
export async function startCredServer (report: Report, name: string, database: DatabaseConfig,
  { settings = {}, logLevel = 'warn' }: { settings?: Record<string, string | number | boolean>, logLevel?: string | null } = {}) {
  const config = writeConfig(tempDir(), name, database, settings)
  progress(`${name}: starting cred-server`)
  const server = await startServer({ label: name, args: ['--config', config, ...(logLevel === null ? [] : ['--log-level', logLevel])], keepLogs: false })
  const rss = watchRss(server.pid)
  const stop = async () => {
    report.peakRssKb[name] = rss.stop()
    for (const line of server.warnings().slice(0, 5)) report.problems.push(`${name}: server log: ${line.msg}`)
    await server.stop()
  }
  return { server, config, stop }
}

/**
 * A cred-server as the workloads expect it: a writing client (the poster), a reading one
 * subscribed to 5 of the 20 event names (the poller), `small` events (seeded in bulk, then 10
 * posted), and `clients` clients in all. `targets()` are the workloads' requests, on this
 * server or, as the same clients, on another of the same database or a baseline.
 */
export async function startCred (report: Report, name: string, database: DatabaseConfig, { small, clients }: { small: number, clients: number }) {
  const { server, config, stop } = await startCredServer(report, name, database)
  try {
    const [writeKey, readKey] = await Promise.all([createKey(config, 'write'), createKey(config, 'read')])
    const auth = (apikey: string, device: string, subscribe?: object): Promise<{ id: number, sessionKey: string }> =>
      expectJson(201, `${server.origin}/auth`, { method: 'POST', body: { apikey, device, location: 'Bench', ...(subscribe === undefined ? {} : { subscribe }) } })
    const poster = await auth(writeKey, 'bench poster')
    const poller = await auth(readKey, 'bench poller', Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`Bench${i}`, {}])))
    const posterAuth = { authorization: `Bearer ${poster.sessionKey}` }
    const pollerAuth = { authorization: `Bearer ${poller.sessionKey}` }
    const seed = (total: number) => (database.type === 'sqlite3' ? seedSqlite : seedPostgres)(database, total, poster.id)
    const seedUpTo = async (total: number) => {
      progress(`${name}: seeding events up to ${total.toLocaleString('en-US')}`)
      const started = performance.now()
      await seed(total)
      report.notes.push(`${name}: seeded up to ${total.toLocaleString('en-US')} events in ${Math.round(performance.now() - started) / 1000} s`)
    }
    await seed(small - 10)
    for (let i = 0; i < 10; i++) await expectJson(201, `${server.origin}/events`, { method: 'POST', headers: posterAuth, body: postBody(`Bench${5 + i}`, String(i)) })
    if (clients > 2) progress(`${name}: authenticating ${clients - 2} more clients`)
    await inParallel(Array.from({ length: Math.max(0, clients - 2) }, (_, i) => i), 8, (i) => auth(readKey, `bench client ${i}`))
    const targets = async (as = name, on: { origin: string, pid: number } = server) => {
      const latest = await expectJson(200, `${on.origin}/events?limit=1`, { headers: pollerAuth })
      const get = (path: string): Target => ({ server: as, url: `${on.origin}${path}`, pid: on.pid, headers: pollerAuth })
      const post: Target = { server: as, url: `${on.origin}/events`, pid: on.pid, method: 'POST', headers: { ...posterAuth, 'content-type': 'application/json' }, body: JSON.stringify(postBody('Posted', '42')) }
      return {
        events: get('/events?full=true&limit=10'),
        poll: get(`/clients/${poller.id}/subscribedevents?full=true&after=${latest.events[0].id}`),
        clients: get('/clients?full=true'),
        post
      }
    }
    return { server, database, posterId: poster.id, targets, seedUpTo, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

const postBody = (name: string, value: string) => ({ event: { name, location: 'Bench', action: 'bench', value } })

/** Inserts events straight into the table until it holds `total`, named and timed like posted ones (names cycle over 20). */
async function seedSqlite (database: DatabaseConfig, total: number, clientId: number): Promise<void> {
  const db = new Database(database.database)
  try {
    db.pragma('busy_timeout = 30000')
    const missing = total - (db.prepare('select count(*) as n from events').get() as { n: number }).n
    if (missing <= 0) return
    db.prepare(`insert into events (client_id, device, name, location, action, value, time)
      with recursive s(i) as (select 1 union all select i + 1 from s where i < ?)
      select ?, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', cast(i as text), ? + i from s`).run(missing, clientId, Date.now() - missing)
    db.pragma('wal_checkpoint(TRUNCATE)')
    db.exec('analyze')
  } finally {
    db.close()
  }
}

async function seedPostgres (database: DatabaseConfig, total: number, clientId: number): Promise<void> {
  await postgresAdmin(postgresUrl(database), async (sql) => {
    const missing = total - (await sql<Array<{ n: number }>>`select count(*)::int as n from events`)[0]!.n
    if (missing <= 0) return
    // a superuser skips the foreign-key trigger on every row (they all name the poster): a third less time
    const [role] = await sql<Array<{ super: boolean }>>`select rolsuper as super from pg_roles where rolname = current_user`
    await sql.begin(async (tx) => {
      if (role?.super === true) await tx`set local session_replication_role = replica`
      await tx`insert into events (client_id, device, name, location, action, value, time)
        select ${clientId}, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', i::text, ${Date.now() - missing}::bigint + i
        from generate_series(1, ${missing}::int) as i`
    })
    // as after any bulk load: else autovacuum starts on the new rows in the middle of a row
    await sql`vacuum (analyze) events`
  })
}

/** Starts baseline.js (see there) with `args`, once it listens; stopped by `stop()` or at clean-up. */
export async function startBaseline (report: Report, name: string, args: string[]) {
  progress(`${name}: starting`)
  const child = track(spawn(process.execPath, [fileURLToPath(new URL('./baseline.js', import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'inherit'] }))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const listening = /^listening (\d+)$/m.exec(out += chunk)
      if (listening !== null) resolve(Number(listening[1]))
    })
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before listening`)))
  })
  const rss = watchRss(child.pid!)
  const stop = async () => {
    report.peakRssKb[name] = rss.stop()
    await stopProcess(child)
  }
  return { pid: child.pid!, origin: `http://127.0.0.1:${port}`, stop }
}

/** Writes what the bare baseline answers (cred's own answers) to a file for it. */
export function fixturesFile (fixtures: Record<string, unknown>): string {
  const file = join(tempDir(), 'fixtures.json')
  writeFileSync(file, JSON.stringify(fixtures))
  return file
}
