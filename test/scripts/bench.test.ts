// `npm run bench` end to end, short: every workload on every server, no errors, each ratio
// from the baseline measured beside that server, and nothing left behind. Runs the built
// script (dist/: run `npm run build` first).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { postgresAdmin, postgresUnavailable } from '../helper.js'

const script = fileURLToPath(new URL('../../dist/scripts/bench/bench.js', import.meta.url))
if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` before these tests`)

t.setTimeout(240_000)

interface Outcome { code: number | null, stdout: string, stderr: string }

function bench (args: string[]): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

interface Cell {
  server: string
  beside?: string
  workload: string
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  requests: number
  errors: number
  serverCpuUsPerRequest: number | null
  ratioToBaseline: number | null
  smallTableP99Ms?: number
}

const benchDatabases = () => postgresAdmin(async (sql) =>
  (await sql<Array<{ name: string }>>`select datname as name from pg_database where datname like 'cred_bench_%'`).map((row) => row.name))

t.test('a short run measures every workload on every server, each beside the baseline', async (t) => {
  const withPostgres = postgresUnavailable === null
  const databasesBefore = withPostgres ? await benchDatabases() : []
  const { code, stdout, stderr } = await bench([
    '--json', '--duration', '1', '--small', '60', '--big', '300', '--warmup', '20', ...(withPostgres ? [] : ['--no-postgres'])
  ])
  t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
  const out = JSON.parse(stdout) as {
    servers: Array<{ server: string, skipped?: string, peakRssKb: number | null, problems: string[], seedSeconds?: Record<string, number> }>
    results: Cell[]
    metricsRounds: Array<{ on: number, off: number, onCpuUs: number | null, offCpuUs: number | null }>
    metricsCostPercent: number | null
    metricsCpuCostPercent: number | null
    p99GrowthWithBigTable: Record<string, { events: number, poll: number } | null>
  }

  const credServers = withPostgres ? ['sqlite', 'postgresql'] : ['sqlite']
  const find = (server: string, workload: string, beside?: string) =>
    out.results.find((cell) => cell.server === server && cell.workload === workload && cell.beside === beside)
  for (const server of credServers) {
    for (const workload of ['events', 'post', 'poll', 'clients', 'events-big', 'poll-big']) {
      const cell = find(server, workload)
      t.ok(cell !== undefined && cell.requests > 0 && cell.errors === 0, `${server} ${workload}: answered, no errors`)
      t.ok(cell !== undefined && cell.latencyP50Ms > 0 && cell.latencyP99Ms >= cell.latencyP50Ms, `${server} ${workload}: latencies`)
    }
    for (const workload of ['events', 'post', 'poll', 'clients']) {
      const base = find('baseline', workload, server)
      const cell = find(server, workload)
      t.ok(base !== undefined && base.requests > 0 && base.errors === 0, `baseline ${workload} measured beside ${server}`)
      if (base === undefined || cell === undefined) continue
      t.equal(cell.ratioToBaseline, Math.round(cell.requestsPerSecond / base.requestsPerSecond * 1000) / 1000,
        `${server} ${workload}: ratio to the baseline beside it`)
    }
    // workload 5: on a second server with the big table, in turns with the first, and its p99
    // compared with the first server's in the same turns
    const growth = out.p99GrowthWithBigTable[server]
    for (const workload of ['events-big', 'poll-big'] as const) {
      const cell = find(server, workload)
      const small = cell?.smallTableP99Ms
      t.ok(small !== undefined && small > 0, `${server} ${workload}: p99 of the first server's turns`)
      if (cell === undefined || small === undefined || growth === null || growth === undefined) continue
      t.equal(growth[workload === 'events-big' ? 'events' : 'poll'], Math.round(cell.latencyP99Ms / small * 100) / 100, `${server} ${workload}: p99 growth`)
    }
    t.ok(growth !== null && growth !== undefined, `${server}: p99 growth of workload 5`)
    const result = out.servers.find((entry) => entry.server === server)
    const big = out.servers.find((entry) => entry.server === `${server}-big`)
    for (const [entry, what] of [[result, server], [big, `${server}-big`]] as const) {
      t.same(entry?.problems, [], `${what}: no problems`)
      t.ok((entry?.peakRssKb ?? 0) > 0, `${what}: peak RSS`)
    }
    t.same(Object.keys(result?.seedSeconds ?? {}), ['50'], `${server}: seeded up to the small size`)
    t.same(Object.keys(big?.seedSeconds ?? {}).sort(), ['300', '50'], `${server}-big: seeded up to both sizes`)
  }
  t.notOk(out.results.some((cell) => cell.server === 'baseline' && !credServers.includes(cell.beside ?? '')), 'every baseline cell names its server')
  // each row's server process, read from /proc: a wrong pid would read nothing (null) or another
  // process's idle time (0), and a request costs far less than 100 ms of CPU
  for (const cell of out.results) {
    const cpu = cell.serverCpuUsPerRequest
    t.ok(cpu !== null && cpu > 0 && cpu < 100_000, `${cell.server}${cell.beside === undefined ? '' : ` beside ${cell.beside}`} ${cell.workload}: CPU per request (${cpu} µs)`)
  }
  t.equal(out.metricsRounds.length, 6, 'six metrics rounds')
  t.ok(out.metricsRounds.every((round) => round.on > 0 && round.off > 0))
  t.type(out.metricsCostPercent, 'number')
  t.ok(out.metricsRounds.every((round) => (round.onCpuUs ?? 0) > 0 && (round.offCpuUs ?? 0) > 0), 'CPU per request of both servers in every round')
  t.type(out.metricsCpuCostPercent, 'number')
  t.ok((find('sqlite-metrics-off', 'events')?.requests ?? 0) > 0, 'the metrics-off row')
  if (!withPostgres) t.match(out.servers.find((entry) => entry.server === 'postgresql')?.skipped, /--no-postgres/)
  else t.same(await benchDatabases(), databasesBefore, 'its database dropped afterwards')
})

t.test('--help, and a bad option is refused with the usage', async (t) => {
  const help = await bench(['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: npm run bench/)
  const bad = await bench(['--duration', 'soon'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /duration/)
  t.match(bad.stderr, /Usage: npm run bench/)
})
