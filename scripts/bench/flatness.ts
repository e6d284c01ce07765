// Whether reads stay flat as the table grows: workloads 1 and 3 on a cred-server with `big`
// events in turns with one set up alike with `small`, their p99 compared through the same moments.
import { freshBenchDatabase, inTurns, startCred, type Options, type Report } from './http-load.js'

export async function flatness (options: Options, report: Report): Promise<void> {
  const growth: Record<string, Record<string, number>> = report.p99Growth = {}
  for (const kind of options.kinds) {
    const start = async (name: string) => startCred(report, name, await freshBenchDatabase(kind, options), { small: options.small, clients: 2 })
    const [small, big] = await Promise.all([start(kind), start(`${kind}-big`)])
    try {
      await big.seedUpTo(options.big)
      const [smallTargets, bigTargets] = [await small.targets(), await big.targets()]
      for (const workload of ['events', 'poll'] as const) {
        // both new to the workload: warmed up a while, so that V8 has compiled its path
        await inTurns(report, workload, [{ target: bigTargets[workload], share: 1 }, { target: smallTargets[workload], share: 0.5 }],
          { seconds: options.duration, turns: options.turns, connections: options.connections, warmup: options.warmup, warmSeconds: options.duration / 4 })
        const [bigRow, smallRow] = report.rows.slice(-2)
        growth[kind] = { ...growth[kind], [workload]: Math.round(bigRow!.latencyP99Ms / smallRow!.latencyP99Ms * 100) / 100 }
      }
      report.notes.push(`${kind}: p99 with ${options.big.toLocaleString('en-US')} events against ${options.small.toLocaleString('en-US')} (same turns): ` +
        `workload 1 ${growth[kind]!.events}x, workload 3 ${growth[kind]!.poll}x (target at most 1.5x)`)
    } finally {
      await big.stop()
      await small.stop()
    }
  }
}
