#!/usr/bin/env node
// HTTP throughput benchmark (issue 7): measures, side by side and with the same autocannon
// settings, a bare Fastify baseline serving cred's response shapes from memory, cred on
// SQLite (fresh temp database) and cred on PostgreSQL (fresh database, when reachable).
//
//   npm run bench -- [--connections 10] [--duration 5] [--json] ...   (builds first)
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import Database from 'better-sqlite3'
import {
  cleanUp, cleanUpOnSignals, createDatabase, createKey, inParallel, postgresAdmin, postgresProblem, progress, requestJson,
  cpuSeconds, postgresDatabaseConfig, rssKb, sleep, startOnFreePort, stopProcess, tempDir, trackProcess, numberOption, type DatabaseConfig, type ServerProcess } from './harness.js'

const usage = `Usage: npm run bench -- [options]      (node dist/scripts/bench/bench.js after npm run build)

Measures HTTP throughput with autocannon on a bare Fastify baseline (responses from memory),
cred-server on SQLite and cred-server on PostgreSQL, for these workloads:
  1  GET /events?full=true&limit=10                        (10,000 events in the table)
  2  POST /events
  3  GET /clients/{id}/subscribedevents?full=true&after=<latest>   (5 subscriptions, nothing
     new, 10,000 events in the table)
  4  GET /clients?full=true                                (500 active clients)
  5  1 and 3 with 1,000,000 events in the table (seeded in bulk), on a second cred-server
     set up like the first, each row in 6 turns with the same workload on the first server
     (10,000 events; half as long): their p99, through the same moments
and workload 1 on two more cred-servers on the same SQLite file, one with metrics: False,
in 6 alternating rounds of a quarter of --duration each (after half --duration of warm-up each):
what metrics cost.

The baseline runs beside both cred servers: each cred row of workloads 1 to 4 takes 6 turns
with the same workload on the baseline, which gets half as long, so that the ratio compares
the two through the same moments. Each measurement follows an unmeasured warm-up of
--warmup requests on the same target. Each row also shows the server process's CPU time per
response (all its threads, from /proc), which this shared machine measures more steadily than
req/s.

  --connections N   concurrent connections (default 10)
  --duration S      seconds per measurement (default 10)
  --warmup N        requests sent before each measurement, not counted (default 1000)
  --big N           events in the table for workload 5 (default 1000000)
  --small N         events in the table for workloads 1 to 4 (default 10000)
  --postgres URL    PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres;
                    a database cred_bench_<random> is created there and dropped afterwards)
  --no-postgres     skip PostgreSQL
  --time-limit S    give up (and clean up) after S seconds (default 540)
  --json            print the results as JSON instead of a table
  -h, --help        show this help

Exits 1 when a request failed (non-2xx responses count as errors) or a run failed.
`

