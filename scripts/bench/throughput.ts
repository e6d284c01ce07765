// How fast cred answers each workload against baselines measured in the same turns: a bare
// Fastify app answering cred's answers from memory (every workload), a bare route making the
// same durable write (posts), and on SQLite cred-server with its default logging (workload 1).
import { expectJson } from './harness.js'
import {
  durableArgs, fixturesFile, freshBenchDatabase, inTurns, startBaseline, startCred, startCredServer, type Options, type Report, type Target
} from './http-load.js'

/** The share of the durable-write baseline's posts/s cred should reach. */
const postTargets = { sqlite: 80, postgresql: 70, mariadb: 70 }

export async function throughput (options: Options, report: Report): Promise<void> {
  let bare: Awaited<ReturnType<typeof startBaseline>> | undefined
  let fixtures = ''
  for (const kind of options.kinds) {
    const database = await freshBenchDatabase(kind, options)
    const cred = await startCred(report, kind, database, options)
    const stops = [cred.stop]
    try {
      let own = await cred.targets()
      if (bare === undefined) {
        const answer = ({ url, method = 'GET', headers, body }: Target) => expectJson(method === 'POST' ? 201 : 200, url, { method, headers, body: body === undefined ? undefined : JSON.parse(body) })
        fixtures = fixturesFile({ events: await answer(own.events), subscribed: await answer(own.poll), clients: await answer(own.clients), created: await answer(own.post) })
        bare = await startBaseline(report, 'baseline', ['http', fixtures])
        // the fixture's post made a newer event: workload 3 asks after it again, so that nothing is new
        own = await cred.targets()
      }
      const base = await cred.targets('baseline', bare)
      const turns = { seconds: options.duration, turns: options.turns, connections: options.connections, warmup: options.warmup, ratiosTo: ['baseline'] }
      const reads = [{ target: own.events, share: 1 }, { target: base.events, share: 0.5 }]
      if (kind === 'sqlite') {
        // cred-server as installed, logging a line per request (the others run at --log-level warn)
        const logging = await startCredServer(report, 'sqlite-logging', database, { logLevel: null })
        stops.push(logging.stop)
        reads.splice(1, 0, { target: (await cred.targets('sqlite-logging', logging.server)).events, share: 1 })
      }
      await inTurns(report, 'events', reads, turns)
      for (const workload of ['poll', 'clients'] as const) {
        await inTurns(report, workload, [{ target: own[workload], share: 1 }, { target: base[workload], share: 0.5 }], turns)
      }

      // last, so that the posted events do not change the table for the rows above
      const durable = await startBaseline(report, `durable-${kind}`, ['http', fixtures, '--client-id', String(cred.posterId), ...durableArgs(database)])
      stops.push(durable.stop)
      const durablePost = (await cred.targets(`durable-${kind}`, durable)).post
      for (const connections of options.postConnections) {
        await inTurns(report, 'post', [{ target: own.post, share: 1 }, { target: durablePost, share: 1 }, { target: base.post, share: 0.5 }],
          { ...turns, connections, ratiosTo: ['baseline', `durable-${kind}`] })
      }
    } finally {
      for (const stop of stops.reverse()) await stop()
    }
  }
  await bare?.stop()

  const row = (server: string) => report.rows.find((row) => row.server === server && row.workload === 'events')
  const [atWarn, logging] = [row('sqlite'), row('sqlite-logging')]
  if (atWarn !== undefined && logging !== undefined) {
    report.notes.push(`default logging: ${Math.round((1 - logging.requestsPerSecond / atWarn.requestsPerSecond) * 1000) / 10} % fewer req/s on workload 1 ` +
      `than at --log-level warn (${logging.requestsPerSecond.toLocaleString('en-US')} against ${atWarn.requestsPerSecond.toLocaleString('en-US')}, same turns)`)
  }
  for (const post of report.rows.filter((row) => row.workload === 'post' && row.ratios[`durable-${row.server}`] !== undefined)) {
    const [ratio, target] = [post.ratios[`durable-${post.server}`]! * 100, postTargets[post.server as keyof typeof postTargets]]
    report.notes.push(`posts on ${post.server}, ${post.connections} connections: cred at ${Math.round(ratio * 10) / 10} % of the durable-write baseline (target ${target} %: ${ratio >= target ? 'met' : 'missed'})`)
  }
}
