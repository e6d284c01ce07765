#!/usr/bin/env node
// `npm run bench:live`: live delivery on cred-server against a raw node:http SSE broadcast
// (baseline.js sse), as the usage below says. With two instances half the deliveries go from
// one to the other: through LISTEN/NOTIFY on PostgreSQL, MariaDB's poll for new events.
import { fork, type ChildProcess } from 'node:child_process'
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import {
  authenticate, cleanUp, cleanUpOnSignals, commandLine, cpuSeconds, createKey, databasesToRun, expectJson, formatTable, freshDatabase, inParallel, kindLabels, machine, machineLine, machineBusySeconds,
  openFiles, openFilesLimit, progress, serverOptions, quantile, rssKb, sleep, sorted, startServer, stopProcess, tempDir, track, writeConfig, type DatabaseConfig, type Kind, type ServerProcess
} from './harness.js'
import { newReport, startBaseline } from './http-load.js'
import type { FromClient, StreamSpec, Tally, ToClient } from './live-client.js'

const { values, number } = commandLine('bench:live', `Usage: npm run bench:live -- [options]   (node dist/scripts/bench/live.js after npm run build)

Opens event streams on cred-server (one on SQLite; two on PostgreSQL and two on MariaDB, the
streams split between them, the events posted to the first), 1 % of them on /events/stream, the others
subscribed to one name each; posts events at a steady rate and times every delivery; then the
same with a raw node:http SSE broadcast. Reports latency, loss, the servers' RSS and CPU.
`, {
  streams: ['N', '1000', 'streams to open in all'],
  names: ['N', '4', 'event names, one per subscribed stream in turn'],
  events: ['N', '100', 'events to post'],
  rate: ['N', '10', 'events posted per second'],
  warmup: ['N', '10', 'events posted first at the same rate, not measured'],
  'per-client': ['N', '5000', 'streams per client process'],
  drain: ['S', '10', 'seconds to wait for the last deliveries'],
  ...serverOptions,
  'no-sqlite': ['', null, 'skip SQLite'],
  'cpu-prof': ['DIR', null, 'run the cred-servers with node --cpu-prof, writing profiles to DIR'],
  'time-limit': ['S', '600', 'give up (and clean up) after S seconds'],
  json: ['', null, 'print JSON instead of a table']
}, { tail: 'Exits 1 when a delivery is lost or duplicated, or something failed.' })
const options = {
  streams: Math.floor(number('streams', 1)),
  names: Math.floor(number('names', 1)),
  events: Math.floor(number('events', 1)),
  rate: number('rate', 0.1),
  warmup: Math.floor(number('warmup', 0)),
  perClient: Math.floor(number('per-client', 1)),
  drainMs: number('drain', 0) * 1000,
  nodeArgs: typeof values['cpu-prof'] === 'string' ? ['--cpu-prof', '--cpu-prof-dir', resolve(values['cpu-prof'])] : []
}
cleanUpOnSignals(() => {}, number('time-limit', 1))
const { kinds, urls } = await databasesToRun(values, values['no-sqlite'] !== true)

/** One server (cred, or the raw broadcast) holding the streams and delivering the events. */
interface Phase {
  run: Kind
  server: 'cred' | 'raw'
  streams: { opened: number, failed: number, perInstance: number, openSeconds: number }
  events: { posted: number, failed: number }
  deliveries: Tally & { expected: number }
  latencyMs: { p50: number, p90: number, p99: number, max: number }
  /** per instance, in KiB: cred's after a full GC */
  rssKb: Record<'beforeStreams' | 'withStreams' | 'afterEvents', number[]>
  /** while delivering, % of one core: the servers, the client processes, and the rest of the machine */
  cpuPercent: { servers: number, clients: number, other: number }
  serverOpenFiles: number[]
  problems: string[]
}

interface Instance { origin: string, pid: number, rss: () => Promise<number> }

/** A layout to measure: the instances, the streams to open on them, and how an event is posted. */
interface Layout { instances: Instance[], specs: StreamSpec[], post: (body: object) => Promise<number> }

const names = Array.from({ length: options.names }, (_, i) => `Bench${i}`)
/** each stream's event name (null: every event), in order; stream i goes to instance i % instances */
const allStreams = Math.max(1, Math.round(options.streams / 100))
const plan = Array.from({ length: options.streams }, (_, i) => i < allStreams ? null : names[i % names.length]!)