const parseCommandLine = () => parseArgs({
  strict: true,
  options: {
    connections: { type: 'string', default: '10' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1000' },
    big: { type: 'string', default: '1000000' },
    small: { type: 'string', default: '10000' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    'no-postgres': { type: 'boolean', default: false },
    'time-limit': { type: 'string', default: '540' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false }
  }
}).values
let args: ReturnType<typeof parseCommandLine>
try {
  args = parseCommandLine()
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n${usage}`)
  process.exit(2)
}
if (args.help) {
  process.stdout.write(usage)
  process.exit(0)
}
const count = numberOption('bench', usage)
const options = {
  connections: Math.floor(count('connections', args.connections, 1)),
  duration: count('duration', args.duration, 1),
  warmup: Math.floor(count('warmup', args.warmup, 0)),
  big: Math.floor(count('big', args.big, 100)),
  small: Math.floor(count('small', args.small, 20)),
  timeLimitMs: count('time-limit', args['time-limit'], 1) * 1000
}

// ---------------------------------------------------------------------------------------------
// results

type ServerKind = 'baseline' | 'sqlite' | 'sqlite-metrics-off' | 'sqlite-big' | 'postgresql' | 'postgresql-big'
type CredKind = 'sqlite' | 'postgresql'
type WorkloadKey = 'events' | 'post' | 'poll' | 'clients' | 'events-big' | 'poll-big'

const workloadNames: Record<WorkloadKey, string> = {
  events: '1 GET /events?full=true&limit=10 (SMALL events)',
  post: '2 POST /events',
  poll: '3 GET subscribedevents after=latest (SMALL events)',
  clients: '4 GET /clients?full=true (500 clients)',
  'events-big': '5 = 1 with BIG events',
  'poll-big': '5 = 3 with BIG events'
}
/** which baseline workload a workload is compared with */
const baselineOf: Record<WorkloadKey, 'events' | 'poll' | 'clients' | 'post'> = {
  events: 'events', post: 'post', poll: 'poll', clients: 'clients',
  'events-big': 'events', 'poll-big': 'poll'
}
const label = (key: WorkloadKey) => workloadNames[key]
  .replace('SMALL', options.small.toLocaleString('en-US')).replace('BIG', options.big.toLocaleString('en-US'))

interface Cell {
  server: ServerKind
  /** for a baseline cell: the cred server whose row it was measured with, turn about */
  beside?: CredKind
  workload: WorkloadKey
  description: string
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  requests: number
  errors: number
  non2xx: number
  /** the server process's CPU time (all threads) per response, in µs to one decimal */
  serverCpuUsPerRequest: number | null
  ratioToBaseline: number | null
  /** workload 5: p99 of the same workload on the first server (SMALL events), measured in turns with this row */
  smallTableP99Ms?: number
}

interface ServerResult {
  server: ServerKind
  skipped?: string
  peakRssKb: number | null
  /** seconds taken to seed the events in bulk, per target size */
  seedSeconds?: Record<string, number>
  problems: string[]
}

const cells: Cell[] = []
const servers: ServerResult[] = []

// ---------------------------------------------------------------------------------------------
// measuring

/** A request to load, and the server process answering it (for its CPU time). */
interface Target { url: string, pid: number, method?: 'GET' | 'POST', body?: string, headers?: Record<string, string> }

/** What one or more autocannon runs on one target answered. */
interface Run {
  /** responses received */
  count: number
  seconds: number
  /** every response's latency in ms, sorted */
  latencies: Float64Array
  errors: number
  non2xx: number
  /** CPU time the server process (all its threads) used during the run; null when /proc could not tell */
  cpuSeconds: number | null
}

const request = (target: Target) => ({
  url: target.url,
  method: target.method ?? 'GET',
  connections: options.connections,
  headers: target.headers,
  body: target.body,
  // autocannon notices that the duration is over only when it samples, by default once a
  // second: a 2.5 s run would take 3 s
  sampleInt: 100
})

/**
 * autocannon for `seconds`, keeping every response's latency: autocannon's own percentiles
 * are whole milliseconds, too coarse for answers that take 0.5–3 ms (1 → 2 ms would read as
 * 2×). The rate is responses over the run's own wall time, which stays exact for runs of a
 * second or two (autocannon's req/s averages whole-second buckets).
 */
function cannon (target: Target, seconds: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    let latencies = new Float64Array(1 << 16)
    let count = 0
    const started = performance.now()
    const cpuBefore = cpuSeconds(target.pid)
    const instance = autocannon({ ...request(target), duration: seconds }, (err: Error | null, result: autocannon.Result) => {
      if (err !== null && err !== undefined) reject(err)
      else {
        const cpuAfter = cpuSeconds(target.pid)
        resolve({
          count,
          seconds: (performance.now() - started) / 1000,
          latencies: latencies.subarray(0, count).sort(),
          errors: result.errors + result.non2xx,
          non2xx: result.non2xx,
          cpuSeconds: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore
        })
      }
    })
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[count++] = responseTime
    })
  })
}

/** Runs on one target taken together. */
function merged (runs: Run[]): Run {
  const latencies = new Float64Array(runs.reduce((sum, run) => sum + run.latencies.length, 0))
  let at = 0
  for (const run of runs) {
    latencies.set(run.latencies, at)
    at += run.latencies.length
  }
  return {
    count: runs.reduce((sum, run) => sum + run.count, 0),
    seconds: runs.reduce((sum, run) => sum + run.seconds, 0),
    latencies: latencies.sort(),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
    cpuSeconds: runs.some((run) => run.cpuSeconds === null) ? null : runs.reduce((sum, run) => sum + run.cpuSeconds!, 0)
  }
}

/** The `q` quantile (0–1) of sorted latencies, in ms to two decimals. */
function quantile (sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0
  return Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]! * 100) / 100
}

/** The unmeasured warm-up: the JIT compiles the hot paths first, for every server alike. */
async function warm (target: Target, problems: string[], what: string): Promise<void> {
  if (options.warmup === 0) return
  const run = await autocannon({ ...request(target), amount: options.warmup })
  if (run.errors + run.non2xx > 0) problems.push(`${what}: ${run.non2xx} non-2xx responses and ${run.errors} connection errors while warming up`)
}

/** Notes a run's failed requests, if any, among `problems`. */
function checkErrors (run: Run, problems: string[], what: string): void {
  if (run.errors > 0) problems.push(`${what}: ${run.non2xx} non-2xx responses and ${run.errors - run.non2xx} connection errors`)
}

/**
 * The server's CPU time per response, in µs. On this shared VM it is steadier than req/s, which
 * also moves with the load generator's own speed; /proc counts it in 10 ms ticks, fine enough
 * over a row's 1.7 s turns.
 */
function cpuPerRequest (run: Run): number | null {
  return run.cpuSeconds === null || run.count === 0 ? null : Math.round(run.cpuSeconds / run.count * 1e7) / 10
}

function record (server: ServerKind, workload: WorkloadKey, run: Run, problems: string[], beside?: CredKind): Cell {
  checkErrors(run, problems, label(workload))
  const cell: Cell = {
    server,
    ...(beside === undefined ? {} : { beside }),
    workload,
    description: label(workload),
    requestsPerSecond: Math.round(run.count / run.seconds),
    latencyP50Ms: quantile(run.latencies, 0.5),
    latencyP99Ms: quantile(run.latencies, 0.99),
    requests: run.count,
    errors: run.errors,
    non2xx: run.non2xx,
    serverCpuUsPerRequest: cpuPerRequest(run),
    ratioToBaseline: null
  }
  cells.push(cell)
  return cell
}

/**
 * Turns a measurement is split into when it takes turns with the baseline. This VM's speed
 * changes for seconds at a time (the same server, in 1 s runs: 78–105 µs of CPU per request
 * for six seconds, then 43 µs): turns shorter than that spread such spells over both.
 */
const TURNS = 6

/**
 * One row of a cred server, `--duration` seconds in all. With `baseline` (the same workload
 * on the bare Fastify app), the two take TURNS turns, alternating which goes first, and the
 * baseline gets half as long: both are measured through the same moments, so the ratio is not
 * thrown off by what else this shared machine was doing at the time (run minutes apart, the
 * same baseline row has measured anywhere from 18,000 to 27,000 req/s).
 */
async function measure (server: CredKind, workload: WorkloadKey, target: Target, problems: string[], baseline?: Baseline): Promise<void> {
  const beside = baseline?.targets[baselineOf[workload]]
  progress(`${server}: ${label(workload)} for ${options.duration} s${beside === undefined ? '' : `, in ${TURNS} turns with the baseline (${options.duration / 2} s)`}`)
  await warm(target, problems, label(workload))
  if (beside === undefined) {
    record(server, workload, await cannon(target, options.duration), problems)
    return
  }
  await warm(beside, baseline!.problems, label(workload))
  const { runs, besideRuns } = await inTurns(target, beside)
  record(server, workload, runs, problems)
  record('baseline', workload, besideRuns, baseline!.problems, server)
}

/**
 * `--duration` seconds on `target` in TURNS turns with `beside`, which gets half as long and
 * goes first every other turn: the runs on each, taken together.
 */
async function inTurns (target: Target, beside: Target): Promise<{ runs: Run, besideRuns: Run }> {
  const runs: Run[] = []
  const besideRuns: Run[] = []
  for (let turn = 0; turn < TURNS; turn++) {
    if (turn % 2 === 0) runs.push(await cannon(target, options.duration / TURNS))
    besideRuns.push(await cannon(beside, options.duration / TURNS / 2))
    if (turn % 2 === 1) runs.push(await cannon(target, options.duration / TURNS))
  }
  return { runs: merged(runs), besideRuns: merged(besideRuns) }
}

/** Samples VmRSS of `pid` every 100 ms; `stop()` returns the peak in KiB. */
function watchRss (pid: number): { stop: () => number | null } {
  let peak: number | null = null
  const sample = () => {
    const value = rssKb(pid)
    if (value !== null && (peak === null || value > peak)) peak = value
  }
  sample()
  const timer = setInterval(sample, 100)
  return { stop: () => { clearInterval(timer); sample(); return peak } }
}

// ---------------------------------------------------------------------------------------------
// cred

const subscribedNames = ['Bench0', 'Bench1', 'Bench2', 'Bench3', 'Bench4']

interface Fixtures { events: unknown, subscribed: unknown, clients: unknown, created: unknown }

/** Inserts events in bulk straight into the database until it holds `total` (ids and names like posted ones). */
type Seeder = (total: number, clientId: number) => Promise<void>

function sqliteSeeder (file: string): Seeder {
  return async (total, clientId) => {
    const db = new Database(file)
    try {
      db.pragma('busy_timeout = 30000')
      const have = (db.prepare('select count(*) as n from events').get() as { n: number }).n
      const missing = total - have
      if (missing <= 0) return
      // event names cycle over 20, five of which the polling client subscribes to
      db.transaction(() => {
        db.prepare(`insert into events (client_id, device, name, location, action, value, time)
          with recursive s(i) as (select 1 union all select i + 1 from s where i < ?)
          select ?, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', cast(i as text), ? + i from s`)
          .run(missing, clientId, Date.now() - missing)
      })()
      db.pragma('wal_checkpoint(TRUNCATE)')
      db.exec('analyze')
    } finally {
      db.close()
    }
  }
}

