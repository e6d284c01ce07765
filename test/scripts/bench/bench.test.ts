// `npm run bench` end to end, short: every question's rows on every server, well-formed numbers,
// each ratio from the rows of its own turns, nothing left behind. The numbers mean nothing at
// these sizes. Runs the built script (dist/: run `npm run build` first).
import type { RowDataPacket } from 'mysql2'
import t, { type Test } from 'tap'
import { mariadbAdmin, mariadbUnavailable, postgresAdmin, postgresUnavailable } from '../../helper.js'
import { runBench } from '../../process-helper.js'
import type { Report } from '../../../scripts/bench/http-load.js'

t.setTimeout(240_000)
// each run makes its own servers, files and databases: the short ones go beside the long one
t.jobs = 3

const bench = (t: Test, args: string[]) => runBench(t, 'bench', args)
const withPostgres = postgresUnavailable === null
const withMariadb = mariadbUnavailable === null
/** The benchmark's databases on the servers that answer. */
const benchDatabases = async () => {
  const postgres = withPostgres ? await postgresAdmin((sql) => sql`select datname as name from pg_database where datname like 'cred_bench_http_%'`) : []
  const mariadb = withMariadb
    ? (await mariadbAdmin((connection) => connection.query<RowDataPacket[]>(
        "select schema_name as name from information_schema.schemata where schema_name like 'cred\\_bench\\_http\\_%'")))[0]
    : []
  return [...postgres, ...mariadb].map((row) => String(row.name))
}

type Out = {
  throughput: Report,
  flatness: Report & { p99Growth: Record<string, Record<string, number>> },
  metrics: Report & { rounds: Array<{ on: number, off: number, onCpuUs: number | null, offCpuUs: number | null }>, costPercent: number, cpuCostPercent: number }
}
/** Two runs' reports of a question as one. */
const merged = <R extends Report>(a: R, b: R): R => ({
  ...a, ...b, rows: [...a.rows, ...b.rows], notes: [...a.notes, ...b.notes], problems: [...a.problems, ...b.problems], peakRssKb: { ...a.peakRssKb, ...b.peakRssKb }
})