async function measure (run: Phase['run'], server: Phase['server'], layout: Layout): Promise<Phase> {
  const problems: string[] = []
  const { instances } = layout
  const beforeStreams = await Promise.all(instances.map((instance) => instance.rss()))
  progress(`${run}, ${server}: opening ${options.streams} streams on ${instances.length} instance(s)`)
  const clients: ChildProcess[] = []
  for (let at = 0; at < layout.specs.length; at += options.perClient) {
    clients.push(track(fork(fileURLToPath(new URL('./live-client.js', import.meta.url)), [], { serialization: 'advanced', stdio: 'inherit' })))
  }
  const ask = <T extends FromClient['type']>(client: ChildProcess, message: ToClient, answer: T) =>
    new Promise<Extract<FromClient, { type: T }>>((resolve, reject) => {
      const onMessage = (reply: FromClient) => { if (reply.type === answer) { client.off('message', onMessage); resolve(reply as Extract<FromClient, { type: T }>) } }
      client.on('message', onMessage).once('exit', (code) => reject(new Error(`a client process exited (${code})`)))
      client.send(message)
    })
  try {
    const openStarted = performance.now()
    const opened = await Promise.all(clients.map((client, i) =>
      ask(client, { type: 'open', streams: layout.specs.slice(i * options.perClient, (i + 1) * options.perClient) }, 'opened')))
    const openSeconds = (performance.now() - openStarted) / 1000
    const failed = opened.reduce((sum, reply) => sum + reply.failed.length, 0)
    if (failed > 0) problems.push(`${failed} streams failed to open, e.g. ${opened.flatMap((reply) => reply.failed)[0]}`)
    await sleep(1000)
    const withStreams = await Promise.all(instances.map((instance) => instance.rss()))
    const serverOpenFiles = instances.map((instance) => openFiles(instance.pid))

    progress(`${run}, ${server}: posting ${options.warmup} + ${options.events} events at ${options.rate}/s`)
    // the first deliveries through cold code are not what is measured: the clients ignore these
    for (let i = 0; i < options.warmup; i++) {
      await Promise.all([layout.post({ event: { name: names[i % names.length], location: 'Bench', action: 'bench', value: 'warm-up' } }), sleep(1000 / options.rate)])
    }
    await sleep(500)
    const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
    const cpu = () => {
      const { user, system } = process.cpuUsage()
      const [servers, clientsCpu] = [cpuOf(instances.map(({ pid }) => pid)), cpuOf(clients.map(({ pid }) => pid!))]
      return { servers, clients: clientsCpu, other: machineBusySeconds() - servers - clientsCpu - (user + system) / 1e6 }
    }
    const before = cpu()
    const started = performance.now()
    const posted: Array<[number, string]> = []
    let postFailed = 0
    const posts: Array<Promise<void>> = []
    for (let i = 0; i < options.events; i++) {
      const wait = started + i * 1000 / options.rate - performance.now()
      if (wait > 1) await sleep(wait)
      const name = names[i % names.length]!
      posts.push(layout.post({ event: { name, location: 'Bench', action: 'bench', value: String(performance.timeOrigin + performance.now()) } })
        .then((id) => { posted.push([id, name]) }, (err: Error) => { if (postFailed++ === 0) problems.push(`POST /events: ${err.message}`) }))
    }
    await Promise.all(posts)
    if (postFailed > 0) problems.push(`${postFailed} of ${options.events} posts failed`)
    const results = await Promise.all(clients.map((client) => ask(client, { type: 'finish', posted, drainMs: options.drainMs }, 'result')))
    const seconds = (performance.now() - started) / 1000
    const after = cpu()
    const percent = (key: keyof typeof after) => Math.max(0, Math.round((after[key] - before[key]) / seconds * 100))
    await sleep(500)
    const afterEvents = await Promise.all(instances.map((instance) => instance.rss()))

    const latencies = sorted(...results.map((result) => result.latencies))
    const tally = (key: keyof Tally) => results.reduce((sum, result) => sum + result.tally[key], 0)
    const deliveries = { expected: 0, received: tally('received'), lost: tally('lost'), duplicates: tally('duplicates'), outOfOrder: tally('outOfOrder'), unexpected: tally('unexpected'), closedEarly: tally('closedEarly') }
    const subscribers = (name: string) => plan.filter((wanted) => wanted === null || wanted === name).length
    deliveries.expected = posted.reduce((sum, [, name]) => sum + subscribers(name), 0)
    for (const key of ['lost', 'duplicates', 'outOfOrder', 'unexpected', 'closedEarly'] as const) {
      if (deliveries[key] > 0) problems.push(`${deliveries[key]} deliveries ${key === 'closedEarly' ? 'on streams the server closed early' : `${key} (of ${deliveries.expected})`}`)
    }
    return {
      run,
      server,
      streams: { opened: opened.reduce((sum, reply) => sum + reply.opened, 0), failed, perInstance: Math.ceil(options.streams / instances.length), openSeconds: Math.round(openSeconds * 10) / 10 },
      events: { posted: posted.length, failed: postFailed },
      deliveries,
      latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
      rssKb: { beforeStreams, withStreams, afterEvents },
      cpuPercent: { servers: percent('servers'), clients: percent('clients'), other: percent('other') },
      serverOpenFiles,
      problems
    }
  } finally {
    await Promise.all(clients.map((client) => { client.send({ type: 'close' } satisfies ToClient); return stopProcess(client) }))
  }
}