function postgresSeeder (adminUrl: string, database: string): Seeder {
  const url = new URL(adminUrl)
  url.pathname = `/${database}`
  return (total, clientId) => postgresAdmin(url.href, async (sql) => {
    const [row] = await sql<Array<{ n: number }>>`select count(*)::int as n from events`
    const missing = total - row!.n
    if (missing <= 0) return
    // a superuser skips the foreign-key trigger on every row (they all name the poster, which
    // exists): about a third less time for a million rows
    const [role] = await sql<Array<{ super: boolean }>>`select rolsuper as super from pg_roles where rolname = current_user`
    await sql.begin(async (tx) => {
      if (role?.super === true) await tx`set local session_replication_role = replica`
      await tx`insert into events (client_id, device, name, location, action, value, time)
        select ${clientId}, 'bench seed', 'Bench' || (i % 20), 'Bench', 'seed', i::text, ${Date.now() - missing}::bigint + i
        from generate_series(1, ${missing}::int) as i`
    })
    // as after any bulk load: otherwise autovacuum starts on the new rows within its naptime (a
    // minute), in the middle of whichever row is being measured then
    await sql`vacuum (analyze) events`
  })
}

/** A cred server set up for the rows: the clients, the events, and the requests of each workload. */
interface CredUnderTest {
  cred: ServerProcess
  api: Agent
  posterAuth: Record<string, string>
  pollerAuth: Record<string, string>
  eventsUrl: string
  /** workload 3's URL: the polling client's subscribed events after the newest one */
  pollUrl: () => Promise<string>
  /** a GET of this server as the polling client */
  asPoller: (url: string) => Target
  seedUpTo: (total: number) => Promise<void>
  /** stops the server and reads its peak RSS into its result */
  stop: () => Promise<void>
}

