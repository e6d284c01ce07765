// `npm run bench:live` end to end, small: cred and the raw broadcast each deliver every event to
// every stream, measured alike, the streams spread over client processes. The numbers mean
// nothing at this size. Runs the built script (dist/: run `npm run build` first).
import type { RowDataPacket } from 'mysql2'
import t from 'tap'
import { mariadbAdmin, mariadbUnavailable, postgresAdmin, postgresUnavailable } from '../../helper.js'
import { runBench } from '../../process-helper.js'

t.setTimeout(300_000)
// each run makes its own servers and databases: the short ones go beside the long one
t.jobs = 3

const databases = () => postgresAdmin(async (sql) =>
  (await sql<Array<{ name: string }>>`select datname as name from pg_database where datname like 'cred_bench_live_%'`).map((row) => row.name))
const mariadbDatabases = async () => (await mariadbAdmin((connection) => connection.query<RowDataPacket[]>(
  "select schema_name as name from information_schema.schemata where schema_name like 'cred\\_bench\\_live\\_%'")))[0].map((row) => String(row.name))

interface Phase {
  run: string
  server: string
  streams: { opened: number, failed: number, perInstance: number }
  events: { posted: number, failed: number }
  deliveries: { expected: number, received: number, lost: number, duplicates: number, outOfOrder: number, unexpected: number, closedEarly: number }
  latencyMs: { p50: number, p90: number, p99: number, max: number }
  rssKb: Record<'beforeStreams' | 'withStreams' | 'afterEvents', Array<number | null>>
  cpuPercent: { servers: number | null, clients: number | null }
  serverOpenFiles: Array<number | null>
  problems: string[]
}

t.test('cred and the raw broadcast, on SQLite and over two PostgreSQL and two MariaDB instances', async (t) => {
  const withPostgres = postgresUnavailable === null
  const withMariadb = mariadbUnavailable === null
  const before = withPostgres ? await databases() : []
  const beforeMariadb = withMariadb ? await mariadbDatabases() : []
  // 30 streams over 3 client processes of at most 12
  const { code, stdout, stderr } = await runBench(t, 'live', ['--json', '--streams', '30', '--events', '8', '--rate', '20', '--per-client', '12', '--drain', '5',
    ...(withPostgres ? [] : ['--no-postgres']), ...(withMariadb ? [] : ['--no-mariadb'])])
  t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
  const out = JSON.parse(stdout) as { phases: Phase[] }
  const layouts = [['sqlite', 1], ...(withPostgres ? [['postgresql', 2]] : []), ...(withMariadb ? [['mariadb', 2]] : [])] as const
  t.same(out.phases.map((phase) => `${phase.run} ${phase.server}`), layouts.flatMap(([run]) => [`${run} cred`, `${run} raw`]), 'cred, then the raw broadcast, on each')
  for (const phase of out.phases) {
    const what = `${phase.run} ${phase.server}`
    const instances = phase.run === 'sqlite' ? 1 : 2
    t.same(phase.problems, [], `${what}: no problems`)
    t.same({ ...phase.streams, openSeconds: undefined }, { opened: 30, failed: 0, perInstance: 30 / instances, openSeconds: undefined }, `${what}: every stream opened`)
    t.same(phase.events, { posted: 8, failed: 0 }, `${what}: every event posted`)
    // 30 streams: 1 of every event (8), 29 of one of the 4 names each, each name posted twice (2 × 29)
    t.same(phase.deliveries, { expected: 66, received: 66, lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, closedEarly: 0 }, `${what}: every delivery once`)
    const { p50, p90, p99, max } = phase.latencyMs
    t.ok(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max, `${what}: latencies ${p50} ≤ ${p90} ≤ ${p99} ≤ ${max} ms`)
    for (const [when, values] of Object.entries(phase.rssKb)) t.ok(values.length === instances && values.every((kb) => kb !== null && kb > 10_000), `${what}: RSS ${when} of each instance`)
    t.ok(phase.serverOpenFiles.every((files) => files !== null && files > 30 / instances), `${what}: open files, a socket per stream at least`)
    t.ok(phase.cpuPercent.servers !== null && phase.cpuPercent.servers >= 0 && phase.cpuPercent.clients !== null, `${what}: CPU of the servers and the client processes`)
  }
  t.match(stdout, /"openFilesLimit": \d+/)
  if (withPostgres) t.same(await databases(), before, 'its database dropped afterwards')
  if (withMariadb) t.same(await mariadbDatabases(), beforeMariadb, 'the MariaDB one too')
})

t.test('the table names the p99 of each against the other', async (t) => {
  const { code, stdout, stderr } = await runBench(t, 'live', ['--no-postgres', '--no-mariadb', '--streams', '8', '--events', '4', '--rate', '20', '--drain', '5'])
  t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
  t.match(stdout, /^latency p99 +[\d.]+ ms +[\d.]+ ms$/m)
  t.match(stdout, /^sqlite: p99 [\d.]+ ms against the raw broadcast's [\d.]+ ms: [\d.]+x$/m)
})

t.test('--help; a bad option is refused with the usage', async (t) => {
  const help = await runBench(t, 'live', ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: npm run bench:live/)
  const bad = await runBench(t, 'live', ['--streams', 'many'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--streams must be a number >= 1\nUsage: npm run bench:live/)
})
