// What the Prometheus metrics cost: workload 1 on two fresh cred-servers on one SQLite file,
// one with `metrics: false`, warmed up alike, then in turns.
import { cpuPerRequest, freshBenchDatabase, inTurns, startCred, startCredServer, type Options, type Report } from './http-load.js'

export async function metricsCost (options: Options, report: Report): Promise<void> {
  const database = await freshBenchDatabase('sqlite', options)
  // sets up the database and the sessions the other two use
  const setUp = await startCred(report, 'sqlite', database, { small: options.small, clients: 2 })
  await setUp.stop()
  const servers = await Promise.all([startCredServer(report, 'sqlite-metrics-on', database, { settings: { metrics: true } }),
    startCredServer(report, 'sqlite-metrics-off', database, { settings: { metrics: false } })])
  try {
    const entries = await Promise.all(servers.map(async ({ server }) => ({ target: (await setUp.targets(server.label, server)).events, share: 1 })))
    // after half of --duration of warm-up, turns of a quarter of it
    const [on, off] = await inTurns(report, 'events', entries,
      { seconds: options.duration * options.turns / 4, turns: options.turns, connections: options.connections, warmup: options.warmup, warmSeconds: options.duration / 2, ratiosTo: ['sqlite-metrics-off'] })
    const rate = (run: { count: number, seconds: number }) => Math.round(run.count / run.seconds)
    const rounds = report.rounds = on!.map((run, i) => ({ on: rate(run), off: rate(off![i]!), onCpuUs: cpuPerRequest(run), offCpuUs: cpuPerRequest(off![i]!) }))
    const [onRow, offRow] = report.rows.slice(-2) as [typeof report.rows[0], typeof report.rows[0]]
    report.costPercent = Math.round((1 - onRow.requestsPerSecond / offRow.requestsPerSecond) * 1000) / 10
    report.cpuCostPercent = Math.round((onRow.serverCpuUsPerRequest / offRow.serverCpuUsPerRequest - 1) * 1000) / 10
    report.notes.push(`metrics cost on workload 1 (SQLite, on against off, ${rounds.map((round) => `${round.on} vs ${round.off}`).join(', ')} req/s): ` +
      `${report.costPercent} % of req/s, ${report.cpuCostPercent} % more CPU per request (target under 5 %)`)
  } finally {
    for (const { stop } of servers) await stop()
  }
}