const postBody = (value: string) => ({ event: { name: 'Posted', location: 'Bench', action: 'bench', value } })

/**
 * Starts a cred server on `database` and sets it up as every row expects: a writing client
 * (the poster) and a polling client subscribed to 5 event names, SMALL events (seeded in bulk,
 * then 10 posted like a device would), and 498 more clients (workload 4 lists 500).
 */
async function startCred (result: ServerResult, database: DatabaseConfig, seed: Seeder, name: string): Promise<CredUnderTest> {
  const dir = tempDir()
  progress(`${result.server}: starting cred-server`)
  const { server: cred, config } = await startOnFreePort(result.server, dir, name, database)
  const rss = watchRss(cred.pid)
  const api = new Agent({ keepAlive: true, maxSockets: 16 })
  const stop = async () => {
    result.peakRssKb = rss.stop()
    api.destroy()
    await cred.stop()
  }
  try {
    const writeKey = await createKey(config, 'write')
    const readKey = await createKey(config, 'read')
    const auth = async (apikey: string, device: string, subscribe?: Record<string, object>) => {
      const res = await requestJson(api, 'POST', `${cred.url}/auth`, { apikey, device, location: 'Bench', ...(subscribe === undefined ? {} : { subscribe }) })
      if (res.status !== 201) throw new Error(`POST /auth: ${res.status} ${JSON.stringify(res.body)}`)
      return { id: res.body.id as number, sessionKey: res.body.sessionKey as string }
    }
    const poster = await auth(writeKey, 'bench poster')
    const poller = await auth(readKey, 'bench poller', Object.fromEntries(subscribedNames.map((name) => [name, {}])))
    const posterAuth = { authorization: `Bearer ${poster.sessionKey}` }
    const pollerAuth = { authorization: `Bearer ${poller.sessionKey}` }
    const seedUpTo = async (total: number) => {
      progress(`${result.server}: seeding events up to ${total.toLocaleString('en-US')}`)
      const start = performance.now()
      await seed(total, poster.id)
      const seconds = Math.round((performance.now() - start) / 100) / 10
      result.seedSeconds = { ...result.seedSeconds, [String(total)]: seconds }
      progress(`${result.server}: seeded in ${seconds} s`)
    }

    // SMALL events in bulk, then 10 posted like a device would
    await seedUpTo(options.small - 10)
    for (let i = 0; i < 10; i++) {
      const res = await requestJson(api, 'POST', `${cred.url}/events`, { event: { name: `Bench${5 + i}`, location: 'Bench', action: 'bench', value: i } }, posterAuth)
      if (res.status !== 201) throw new Error(`POST /events: ${res.status} ${JSON.stringify(res.body)}`)
    }
    const latest = async () => {
      const res = await requestJson(api, 'GET', `${cred.url}/events?limit=1`, undefined, pollerAuth)
      if (res.status !== 200) throw new Error(`GET /events?limit=1: ${res.status} ${JSON.stringify(res.body)}`)
      return res.body.events[0].id as number
    }

    // the 498 other clients for workload 4 (authenticated now, so active)
    progress(`${result.server}: authenticating 498 more clients`)
    await inParallel(Array.from({ length: 498 }, (_, i) => i), 8, (i) => auth(readKey, `bench client ${i}`))
    return {
      cred,
      api,
      posterAuth,
      pollerAuth,
      eventsUrl: `${cred.url}/events?full=true&limit=10`,
      pollUrl: async () => `${cred.url}/clients/${poller.id}/subscribedevents?full=true&after=${await latest()}`,
      asPoller: (url: string): Target => ({ url, pid: cred.pid, headers: pollerAuth }),
      seedUpTo,
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** How to open one more database of a kind, for workload 5's server. */
type AnotherDatabase = () => Promise<{ database: DatabaseConfig, seed: Seeder }>

/**
 * A cred server's run. `baseline` gets the fixtures (SQLite's start the baseline app) and
 * gives the baseline the rows take turns with; when it fails, the rows are measured alone.
 * Workload 5 runs on a second server of the same kind, on `another` database seeded up to BIG
 * events, in turns with this one (see measureBigTable).
 */
async function runCred (server: CredKind, database: DatabaseConfig, seed: Seeder, another: AnotherDatabase,
  baseline: (fixtures: Fixtures) => Promise<Baseline | undefined>): Promise<void> {
  const problems: string[] = []
  const result: ServerResult = { server, peakRssKb: null, seedSeconds: {}, problems }
  servers.push(result)
  const small = await startCred(result, database, seed, 'cred')
  const { cred, api, eventsUrl, pollerAuth, asPoller } = small
  try {
    // what the baseline serves: the same bodies
    const fixtures: Fixtures = {
      events: (await requestJson(api, 'GET', eventsUrl, undefined, pollerAuth)).body,
      subscribed: (await requestJson(api, 'GET', await small.pollUrl(), undefined, pollerAuth)).body,
      clients: (await requestJson(api, 'GET', `${cred.url}/clients?full=true`, undefined, pollerAuth)).body,
      created: (await requestJson(api, 'POST', `${cred.url}/events`, postBody('fixture'), small.posterAuth)).body
    }
    if ((fixtures.clients as { clients: unknown[] }).clients.length < 500) {
      problems.push(`GET /clients lists ${(fixtures.clients as { clients: unknown[] }).clients.length} clients, not 500`)
    }

    const beside = await baseline(fixtures)
    await measure(server, 'events', asPoller(eventsUrl), problems, beside)
    if (server === 'sqlite') await measureMetricsCost(tempDir(), database, eventsUrl, pollerAuth)
    await measure(server, 'poll', asPoller(await small.pollUrl()), problems, beside)
    await measure(server, 'clients', asPoller(`${cred.url}/clients?full=true`), problems, beside)

    await measureBigTable(server, small, another, problems)

    // last, so that the posted events do not change the table sizes above
    await measure(server, 'post', {
      url: `${cred.url}/events`,
      pid: cred.pid,
      method: 'POST',
      headers: { ...small.posterAuth, 'content-type': 'application/json' },
      body: JSON.stringify(postBody('42'))
    }, problems, beside)
    serverLogProblems(cred, problems)
  } finally {
    await small.stop()
  }
}

/** The first warnings a server logged, as problems. */
function serverLogProblems (cred: ServerProcess, problems: string[]): void {
  for (const line of cred.warnings.slice(0, 5)) {
    const err = line.err as { message?: string } | undefined
    problems.push(`server log: ${line.msg}${err?.message === undefined ? '' : `: ${err.message}`}`)
  }
}

/**
 * Workload 5: workloads 1 and 3 on a second cred server, set up like the first but with BIG
 * events in its table, each row in TURNS turns with the same workload on the first server
 * (SMALL events), which gets half as long. The p99 growth compares the two through the same
 * moments: measured minutes apart, as a row alone, one run's p99 read 1.54x on PostgreSQL
 * while the server used twice the CPU per request of the rows before it (this machine's speed
 * changes for seconds at a time; workloads 1 and 3 answer from memory whatever the size).
 */
async function measureBigTable (server: CredKind, small: CredUnderTest, another: AnotherDatabase, problems: string[]): Promise<void> {
  const bigServer = server === 'sqlite' ? 'sqlite-big' : 'postgresql-big'
  const bigProblems: string[] = []
  const result: ServerResult = { server: bigServer, peakRssKb: null, seedSeconds: {}, problems: bigProblems }
  servers.push(result)
  let big: CredUnderTest | undefined
  try {
    const { database, seed } = await another()
    big = await startCred(result, database, seed, 'cred-big')
    await big.seedUpTo(options.big)
    const rows = [
      ['events-big', big.asPoller(big.eventsUrl), small.asPoller(small.eventsUrl)],
      ['poll-big', big.asPoller(await big.pollUrl()), small.asPoller(await small.pollUrl())]
    ] as const
    for (const [workload, target, smallTarget] of rows) {
      progress(`${server}: ${label(workload)} for ${options.duration} s, in ${TURNS} turns with the first server (${options.small.toLocaleString('en-US')} events, ${options.duration / 2} s)`)
      // the second server is new to the workload, the first has served it for a while: warmed
      // up for a quarter of the duration too, so that V8 has compiled the path before the turns
      await warm(target, bigProblems, label(workload))
      checkErrors(await cannon(target, options.duration / 4), bigProblems, `${label(workload)}, warming up`)
      await warm(smallTarget, problems, label(workload))
      const { runs, besideRuns } = await inTurns(target, smallTarget)
      const cell = record(server, workload, runs, bigProblems)
      checkErrors(besideRuns, problems, `${label(workload)}, the first server's turns`)
      cell.smallTableP99Ms = quantile(besideRuns.latencies, 0.99)
    }
    serverLogProblems(big.cred, bigProblems)
  } catch (err) {
    // the first server's remaining row (workload 2) is still measured
    bigProblems.push(`run failed: ${(err as Error).message}`)
  } finally {
    await big?.stop()
  }
}

/** Rounds of workload 1 on two fresh servers, metrics on then off: req/s of each, and CPU µs per request. */
const metricsRounds: Array<{ on: number, off: number, onCpuUs: number | null, offCpuUs: number | null }> = []
/** all the rounds of each server taken together */
const metricsRuns: Partial<Record<'on' | 'off', Run>> = {}
/** rounds of a quarter of the duration on each server: as for TURNS, shorter than a slow spell */
const METRICS_ROUNDS = 6

/**
 * What metrics cost: workload 1 on two more cred-servers on the same database (same rows,
 * same session), fresh alike, one with `metrics: False`. Both are warmed up for half the
 * duration, then they take turns for METRICS_ROUNDS rounds of a quarter of the duration
 * each (which one goes first alternates), and the cost is read from the sums. The metrics-off
 * server's rounds together are the table's "metrics off" row. The first server is not compared
 * with: it is measured at other moments, and this machine's speed changes by up to 2× for
 * seconds at a time.
 */
async function measureMetricsCost (dir: string, database: DatabaseConfig, firstUrl: string, headers: Record<string, string>): Promise<void> {
  const problems: string[] = []
  const result: ServerResult = { server: 'sqlite-metrics-off', peakRssKb: null, problems }
  servers.push(result)
  const start = async (name: string, metrics: boolean) => {
    progress(`sqlite: starting another cred-server with metrics: ${metrics ? 'True' : 'False'}`)
    return (await startOnFreePort(`sqlite ${name}`, dir, name, database, { settings: { metrics } })).server
  }
  const path = `${new URL(firstUrl).pathname}${new URL(firstUrl).search}`
  const off = await start('cred-metrics-off', false)
  const rss = watchRss(off.pid)
  let on: ServerProcess | undefined
  try {
    on = await start('cred-metrics-on', true)
    const targets = { on: { url: `${on.url}${path}`, pid: on.pid, headers }, off: { url: `${off.url}${path}`, pid: off.pid, headers } }
    // with only --warmup requests, a server's first round was up to half as fast as its
    // later ones while V8 was still compiling
    progress(`sqlite: warming up both for ${options.duration / 2} s`)
    for (const target of [targets.on, targets.off]) {
      await warm(target, problems, 'metrics rounds')
      const run = await cannon(target, options.duration / 2)
      checkErrors(run, problems, 'metrics warm-up')
    }
    const allRuns: Record<'on' | 'off', Run[]> = { on: [], off: [] }
    for (let round = 1; round <= METRICS_ROUNDS; round++) {
      progress(`sqlite: metrics on/off, round ${round} of ${METRICS_ROUNDS}, ${options.duration / 4} s each`)
      // taking turns at going first, so neither always runs on a machine the other just warmed
      const order = round % 2 === 1 ? ['on', 'off'] as const : ['off', 'on'] as const
      const runs: Partial<Record<'on' | 'off', Run>> = {}
      for (const which of order) runs[which] = await cannon(targets[which], options.duration / 4)
      allRuns.on.push(runs.on!)
      allRuns.off.push(runs.off!)
      checkErrors(runs.on!, problems, 'metrics rounds')
      metricsRounds.push({
        on: runs.on!.count / runs.on!.seconds,
        off: runs.off!.count / runs.off!.seconds,
        onCpuUs: cpuPerRequest(runs.on!),
        offCpuUs: cpuPerRequest(runs.off!)
      })
    }
    metricsRuns.on = merged(allRuns.on)
    metricsRuns.off = merged(allRuns.off)
    record('sqlite-metrics-off', 'events', metricsRuns.off, problems)
  } finally {
    result.peakRssKb = rss.stop()
    await on?.stop()
    await off.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// baseline

/** The bare Fastify app, running; its targets are the same workloads as cred's. */
interface Baseline {
  targets: Record<'events' | 'poll' | 'clients' | 'post', Target>
  problems: string[]
  stop: () => Promise<void>
}

/** Starts the baseline serving `fixtures`; it runs until `stop()`, beside both cred servers. */
async function startBaseline (fixtures: Fixtures): Promise<Baseline> {
  const problems: string[] = []
  const result: ServerResult = { server: 'baseline', peakRssKb: null, problems }
  servers.push(result)
  const file = join(tempDir(), 'fixtures.json')
  writeFileSync(file, JSON.stringify(fixtures))
  progress('baseline: starting the bare Fastify app')
  const script = fileURLToPath(new URL('./bench-baseline.js', import.meta.url))
  const child = spawn(process.execPath, [script, file], { stdio: ['ignore', 'pipe', 'inherit'] })
  trackProcess(child)
  let port: number
  try {
    port = await listeningPort(child, 15_000)
  } catch (err) {
    await stopProcess(child)
    throw err
  }
  const pid = child.pid!
  const rss = watchRss(pid)
  const url = `http://127.0.0.1:${port}`
  return {
    targets: {
      events: { url: `${url}/events?full=true&limit=10`, pid },
      poll: { url: `${url}/clients/2/subscribedevents?full=true&after=10`, pid },
      clients: { url: `${url}/clients?full=true`, pid },
      post: {
        url: `${url}/events`,
        pid,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ event: { name: 'Posted', location: 'Bench', action: 'bench', value: '42' } })
      }
    },
    problems,
    stop: async () => {
      result.peakRssKb = rss.stop()
      await stopProcess(child)
    }
  }
}

/** The port of the baseline's `listening <port>` line (it listens on one the system picks). */
function listeningPort (child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`baseline did not start within ${timeoutMs / 1000} s`)), timeoutMs)
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      out += chunk
      const listening = /^listening (\d+)\n/m.exec(out)
      if (listening !== null) {
        clearTimeout(timer)
        resolve(Number(listening[1]))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`baseline exited (${code}) before listening`))
    })
  })
}

