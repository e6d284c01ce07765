#!/usr/bin/env node
// `npm run bench`: cred-server's HTTP throughput, a script per question on one harness.
import { performance } from 'node:perf_hooks'
import { flatness } from './flatness.js'
import { cleanUp, cleanUpOnSignals, commandLine, databasesToRun, formatTable, kindLabels, machine, machineLine, progress, serverOptions } from './harness.js'
import { newReport, type Options, type Report } from './http-load.js'
import { metricsCost } from './metrics-cost.js'
import { throughput } from './throughput.js'

const questions = { throughput, flatness, metrics: metricsCost }

const { values, number, positionals, fail } = commandLine('bench', `Usage: npm run bench -- [QUESTION...] [options]   (node dist/scripts/bench/bench.js after npm run build)

Loads cred-server with autocannon, each row in turns with what it is compared with, on a
fresh SQLite file and, when they answer, a fresh PostgreSQL and a fresh MariaDB database
(cred_bench_http_*, dropped afterwards); cred-server runs at --log-level warn unless said
otherwise. The workloads:
  1  GET /events?full=true&limit=10                     (--small events in the table)
  2  POST /events
  3  GET /clients/{id}/subscribedevents?full=true&after=<latest>  (5 subscriptions, nothing new)
  4  GET /clients?full=true                             (--clients clients)
The questions (all by default):
  throughput  workloads 1-4 against a bare Fastify app answering cred's answers from memory
              (half as long); posts also against a bare route making the same durable write, at
              each of --post-connections; workload 1 also on cred-server with its default logging
  flatness    workloads 1 and 3 with --big events against --small, p99 through the same turns
  metrics     workload 1 with metrics on and off: two fresh servers on one SQLite file
`, {
  connections: ['N', '10', 'concurrent connections'],
  'post-connections': ['L', '10,40', 'workload 2\'s, comma-separated'],
  duration: ['S', '10', 'seconds of each cred row'],
  turns: ['N', '6', 'turns each row is split into'],
  warmup: ['N', '1000', 'requests before each row, not counted'],
  small: ['N', '10000', 'events for workloads 1-4'],
  big: ['N', '1000000', 'events for flatness'],
  clients: ['N', '500', 'clients for workload 4'],
  ...serverOptions,
  'no-sqlite': ['', null, 'skip SQLite (but for metrics, which runs on SQLite)'],
  'time-limit': ['S', '1200', 'give up (and clean up) after S seconds'],
  json: ['', null, 'print JSON instead of a table']
}, { positionals: true, tail: 'Exits 1 when a request failed (non-2xx answers count) or a run failed.' })
const unknown = positionals.find((name) => !(name in questions))
if (unknown !== undefined) fail(`no question ${unknown}: ${Object.keys(questions).join(', ')}`)
const whole = (name: Parameters<typeof number>[0], min: number, text?: string) => Math.floor(number(name, min, text))
const options: Options = {
  connections: whole('connections', 1),
  postConnections: String(values['post-connections']).split(',').map((text) => whole('post-connections', 1, text)),
  duration: number('duration', 0.1),
  turns: whole('turns', 1),
  warmup: whole('warmup', 0),
  small: whole('small', 20),
  big: whole('big', 100),
  clients: whole('clients', 2),
  ...await databasesToRun(values, values['no-sqlite'] !== true)
}
cleanUpOnSignals(() => {}, number('time-limit', 1))

const servers: Record<string, string> = {
  baseline: 'baseline (bare Fastify)',
  'sqlite-logging': 'cred, SQLite, default logging',
  'sqlite-metrics-on': 'cred, SQLite, metrics on',
  'sqlite-metrics-off': 'cred, SQLite, metrics off',
  ...Object.fromEntries(Object.entries(kindLabels).flatMap(([kind, label]) =>
    [[kind, `cred, ${label}`], [`durable-${kind}`, `durable-write baseline, ${label}`], [`${kind}-big`, `cred, ${label}, --big events`]]))
}
const workloads: Record<string, string> = { events: '1 GET /events', post: '2 POST /events', poll: '3 GET subscribedevents', clients: '4 GET /clients' }
const percent = (value: number | undefined) => value === undefined ? '' : `${Math.round(value * 1000) / 10} %`

function table (reports: Record<string, Report>): string {
  const rows = Object.entries(reports).flatMap(([question, report]) => report.rows.map((row) => [
    question, servers[row.server]!, workloads[row.workload]!, String(row.connections), row.requestsPerSecond.toLocaleString('en-US'),
    `${row.latencyP50Ms.toFixed(2)} ms`, `${row.latencyP99Ms.toFixed(2)} ms`, String(row.errors),
    `${row.serverCpuUsPerRequest.toFixed(1)} µs`,
    percent(row.ratios.baseline), percent(row.ratios[`durable-${row.server}`])
  ]))
  return [
    `cred HTTP throughput: ${machineLine}; ` +
      `${options.small.toLocaleString('en-US')} events, --big ${options.big.toLocaleString('en-US')}, ${options.clients} clients; ${options.duration} s per cred row`,
    '',
    ...formatTable([['question', 'server', 'workload', 'conns', 'req/s', 'p50', 'p99', 'errors', 'CPU/req', 'vs bare', 'vs durable'], ...rows], 3),
    '',
    ...Object.values(reports).flatMap((report) => report.notes),
    ...Object.entries(reports).map(([question, report]) => `${question}: peak RSS ${Object.entries(report.peakRssKb)
      .map(([name, kb]) => `${name} ${(kb / 1024).toFixed(1)} MB`).join(', ')}`),
    ...Object.entries(reports).flatMap(([question, report]) => report.problems.map((problem) => `${question}: PROBLEM: ${problem}`))
  ].join('\n') + '\n'
}

const started = performance.now()
const reports: Record<string, Report> = {}
for (const name of (positionals.length === 0 ? Object.keys(questions) : positionals) as Array<keyof typeof questions>) {
  const report = reports[name] = newReport()
  await questions[name](options, report).catch((err: unknown) => { report.problems.push(`run failed: ${(err as Error).stack ?? String(err)}`) })
  // what a failed run left behind, and its databases
  await cleanUp()
}
const seconds = Math.round((performance.now() - started) / 1000)
progress(`done in ${seconds} s`)
process.stdout.write(values.json === true ? `${JSON.stringify({ machine, options, seconds, ...reports }, null, 2)}\n` : table(reports))
process.exit(Object.values(reports).some((report) => report.problems.length > 0) ? 1 : 0)