t.test('a short run answers every question on every server, in turns', async (t) => {
  const before = await benchDatabases()
  const args = ['--json', '--duration', '0.4', '--turns', '2', '--small', '40', '--big', '200', '--clients', '6', '--warmup', '10', '--connections', '4', '--post-connections', '4,8']
  // MariaDB's rows in a second run beside the first, so that the file keeps within tap's time limit
  const runs = await Promise.all([
    bench(t, [...args, '--no-mariadb', ...(withPostgres ? [] : ['--no-postgres'])]),
    ...(withMariadb ? [bench(t, ['throughput', 'flatness', ...args, '--no-sqlite', '--no-postgres'])] : [])
  ])
  for (const { code, stderr } of runs) t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
  const [first, second] = runs.map(({ stdout }) => JSON.parse(stdout) as Out) as [Out, Out?]
  const out = second === undefined
    ? first
    : { ...first, throughput: merged(first.throughput, second.throughput), flatness: { ...merged(first.flatness, second.flatness), p99Growth: { ...first.flatness.p99Growth, ...second.flatness.p99Growth } } }
  const kinds = ['sqlite', ...(withPostgres ? ['postgresql'] : []), ...(withMariadb ? ['mariadb'] : [])]
  for (const report of [out.throughput, out.flatness, out.metrics]) {
    t.same(report.problems, [], 'no problems')
    for (const row of report.rows) {
      const what = `${row.server} ${row.workload} ${row.connections}`
      t.ok(row.requests > 0 && row.errors === 0, `${what}: answered, no errors`)
      t.ok(row.latencyP50Ms > 0 && row.latencyP99Ms >= row.latencyP50Ms, `${what}: latencies`)
      // read from /proc (null where it could not be); a request costs far less than 100 ms of CPU
      t.ok(row.serverCpuUsPerRequest !== null && row.serverCpuUsPerRequest >= 0 && row.serverCpuUsPerRequest < 100_000, `${what}: CPU per request`)
      for (const [other, ratio] of Object.entries(row.ratios)) {
        const beside = report.rows.find((candidate) => candidate.server === other && candidate.workload === row.workload &&
          candidate.connections === row.connections && candidate.group.join() === row.group.join())
        t.equal(ratio, Math.round(row.requestsPerSecond / beside!.requestsPerSecond * 1000) / 1000, `${what}: ratio to ${other} of the same turns`)
      }
    }
    t.ok(Object.values(report.peakRssKb).every((kb) => kb !== null && kb > 0), 'peak RSS of every server')
    // a wrong pid would read another process's idle time: some CPU over each server's rows (in 10 ms ticks, a short row may read 0)
    for (const server of new Set(report.rows.map((row) => row.server))) {
      t.ok(report.rows.some((row) => row.server === server && row.serverCpuUsPerRequest > 0), `${server}: CPU used`)
    }
  }

  const row = (server: string, workload: string, connections = 4) =>
    out.throughput.rows.find((row) => row.server === server && row.workload === workload && row.connections === connections)
  for (const kind of kinds) {
    for (const workload of ['events', 'poll', 'clients']) t.ok(row(kind, workload)?.ratios.baseline !== undefined, `${kind} ${workload}: against the bare baseline`)
    for (const connections of [4, 8]) {
      const post = row(kind, 'post', connections)
      t.same(post?.group, [kind, `durable-${kind}`, 'baseline'], `${kind} posts at ${connections} connections: in turns with both baselines`)
      t.type(post?.ratios[`durable-${kind}`], 'number')
      t.type(post?.ratios.baseline, 'number', 'the bare route\'s ratio, for information')
      t.ok(out.throughput.notes.some((note) => note.startsWith(`posts on ${kind}, ${connections} connections: cred at `)), 'and the target is named')
    }
  }
  t.same(row('sqlite-logging', 'events')?.group, ['sqlite', 'sqlite-logging', 'baseline'], 'default logging in turns with cred at warn and the baseline')
  t.ok(out.throughput.notes.some((note) => /^default logging: -?[\d.]+ % fewer req\/s on workload 1/.test(note)))

  for (const kind of kinds) {
    for (const workload of ['events', 'poll']) {
      const big = out.flatness.rows.find((row) => row.server === `${kind}-big` && row.workload === workload)!
      const small = out.flatness.rows.find((row) => row.server === kind && row.workload === workload)!
      t.same(big.group, [`${kind}-big`, kind], `${kind} ${workload}: big and small table in the same turns`)
      t.equal(out.flatness.p99Growth[kind]![workload], Math.round(big.latencyP99Ms / small.latencyP99Ms * 100) / 100, `${kind} ${workload}: p99 growth`)
    }
    t.ok(out.flatness.notes.includes(`${kind}-big: seeded up to 200 events in ${/in ([\d.]+) s/.exec(out.flatness.notes.find((note) => note.startsWith(`${kind}-big: seeded`))!)![1]} s`))
  }

  t.equal(out.metrics.rounds.length, 2, 'a metrics round per turn')
  t.ok(out.metrics.rounds.every((round) => round.on > 0 && round.off > 0), 'each round answered on both servers')
  // (CPU is read in 10 ms ticks: one short round may read 0; the rounds together must show some)
  const cpu = (pick: (round: typeof out.metrics.rounds[number]) => number | null | undefined) => out.metrics.rounds.reduce((sum, round) => sum + (pick(round) ?? 0), 0)
  t.ok(cpu((round) => round.onCpuUs) > 0 && cpu((round) => round.offCpuUs) > 0, 'CPU per request over the rounds, on both')
  t.type(out.metrics.costPercent, 'number')
  t.type(out.metrics.cpuCostPercent, 'number')
  t.same(await benchDatabases(), before, 'its databases dropped afterwards')
})

t.test('one question alone, as a table', async (t) => {
  const { code, stdout, stderr } = await bench(t, ['metrics', '--no-postgres', '--no-mariadb', '--duration', '0.2', '--turns', '2', '--small', '30', '--warmup', '10'])
  t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
  t.match(stdout, /^metrics +cred, SQLite, metrics on +1 GET \/events +10 +[\d,]+ +[\d.]+ ms/m)
  t.notMatch(stdout, /^throughput/m, 'nothing else')
  t.match(stdout, /^metrics cost on workload 1 /m)
})

t.test('--help; a bad option or question is refused with the usage', async (t) => {
  const help = await bench(t, ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: npm run bench/)
  for (const args of [['--duration', 'soon'], ['speed']]) {
    const bad = await bench(t, args)
    t.equal(bad.code, 2)
    t.match(bad.stderr, args[0] === 'speed' ? /no question speed/ : /--duration must be a number/)
    t.match(bad.stderr, /Usage: npm run bench/)
  }
})