// ---------------------------------------------------------------------------------------------
// output

const serverLabels: Record<ServerKind, string> = {
  baseline: 'baseline (bare Fastify)',
  sqlite: 'cred, SQLite',
  'sqlite-metrics-off': 'cred, SQLite, metrics off',
  'sqlite-big': 'cred, SQLite, workload 5',
  postgresql: 'cred, PostgreSQL',
  'postgresql-big': 'cred, PostgreSQL, workload 5'
}
/** the table's order within a workload: each cred server after the baseline measured beside it */
const rank = (cell: Cell): number => cell.server === 'baseline'
  ? (cell.beside === 'postgresql' ? 3 : 0)
  : ['', 'sqlite', 'sqlite-metrics-off', '', 'postgresql'].indexOf(cell.server)
const cellLabel = (cell: Cell): string => cell.beside === undefined
  ? serverLabels[cell.server]
  : `${serverLabels[cell.server]}, beside ${cell.beside === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`
const order: WorkloadKey[] = ['events', 'post', 'poll', 'clients', 'events-big', 'poll-big']

/** Workload 5: p99 latency on the big table divided by the same workload's on the small one, through the same moments. */
function p99Growth (server: CredKind): { events: number, poll: number } | null {
  const ratio = (big: WorkloadKey) => {
    const cell = cells.find((cell) => cell.server === server && cell.workload === big)
    const small = cell?.smallTableP99Ms
    return cell === undefined || small === undefined || small === 0 ? null : Math.round(cell.latencyP99Ms / small * 100) / 100
  }
  const events = ratio('events-big')
  const poll = ratio('poll-big')
  return events === null || poll === null ? null : { events, poll }
}