/** A run: cred's instances on `database` (two on PostgreSQL or MariaDB), then the raw broadcast laid out alike. */
async function runOn (run: Phase['run'], database: DatabaseConfig): Promise<Phase[]> {
  const count = run === 'sqlite' ? 1 : 2
  const dir = tempDir()
  // every stream is a session of the same key: the per-key limit must allow them all
  const config = writeConfig(dir, 'cred', database, { maxStreamsPerKey: options.streams + 10 })
  const servers: ServerProcess[] = []
  const phases: Phase[] = []
  try {
    for (let i = 0; i < count; i++) {
      progress(`${run}: starting cred-server ${i + 1} of ${count}`)
      servers.push(await startServer({ label: `${run} ${i + 1}`, args: ['--config', config, '--log-level', 'warn'], gc: true, nodeArgs: options.nodeArgs }))
    }
    const [writeKey, readKey] = [await createKey(config, 'write'), await createKey(config, 'read')]
    const poster = await authenticate(servers[0]!.origin, writeKey, 'bench poster')
    progress(`${run}: authenticating ${options.streams} clients`)
    const sessions = await inParallel(plan, 16, async (name, i) => {
      const on = servers[i % count]!
      const session = await authenticate(on.origin, readKey, `bench ${i}`, name === null ? {} : { subscribe: { [name]: {} } })
      return { url: `${on.origin}${name === null ? '/events/stream' : `/clients/${session.id}/subscribedevents/stream`}`, headers: session.headers, name }
    })
    const rss = (server: ServerProcess) => async () => {
      await server.collectGarbage()
      await sleep(200)
      return rssKb(server.pid)
    }
    phases.push(await measure(run, 'cred', {
      instances: servers.map((server) => ({ origin: server.origin, pid: server.pid, rss: rss(server) })),
      specs: sessions,
      post: async (body) => (await expectJson(201, `${servers[0]!.origin}/events`, { method: 'POST', body, headers: poster.headers })).event.id
    }))
    for (const server of servers) for (const line of server.warnings().slice(0, 5)) phases[0]!.problems.push(`server log: ${line.msg}`)
  } finally {
    for (const server of servers) await server.stop()
  }
  const report = newReport()
  const raw = await Promise.all(Array.from({ length: count }, (_, i) => startBaseline(report, `raw ${i + 1}`, ['sse'])))
  try {
    phases.push(await measure(run, 'raw', {
      instances: raw.map((instance) => ({ origin: instance.origin, pid: instance.pid, rss: async () => rssKb(instance.pid) })),
      specs: plan.map((name, i) => ({ url: `${raw[i % count]!.origin}/stream${name === null ? '' : `?name=${name}`}`, headers: {}, name })),
      post: async (body) => (await Promise.all(raw.map((instance) => expectJson(201, `${instance.origin}/events`, { method: 'POST', body }))))[0].event.id
    }))
  } finally {
    for (const instance of raw) await instance.stop()
  }
  return phases
}

