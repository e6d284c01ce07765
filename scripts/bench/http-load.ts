// What `npm run bench`'s questions share: cred-servers set up for the workloads, the baseline
// processes, and autocannon runs taken in turns, each server's making a row.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import {
  authenticate, cpuSeconds, createKey, databaseUrl, expectJson, freshDatabase, inParallel, progress, quantile, rssKb, runBin, sorted, startServer, stopProcess, tempDir, withConnection, writeConfig,
  type DatabaseConfig, type Kind, type ServerKind
} from './harness.js'

/** What bench.ts's usage describes; turns: this VM's speed changes for seconds at a time, and short turns spread such spells over every server alike. */
export interface Options {
  connections: number
  postConnections: number[]
  duration: number
  turns: number
  warmup: number
  small: number
  big: number
  clients: number
  /** the databases to run on, and the servers of those that need one */
  kinds: Kind[]
  urls: Record<ServerKind, string>
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

export const freshBenchDatabase = (kind: Kind, options: Options) => freshDatabase(kind, options.urls, 'cred_bench_http_')

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
    const latencies: number[] = []
    const started = performance.now()
    const cpuBefore = cpuSeconds(target.pid)
    autocannon({ ...settings(target, connections), duration: seconds }, (err: Error | null, result: autocannon.Result) => {
      if (err !== null && err !== undefined) return reject(err)
      resolve({
        count: latencies.length,
        seconds: (performance.now() - started) / 1000,
        latencies: sorted(latencies),
        errors: result.errors + result.non2xx,
        cpuSeconds: cpuSeconds(target.pid) - cpuBefore
      })
    }).on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime))
  })
}

function merged (runs: Run[]): Run {
  const sum = (pick: (run: Run) => number) => runs.reduce((total, run) => total + pick(run), 0)
  const latencies = sorted(...runs.map((run) => run.latencies))
  return {
    count: latencies.length,
    seconds: sum((run) => run.seconds),
    latencies,
    errors: sum((run) => run.errors),
    cpuSeconds: sum((run) => run.cpuSeconds)
  }
}

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

/** Samples VmRSS of `pid` every 100 ms until `stop()`, which notes the peak in the report. */
function watchRss (report: Report, name: string, pid: number): { stop: () => void } {
  let peak = 0
  const sample = () => { peak = Math.max(peak, rssKb(pid)) }
  const timer = setInterval(sample, 100)
  return { stop: () => { clearInterval(timer); sample(); report.peakRssKb[name] = peak } }
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
  const rss = watchRss(report, name, server.pid)
  const stop = async () => {
    rss.stop()
    for (const line of server.warnings().slice(0, 5)) report.problems.push(`${name}: server log: ${line.msg}`)
    await server.stop()
  }
  return { server, config, stop }
}

const columns = 'client_id, device, name, location, action, value, time'

/**
 * Each database's statements inserting `missing` events straight into the table, named and timed
 * like posted ones (names cycle over 20), then its upkeep after a bulk load.
 */
const seeding: Record<Kind, (missing: number, clientId: number, time: number) => string[]> = {
  sqlite: (missing, clientId, time) => [
    `insert into events (${columns})
      with recursive s(i) as (select 1 union all select i + 1 from s where i < ${missing})
      select ${clientId}, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', cast(i as text), ${time} + i from s`,
    'pragma wal_checkpoint(TRUNCATE)',
    'analyze'
  ],
  postgresql: (missing, clientId, time) => [
    // a superuser skips the foreign-key trigger on every row (they all name the poster): a third less time
    "select set_config('session_replication_role', 'replica', false) from pg_roles where rolname = current_user and rolsuper",
    `insert into events (${columns})
      select ${clientId}, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', i::text, ${time}::bigint + i from generate_series(1, ${missing}) as i`,
    // as after any bulk load: else autovacuum starts on the new rows in the middle of a row
    'vacuum (analyze) events'
  ],
  mariadb: (missing, clientId, time) => [
    'set foreign_key_checks = 0',
    // seq_1_to_N: MariaDB's Sequence engine
    `insert into events (${columns})
      select ${clientId}, 'bench seed', concat('Bench', seq % 20), 'Bench', 'seed', seq, ${time} + seq from seq_1_to_${missing}`,
    'analyze table events'
  ]
}

/** Inserts events straight into the table until it holds `total`. */
const seed = (database: DatabaseConfig, total: number, clientId: number) => withConnection(databaseUrl(database), async (query) => {
  const missing = total - Number((await query('select count(*) as n from events'))[0]!.n)
  if (missing <= 0) return
  for (const statement of seeding[database.type === 'sqlite3' ? 'sqlite' : database.type](missing, clientId, Date.now() - missing)) await query(statement)
})

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
    const poster = await authenticate(server.origin, writeKey, 'bench poster')
    const poller = await authenticate(server.origin, readKey, 'bench poller', { subscribe: Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`Bench${i}`, {}])) })
    const seedUpTo = async (total: number) => {
      progress(`${name}: seeding events up to ${total.toLocaleString('en-US')}`)
      const started = performance.now()
      await seed(database, total, poster.id)
      report.notes.push(`${name}: seeded up to ${total.toLocaleString('en-US')} events in ${Math.round(performance.now() - started) / 1000} s`)
    }
    await seed(database, small - 10, poster.id)
    for (let i = 0; i < 10; i++) await expectJson(201, `${server.origin}/events`, { method: 'POST', headers: poster.headers, body: postBody(`Bench${5 + i}`, String(i)) })
    if (clients > 2) progress(`${name}: authenticating ${clients - 2} more clients`)
    await inParallel(Array.from({ length: Math.max(0, clients - 2) }, (_, i) => i), 8, (i) => authenticate(server.origin, readKey, `bench client ${i}`))
    const targets = async (as = name, on: { origin: string, pid: number } = server) => {
      const latest = await expectJson(200, `${on.origin}/events?limit=1`, { headers: poller.headers })
      const get = (path: string): Target => ({ server: as, url: `${on.origin}${path}`, pid: on.pid, headers: poller.headers })
      const post: Target = { server: as, url: `${on.origin}/events`, pid: on.pid, method: 'POST', headers: { ...poster.headers, 'content-type': 'application/json' }, body: JSON.stringify(postBody('Posted', '42')) }
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

/** Starts baseline.js (see there) with `args`, once it listens; stopped by `stop()` or at clean-up. */
export async function startBaseline (report: Report, name: string, args: string[]) {
  progress(`${name}: starting`)
  const { child, done } = runBin('bench/baseline', args)
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk: string) => {
      const listening = /^listening (\d+)$/m.exec(out += chunk)
      if (listening !== null) resolve(Number(listening[1]))
    })
    void done.then((ran) => reject(new Error(`${name} exited (${ran.code}) before listening: ${ran.stderr}`)))
  })
  const rss = watchRss(report, name, child.pid!)
  const stop = async () => {
    rss.stop()
    await stopProcess(child)
  }
  return { pid: child.pid!, origin: `http://127.0.0.1:${port}`, stop }
}

/** The durable-write baseline's arguments for a database. */
export const durableArgs = (database: DatabaseConfig) =>
  [`--${{ sqlite3: 'sqlite', postgresql: 'postgres', mariadb: 'mariadb' }[database.type]}`, databaseUrl(database)]

/** Writes what the bare baseline answers (cred's own answers) to a file for it. */
export function fixturesFile (fixtures: Record<string, unknown>): string {
  const file = join(tempDir(), 'fixtures.json')
  writeFileSync(file, JSON.stringify(fixtures))
  return file
}