/** How much lower workload 1's req/s is with metrics on than off over the rounds, in percent (negative: higher). */
function metricsCostPercent (): number | null {
  const on = metricsRounds.reduce((sum, round) => sum + round.on, 0)
  const off = metricsRounds.reduce((sum, round) => sum + round.off, 0)
  if (metricsRounds.length === 0 || off === 0) return null
  return Math.round((1 - on / off) * 1000) / 10
}

/** How much more CPU per request the metrics-on server used than the metrics-off one over all the rounds, in percent. */
function metricsCpuCostPercent (): number | null {
  const on = metricsRuns.on === undefined ? null : cpuPerRequest(metricsRuns.on)
  const off = metricsRuns.off === undefined ? null : cpuPerRequest(metricsRuns.off)
  return on === null || off === null || off === 0 ? null : Math.round((on / off - 1) * 1000) / 10
}

function table (): string {
  const header = ['server', 'workload', 'req/s', 'p50', 'p99', 'errors', 'vs baseline', 'CPU/req']
  const sorted = [...cells].sort((a, b) =>
    order.indexOf(a.workload) - order.indexOf(b.workload) || rank(a) - rank(b))
  const rows = sorted.map((cell) => [
    cellLabel(cell),
    cell.description,
    cell.requestsPerSecond.toLocaleString('en-US'),
    `${cell.latencyP50Ms.toFixed(2)} ms`,
    `${cell.latencyP99Ms.toFixed(2)} ms`,
    String(cell.errors),
    cell.ratioToBaseline === null ? '' : `${Math.round(cell.ratioToBaseline * 100)} %`,
    cell.serverCpuUsPerRequest === null ? 'n/a' : `${cell.serverCpuUsPerRequest.toFixed(1)} µs`
  ])
  const lines = [header, ...rows]
  const widths = header.map((_, col) => Math.max(...lines.map((line) => line[col]!.length)))
  const out = [
    `cred HTTP throughput — ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ` +
      `${options.connections} connections, ${options.duration} s per cred row (rows 1–4 in ${TURNS} turns with the baseline, ${options.duration / 2} s)`,
    '',
    ...lines.map((line) => line.map((cell, col) => col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)).join('  ').trimEnd()),
    '',
    'peak RSS (VmRSS sampled every 100 ms):'
  ]
  for (const server of servers) {
    if (server.skipped !== undefined) out.push(`  ${serverLabels[server.server]}: SKIPPED — ${server.skipped}`)
    else out.push(`  ${serverLabels[server.server]}: ${server.peakRssKb === null ? 'n/a' : `${(server.peakRssKb / 1024).toFixed(1)} MB`}`)
  }
  for (const server of servers) {
    for (const [total, seconds] of Object.entries(server.seedSeconds ?? {})) {
      out.push(`${serverLabels[server.server]}: seeded up to ${Number(total).toLocaleString('en-US')} events in ${seconds} s`)
    }
  }
  for (const server of ['sqlite', 'postgresql'] as const) {
    const growth = p99Growth(server)
    if (growth !== null) out.push(`${serverLabels[server]}: p99 with ${options.big.toLocaleString('en-US')} events vs ${options.small.toLocaleString('en-US')} (in turns): workload 1 ${growth.events}x, workload 3 ${growth.poll}x`)
  }
  const metricsCost = metricsCostPercent()
  if (metricsCost !== null) {
    const rounds = metricsRounds.map((round) => `${Math.round(round.on).toLocaleString('en-US')} vs ${Math.round(round.off).toLocaleString('en-US')}`).join(', ')
    out.push(`metrics cost on workload 1 (SQLite, metrics on vs off, ${metricsRounds.length} alternating rounds: ${rounds} req/s): ${metricsCost} % of req/s`)
  }
  const metricsCpuCost = metricsCpuCostPercent()
  if (metricsCpuCost !== null) {
    out.push(`metrics cost in the server's CPU per request over the same rounds: ${cpuPerRequest(metricsRuns.on!)!.toFixed(1)} vs ${cpuPerRequest(metricsRuns.off!)!.toFixed(1)} µs, ${metricsCpuCost > 0 ? '+' : ''}${metricsCpuCost} %`)
  }
  for (const server of servers) for (const problem of server.problems) out.push(`${serverLabels[server.server]}: PROBLEM — ${problem}`)
  return `${out.join('\n')}\n`
}