function table (phases: Phase[], note: string): string {
  const mb = (values: number[]) => values.map((kb) => (kb / 1024).toFixed(1)).join(' / ') + ' MB'
  const ms = (value: number) => `${value} ms`
  const rows: Array<[string, (phase: Phase) => string]> = [
    ['streams (per instance)', (p) => `${p.streams.opened.toLocaleString('en-US')} (${p.streams.perInstance.toLocaleString('en-US')})`],
    ['  opened in', (p) => `${p.streams.openSeconds} s`],
    ['events posted', (p) => `${p.events.posted} at ${options.rate}/s`],
    ['deliveries expected / received', (p) => `${p.deliveries.expected.toLocaleString('en-US')} / ${p.deliveries.received.toLocaleString('en-US')}`],
    ['lost / duplicate / out of order', (p) => `${p.deliveries.lost} / ${p.deliveries.duplicates} / ${p.deliveries.outOfOrder}`],
    ['latency p50', (p) => ms(p.latencyMs.p50)],
    ['latency p90', (p) => ms(p.latencyMs.p90)],
    ['latency p99', (p) => ms(p.latencyMs.p99)],
    ['latency max', (p) => ms(p.latencyMs.max)],
    ['server RSS before streams', (p) => mb(p.rssKb.beforeStreams)],
    ['server RSS with streams', (p) => mb(p.rssKb.withStreams)],
    ['server RSS after events', (p) => mb(p.rssKb.afterEvents)],
    ['server CPU while delivering', (p) => `${p.cpuPercent.servers} % of a core`],
    ['client processes\' CPU', (p) => `${p.cpuPercent.clients} % of a core`],
    ['other CPU meanwhile', (p) => `${p.cpuPercent.other} % of a core`],
    ['server open files', (p) => p.serverOpenFiles.join(' / ')]
  ]
  const header = ['', ...phases.map((p) => `${kindLabels[p.run]}${p.run === 'sqlite' ? '' : ', 2 instances'}: ${p.server === 'cred' ? 'cred' : 'raw node:http'}`)]
  const out = [
    `cred live delivery: ${machineLine}; ${note}`,
    'cred\'s RSS is read after a full GC; the raw broadcast\'s without. Other CPU: the rest of the machine (PostgreSQL, anything else).',
    '',
    ...formatTable([header, ...rows.map(([label, cell]) => [label, ...phases.map(cell)])], 1, '   '),
    ''
  ]
  for (const cred of phases.filter((p) => p.server === 'cred')) {
    const raw = phases.find((p) => p.run === cred.run && p.server === 'raw')
    if (raw !== undefined) out.push(`${cred.run}: p99 ${cred.latencyMs.p99} ms against the raw broadcast's ${raw.latencyMs.p99} ms: ${Math.round(cred.latencyMs.p99 / raw.latencyMs.p99 * 100) / 100}x`)
  }
  for (const phase of phases) for (const problem of phase.problems) out.push(`${phase.run}, ${phase.server}: PROBLEM: ${problem}`)
  return `${out.join('\n')}\n`
}

// Node raises its soft limit of open files to the hard one: that is what counts, per process
const limit = openFilesLimit()
const busiest = Math.ceil(options.streams / (kinds.includes('sqlite') ? 1 : 2)) + 64
const note = `open files: at most ${limit} per process; the busiest server needs about ${busiest}, each client process about ${Math.min(options.perClient, options.streams) + 64}`
if (limit < busiest) progress(`${note}: TOO FEW, raise the hard limit (ulimit -Hn, LimitNOFILE=)`)
const phases: Phase[] = []
try {
  for (const run of kinds) {
    try {
      phases.push(...await runOn(run, await freshDatabase(run, urls, 'cred_bench_live_')))
    } catch (err) {
      progress(`${run}: run failed: ${(err as Error).stack ?? String(err)}`)
      process.exitCode = 1
    }
  }
} finally {
  await cleanUp()
}
process.stdout.write(values.json === true
  ? `${JSON.stringify({ machine, options, openFilesLimit: limit, phases }, null, 2)}\n`
  : table(phases, note))
process.exit(process.exitCode === 1 || phases.some((phase) => phase.problems.length > 0) ? 1 : 0)