// ---------------------------------------------------------------------------------------------
// main

cleanUpOnSignals()

const timeLimit = setTimeout(() => {
  progress(`time limit of ${options.timeLimitMs / 1000} s reached: cleaning up`)
  cleanUp().finally(() => process.exit(1))
}, options.timeLimitMs)
timeLimit.unref()

/** Every cred server's rows, SQLite first. */
async function measureAll (withBaseline: (fixtures: Fixtures) => Promise<Baseline | undefined>, failed: (server: ServerKind, err: unknown) => void): Promise<void> {
  const sqliteDatabase = () => {
    const file = join(tempDir(), 'cred-bench.db')
    const database: DatabaseConfig = { type: 'sqlite3', database: file }
    return { database, seed: sqliteSeeder(file) }
  }
  const first = sqliteDatabase()
  await runCred('sqlite', first.database, first.seed, async () => sqliteDatabase(), withBaseline)

  if (args['no-postgres']) {
    servers.push({ server: 'postgresql', skipped: '--no-postgres', peakRssKb: null, problems: [] })
  } else {
    const url = new URL(args.postgres)
    const problem = await postgresProblem(args.postgres)
    if (problem !== null) {
      progress(`PostgreSQL at ${url.host} is not reachable (${problem}): skipping it`)
      servers.push({ server: 'postgresql', skipped: `PostgreSQL at ${url.host} not reachable: ${problem}`, peakRssKb: null, problems: [] })
    } else {
      // a fresh database, dropped at clean-up
      const postgresDatabase = async () => {
        const name = await createDatabase(args.postgres)
        return { database: postgresDatabaseConfig(args.postgres, name), seed: postgresSeeder(args.postgres, name) }
      }
      await postgresDatabase()
        .then((first) => runCred('postgresql', first.database, first.seed, postgresDatabase, withBaseline))
        .catch((err: unknown) => failed('postgresql', err))
    }
  }
}

async function main (): Promise<number> {
  const started = performance.now()
  const failed = (server: ServerKind, err: unknown) => {
    const existing = servers.find((s) => s.server === server)
    const message = `run failed: ${(err as Error).message}`
    if (existing === undefined) servers.push({ server, peakRssKb: null, problems: [message] })
    else existing.problems.push(message)
  }

  // SQLite first: its responses are what the baseline serves. The baseline then runs
  // beside both cred servers, taking turns with their rows.
  let baseline: Baseline | undefined
  let baselineFailed = false
  const withBaseline = async (fixtures: Fixtures) => {
    if (baseline === undefined && !baselineFailed) {
      baseline = await startBaseline(fixtures).catch((err: unknown) => {
        baselineFailed = true
        failed('baseline', err)
        return undefined
      })
    }
    return baseline
  }
  try {
    await measureAll(withBaseline, failed)
  } finally {
    await baseline?.stop()
  }

  for (const cell of cells) {
    if (cell.server === 'baseline') {
      cell.ratioToBaseline = 1
      continue
    }
    const beside = cell.server === 'postgresql' ? 'postgresql' : 'sqlite'
    const base = cells.find((other) => other.server === 'baseline' && other.beside === beside && other.workload === baselineOf[cell.workload])
    cell.ratioToBaseline = base === undefined || base.requestsPerSecond === 0 ? null : Math.round(cell.requestsPerSecond / base.requestsPerSecond * 1000) / 1000
  }
  const seconds = Math.round((performance.now() - started) / 1000)
  progress(`done in ${seconds} s`)

  if (args.json) {
    process.stdout.write(`${JSON.stringify({
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? null, node: process.version, platform: process.platform },
      options,
      seconds,
      servers,
      metricsCostPercent: metricsCostPercent(),
      metricsCpuCostPercent: metricsCpuCostPercent(),
      metricsRounds,
      p99GrowthWithBigTable: { sqlite: p99Growth('sqlite'), postgresql: p99Growth('postgresql') },
      results: cells
    }, null, 2)}\n`)
  } else {
    process.stdout.write(table())
  }
  return servers.some((server) => server.problems.length > 0) || cells.some((cell) => cell.errors > 0) ? 1 : 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`)
} finally {
  await cleanUp()
}
process.exit(code)
