#!/usr/bin/env node
// Live-delivery benchmark: opens N Server-Sent Events streams on a real cred-server, posts
// events at a steady rate, and measures post-to-receive latency over every delivery, loss,
// and the server's memory with the streams open — on SQLite (one instance) and, when
// PostgreSQL is reachable, across instances (streams on B, posts to A).
//
//   npm run bench:live -- [--streams 1000] [--events 200] [--json] ...   (builds first)
import { Agent, request, type IncomingMessage } from 'node:http'
import { cpus } from 'node:os'
import { resolve } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import {
  cleanUp, cleanUpOnSignals, cpuSeconds, createDatabase, createKey, inParallel, machineBusySeconds, openFiles, openFilesLimit,
  postgresDatabaseConfig, postgresProblem, progress, requestJson, rssKb, sleep, startOnFreePort, tempDir, numberOption, type DatabaseConfig, type ServerProcess } from './harness.js'
import { SseParser } from './sse.js'

const usage = `Usage: npm run bench:live -- [options]      (node dist/scripts/bench/live.js after npm run build)

Opens N event streams on a real cred-server, posts events at a steady rate, and reports
post-to-receive latency over all deliveries, lost deliveries, and the server's RSS before
and after opening the streams: on SQLite, then across two instances on PostgreSQL.

  --streams N          streams to open (default 1000)
  --all-streams N      of which on /events/stream, the rest on
                       /clients/{id}/subscribedevents/stream (default 1%, at least 1)
  --names N            event names the clients subscribe to, one each (default 4)
  --events N           events to post (default 200)
  --rate N             events posted per second (default 50)
  --drain-timeout S    seconds to wait for the last deliveries (default 10)
  --time-limit S       give up (and clean up) after S seconds in all (default 110)
  --postgres URL       PostgreSQL server for the cross-instance run
                       (default postgres://postgres@127.0.0.1:5432/postgres; a database
                       cred_bench_<random> is created there and dropped afterwards)
  --no-postgres        skip the PostgreSQL run
  --no-sqlite          skip the SQLite run
  --cpu-prof DIR       run the servers with node --cpu-prof, writing the profiles to DIR
                       (open them in Chrome DevTools); the latencies then suffer a little
  --json               print the results as JSON instead of a table
  -h, --help           show this help

Exits 1 when a delivery is lost or duplicated, or something failed.
`

const parseCommandLine = () => parseArgs({
  strict: true,
  options: {
    streams: { type: 'string', default: '1000' },
    'all-streams': { type: 'string' },
    names: { type: 'string', default: '4' },
    events: { type: 'string', default: '200' },
    rate: { type: 'string', default: '50' },
    'drain-timeout': { type: 'string', default: '10' },
    'time-limit': { type: 'string', default: '110' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    'no-postgres': { type: 'boolean', default: false },
    'no-sqlite': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false }
  }
}).values
let args: ReturnType<typeof parseCommandLine>
try {
  args = parseCommandLine()
} catch (err) {
  process.stderr.write(`bench:live: ${(err as Error).message}\n${usage}`)
  process.exit(2)
}
if (args.help) {
  process.stdout.write(usage)
  process.exit(0)
}

const count = numberOption('bench:live', usage)
const serverNodeArgs = args['cpu-prof'] === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(args['cpu-prof'])]
const options = {
  streams: Math.floor(count('streams', args.streams, 1)),
  allStreams: 0,
  names: Math.floor(count('names', args.names, 1)),
  events: Math.floor(count('events', args.events, 1)),
  rate: count('rate', args.rate, 0.1),
  drainTimeoutMs: count('drain-timeout', args['drain-timeout'], 0) * 1000,
  timeLimitMs: count('time-limit', args['time-limit'], 1) * 1000
}
options.allStreams = args['all-streams'] === undefined
  ? Math.max(1, Math.round(options.streams / 100))
  : Math.min(options.streams, Math.floor(count('all-streams', args['all-streams'], 0)))

// ---------------------------------------------------------------------------------------------
// results

interface RunResult {
  backend: 'sqlite' | 'postgresql'
  /** how the run was laid out */
  setup: string
  skipped?: string
  streams?: { subscribed: number, allEvents: number, opened: number, failedToOpen: number, closedEarly: number, openSeconds: number }
  events?: { posted: number, failed: number, ratePerSecond: number, postSeconds: number }
  deliveries?: { expected: number, received: number, lost: number, duplicates: number, outOfOrder: number, unexpected: number, extra: number }
  latencyMs?: { p50: number, p90: number, p99: number, max: number, mean: number }
  /** after a full garbage collection in the server; `raw`: read without one, just before */
  serverRssKb?: {
    beforeStreams: number | null
    withStreams: number | null
    afterEvents: number | null
    perStream: number | null
    raw: { beforeStreams: number | null, withStreams: number | null, afterEvents: number | null }
  }
  /** CPU the streaming server used while the events were delivered, % of one core */
  serverCpuPercent?: number | null
  /**
   * CPU the rest of the machine used meanwhile (PostgreSQL, the posting instance A, and
   * anything else running), % of one core: high values make the latencies unreliable
   */
  otherCpuPercent?: number | null
  /** CPU this benchmark (posting and reading every stream) used meanwhile, % of one core */
  benchCpuPercent?: number
  serverOpenFiles?: { withStreams: number | null, softLimit: number | null }
  /** how late this process's event loop ran while receiving: high values mean the client, not the server, was the bottleneck */
  benchLoopDelayP99Ms?: number
  serverWarnings?: string[]
  problems: string[]
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!

// ---------------------------------------------------------------------------------------------
// one run

interface Stream {
  /** subscribed event name, or null for /events/stream */
  name: string | null
  lastId: number
  seen: Set<number>
  response?: IncomingMessage
  ended: boolean
}

let shuttingDown = false

async function runOnce (backend: 'sqlite' | 'postgresql', database: DatabaseConfig): Promise<RunResult> {
  const dir = tempDir()
  const problems: string[] = []
  const crossInstance = backend === 'postgresql'
  const result: RunResult = {
    backend,
    setup: crossInstance ? 'PostgreSQL, 2 instances: streams on B, posts to A' : 'SQLite, 1 instance',
    problems
  }

  // instance A takes the posts; B (= A on SQLite) holds the streams
  progress(`${backend}: starting cred-server${crossInstance ? ' A' : ''}`)
  const { server: a, config: configA } = await startOnFreePort(crossInstance ? 'A' : 'server', dir, 'a', database, { nodeArgs: serverNodeArgs })
  let b: ServerProcess = a
  if (crossInstance) {
    progress(`${backend}: starting cred-server B`)
    b = (await startOnFreePort('B', dir, 'b', database, { nodeArgs: serverNodeArgs })).server
  }
  const servers = crossInstance ? [a, b] : [a]

  const writeKey = await createKey(configA, 'write')
  const readKey = await createKey(configA, 'read')
  const api = new Agent({ keepAlive: true, maxSockets: 16 })
  const streamAgent = new Agent({ keepAlive: true, maxSockets: options.streams + 16, maxFreeSockets: 16 })
  const streams: Stream[] = []
  try {
    const names = Array.from({ length: options.names }, (_, i) => `Bench${i}`)
    const poster = await requestJson(api, 'POST', `${a.url}/auth`, { apikey: writeKey, device: 'bench poster', location: 'Bench' })
    if (poster.status !== 201) throw new Error(`POST /auth for the poster: ${poster.status} ${JSON.stringify(poster.body)}`)
    const posterSession = poster.body.sessionKey as string

    // the stream clients authenticate on B (the database is shared anyway)
    progress(`${backend}: authenticating ${options.streams} clients`)
    const plan = Array.from({ length: options.streams }, (_, i): string | null =>
      i < options.allStreams ? null : names[i % names.length]!)
    const sessions = await inParallel(plan, 16, async (name, i) => {
      const res = await requestJson(api, 'POST', `${b.url}/auth`, {
        apikey: readKey,
        device: `bench ${i}`,
        location: 'Bench',
        ...(name === null ? {} : { subscribe: { [name]: {} } })
      })
      if (res.status !== 201) throw new Error(`POST /auth: ${res.status} ${JSON.stringify(res.body)}`)
      return { id: res.body.id as number, sessionKey: res.body.sessionKey as string, name }
    })

    await sleep(1000)
    const rawBefore = rssKb(b.pid)
    const rssBefore = await rssAfterGc(b)

    // the streams
    progress(`${backend}: opening ${options.streams} streams${crossInstance ? ' on B' : ''}`)
    let latencies = new Float64Array(1024)
    let received = 0
    let duplicates = 0
    let outOfOrder = 0
    let unexpected = 0
    let closedEarly = 0
    let expected = 0
    let drained: () => void = () => {}
    let finished = false
    const postedNames = new Map<number, string>()

    const onMessage = (stream: Stream, data: string) => {
      const now = performance.now()
      const event = JSON.parse(data) as { id: number, name: string, value: string | null }
      if (stream.seen.has(event.id)) {
        duplicates++
        return
      }
      stream.seen.add(event.id)
      if (event.id < stream.lastId) outOfOrder++
      stream.lastId = Math.max(stream.lastId, event.id)
      if (stream.name !== null && stream.name !== event.name) {
        unexpected++
        return
      }
      const sent = Number(event.value)
      if (received === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2)
        bigger.set(latencies)
        latencies = bigger
      }
      latencies[received++] = now - sent
      if (expected > 0 && received >= expected) drained()
    }

    const open = (session: typeof sessions[number]) => new Promise<Stream>((resolve, reject) => {
      const stream: Stream = { name: session.name, lastId: 0, seen: new Set(), ended: false }
      const path = session.name === null ? '/events/stream' : `/clients/${session.id}/subscribedevents/stream`
      const req = request(`${b.url}${path}`, {
        agent: streamAgent,
        headers: { accept: 'text/event-stream', authorization: `Bearer ${session.sessionKey}` }
      }, (res) => {
        if (res.statusCode !== 200) {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => { body += chunk })
          res.on('end', () => reject(new Error(`GET ${path}: ${res.statusCode} ${body}`)))
          return
        }
        stream.response = res
        const parser = new SseParser((message) => {
          if (message.event === 'event') onMessage(stream, message.data)
        })
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => parser.push(chunk))
        res.on('close', () => {
          stream.ended = true
          if (!shuttingDown && !finished) closedEarly++
        })
        resolve(stream)
      })
      req.setTimeout(15_000, () => req.destroy(new Error(`GET ${path}: no answer within 15 s`)))
      req.on('error', (err) => {
        if (stream.response === undefined) reject(err)
      })
      req.end()
    })
    let failedToOpen = 0
    const openStart = performance.now()
    await inParallel(sessions, 50, async (session) => {
      try {
        streams.push(await open(session))
      } catch (err) {
        if (failedToOpen++ < 3) problems.push(`stream failed to open: ${(err as Error).message}`)
      }
    })
    const openSeconds = (performance.now() - openStart) / 1000
    if (failedToOpen > 0) problems.push(`${failedToOpen} of ${options.streams} streams failed to open`)
    await sleep(1000)
    const rawWith = rssKb(b.pid)
    const rssWith = await rssAfterGc(b)
    const filesWith = openFiles(b.pid)
    const filesLimit = openFilesLimit(b.pid)
    const subscribers = new Map<string | null, number>()
    for (const stream of streams) subscribers.set(stream.name, (subscribers.get(stream.name) ?? 0) + 1)

    // the events, at a steady rate, each carrying its send time
    progress(`${backend}: posting ${options.events} events at ${options.rate}/s${crossInstance ? ' to A' : ''}`)
    const loop = monitorEventLoopDelay({ resolution: 5 })
    loop.enable()
    const cpuBefore = cpuSeconds(b.pid)
    const machineBefore = machineBusySeconds()
    const benchBefore = process.cpuUsage()
    const postStart = performance.now()
    let postFailed = 0
    const posts: Array<Promise<void>> = []
    for (let i = 0; i < options.events; i++) {
      const due = postStart + i * 1000 / options.rate
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      const name = names[i % names.length]!
      posts.push(requestJson(api, 'POST', `${a.url}/events`, {
        event: { name, location: 'Bench', action: 'bench', value: performance.now().toFixed(3) }
      }, { authorization: `Bearer ${posterSession}` }).then((res) => {
        if (res.status === 201) postedNames.set(res.body.event.id as number, name)
        else if (postFailed++ < 3) problems.push(`POST /events: ${res.status} ${JSON.stringify(res.body)}`)
      }, (err: unknown) => {
        if (postFailed++ < 3) problems.push(`POST /events: ${(err as Error).message}`)
      }))
    }
    await Promise.all(posts)
    const postSeconds = (performance.now() - postStart) / 1000
    if (postFailed > 0) problems.push(`${postFailed} of ${options.events} posts failed`)
    for (const name of postedNames.values()) expected += (subscribers.get(name) ?? 0) + (subscribers.get(null) ?? 0)

    // the last deliveries
    if (received < expected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.drainTimeoutMs)
        drained = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    finished = true
    loop.disable()
    const deliverySeconds = (performance.now() - postStart) / 1000
    const cpuAfter = cpuSeconds(b.pid)
    const machineAfter = machineBusySeconds()
    const benchCpu = process.cpuUsage(benchBefore)
    await sleep(500)
    const rawAfter = rssKb(b.pid)
    const rssAfter = await rssAfterGc(b)

    const sorted = latencies.subarray(0, received).sort()
    let sum = 0
    for (const value of sorted) sum += value
    // exactly which (stream, event) pairs are missing, and which deliveries were of events no
    // post of ours reported (a post that failed after its event was committed)
    let lost = 0
    let extra = 0
    for (const stream of streams) {
      for (const [id, name] of postedNames) {
        if ((stream.name === null || stream.name === name) && !stream.seen.has(id)) lost++
      }
      for (const id of stream.seen) if (!postedNames.has(id)) extra++
    }
    if (lost > 0) problems.push(`${lost} of ${expected} deliveries lost (not received within ${options.drainTimeoutMs / 1000} s of the last post)`)
    if (extra > 0) problems.push(`${extra} deliveries of events whose post did not report success`)
    if (duplicates > 0) problems.push(`${duplicates} duplicate deliveries`)
    if (outOfOrder > 0) problems.push(`${outOfOrder} deliveries out of id order`)
    if (unexpected > 0) problems.push(`${unexpected} deliveries of events a stream did not subscribe to`)
    if (closedEarly > 0) problems.push(`${closedEarly} streams were closed by the server during the run`)

    Object.assign(result, {
      streams: {
        subscribed: plan.filter((name) => name !== null).length,
        allEvents: plan.filter((name) => name === null).length,
        opened: streams.length,
        failedToOpen,
        closedEarly,
        openSeconds: round(openSeconds, 2)
      },
      events: { posted: postedNames.size, failed: postFailed, ratePerSecond: options.rate, postSeconds: round(postSeconds, 2) },
      deliveries: { expected, received, lost, duplicates, outOfOrder, unexpected, extra },
      latencyMs: {
        p50: round(percentile(sorted, 50), 2),
        p90: round(percentile(sorted, 90), 2),
        p99: round(percentile(sorted, 99), 2),
        max: round(sorted.length === 0 ? NaN : sorted[sorted.length - 1]!, 2),
        mean: round(sum / sorted.length, 2)
      },
      serverRssKb: {
        beforeStreams: rssBefore,
        withStreams: rssWith,
        afterEvents: rssAfter,
        perStream: rssBefore === null || rssWith === null || streams.length === 0 ? null : round((rssWith - rssBefore) / streams.length, 1),
        raw: { beforeStreams: rawBefore, withStreams: rawWith, afterEvents: rawAfter }
      },
      serverCpuPercent: cpuBefore === null || cpuAfter === null ? null : Math.round((cpuAfter - cpuBefore) / deliverySeconds * 100),
      benchCpuPercent: Math.round((benchCpu.user + benchCpu.system) / 1e6 / deliverySeconds * 100),
      otherCpuPercent: cpuBefore === null || cpuAfter === null || machineBefore === null || machineAfter === null
        ? null
        : Math.max(0, Math.round((machineAfter - machineBefore - (cpuAfter - cpuBefore) - (benchCpu.user + benchCpu.system) / 1e6) / deliverySeconds * 100)),
      serverOpenFiles: { withStreams: filesWith, softLimit: filesLimit?.soft ?? null },
      benchLoopDelayP99Ms: round(loop.percentile(99) / 1e6, 1),
      serverWarnings: servers.flatMap((server) => server.warnings.map((line) => `${server.label}: ${line.msg}`)).slice(0, 10)
    } satisfies Partial<RunResult>)
    return result
  } finally {
    shuttingDown = true
    for (const stream of streams) stream.response?.destroy()
    streamAgent.destroy()
    api.destroy()
    for (const server of servers) await server.stop()
    shuttingDown = false
  }
}

/** VmRSS after a full GC in the server (and a moment for the freed pages to go back). */
async function rssAfterGc (server: ServerProcess): Promise<number | null> {
  if (!await server.collectGarbage()) return rssKb(server.pid)
  await sleep(200)
  return rssKb(server.pid)
}

const round = (value: number, digits: number) => Number.isFinite(value) ? Number(value.toFixed(digits)) : NaN

// ---------------------------------------------------------------------------------------------
// open files

/**
 * What the open-files limit allows, and a note when it is too low for this many streams.
 * Node raises its own soft limit to the hard limit when it starts, so for cred-server (and
 * this benchmark) the hard limit is what counts, whatever `ulimit -n` (the soft one) says.
 */
function checkOpenFiles () {
  const own = openFilesLimit('self')
  const shell = openFilesLimit(process.ppid)
  // each stream is one socket in the server and one here; plus the process's own files, the
  // database (a file, or a pool of 10 connections and a listener) and the API connections
  const needed = options.streams + 64
  const effective = own?.soft ?? null
  const hard = own?.hard ?? null
  const ulimit = shell === null || shell.soft === own?.soft
    ? ''
    : ` (\`ulimit -n\` says ${shell.soft}, but Node raises its soft limit to the hard limit, ${hard}, at start-up)`
  let note: string
  if (effective === null) note = 'cannot read the open-files limit (/proc/self/limits): not checked'
  else if (effective >= needed) {
    note = `ok: ${options.streams.toLocaleString('en-US')} streams need about ${needed} open files in the server ` +
      `(and as many in this benchmark); a Node process may open ${effective}${ulimit}`
  } else {
    note = `TOO LOW: ${options.streams.toLocaleString('en-US')} streams need about ${needed} open files in the server ` +
      `(and as many in this benchmark), but a Node process may open only ${effective}${ulimit}. Streams past the limit ` +
      'fail to open (EMFILE). Raise the hard limit (ulimit -Hn as root, limits.conf, systemd LimitNOFILE=) or open ' +
      'fewer streams; a production cred-server holding this many streams needs the same.'
  }
  return { limit: effective, hardLimit: hard, shellSoftLimit: shell?.soft ?? null, needed, ok: effective === null || effective >= needed, note }
}

// ---------------------------------------------------------------------------------------------
// output

function table (results: RunResult[], openFilesNote: string): string {
  const ran = results.filter((run) => run.streams !== undefined)
  const kb = (value: number | null | undefined) => value === null || value === undefined ? 'n/a' : `${(value / 1024).toFixed(1)} MB`
  const n = (value: number | undefined) => value === undefined ? 'n/a' : value.toLocaleString('en-US')
  const ms = (value: number | undefined) => value === undefined || Number.isNaN(value) ? 'n/a' : `${value} ms`
  const rows: Array<[string, (run: RunResult) => string]> = [
    ['streams (subscribed + all events)', (r) => `${n(r.streams?.opened)} (${n(r.streams?.subscribed)} + ${n(r.streams?.allEvents)})`],
    ['  opened in', (r) => `${r.streams?.openSeconds} s`],
    ['events posted', (r) => `${n(r.events?.posted)} at ${r.events?.ratePerSecond}/s`],
    ['deliveries expected', (r) => n(r.deliveries?.expected)],
    ['deliveries received', (r) => n(r.deliveries?.received)],
    ['lost / duplicate / out of order', (r) => `${r.deliveries?.lost} / ${r.deliveries?.duplicates} / ${r.deliveries?.outOfOrder}`],
    ['latency p50', (r) => ms(r.latencyMs?.p50)],
    ['latency p90', (r) => ms(r.latencyMs?.p90)],
    ['latency p99', (r) => ms(r.latencyMs?.p99)],
    ['latency max', (r) => ms(r.latencyMs?.max)],
    ['server RSS before streams (after GC)', (r) => kb(r.serverRssKb?.beforeStreams)],
    ['server RSS with streams (after GC)', (r) => kb(r.serverRssKb?.withStreams)],
    ['  per stream', (r) => r.serverRssKb?.perStream === null || r.serverRssKb === undefined ? 'n/a' : `${r.serverRssKb.perStream} KB`],
    ['server RSS after events (after GC)', (r) => kb(r.serverRssKb?.afterEvents)],
    ['  the three without forcing GC', (r) => [r.serverRssKb?.raw.beforeStreams, r.serverRssKb?.raw.withStreams, r.serverRssKb?.raw.afterEvents]
      .map((value) => value === null || value === undefined ? 'n/a' : (value / 1024).toFixed(1)).join(' / ') + ' MB'],
    ['server CPU while delivering', (r) => r.serverCpuPercent === null ? 'n/a' : `${r.serverCpuPercent} % of a core`],
    ['bench CPU while delivering', (r) => r.benchCpuPercent === undefined ? 'n/a' : `${r.benchCpuPercent} % of a core`],
    ['other CPU meanwhile (see below)', (r) => r.otherCpuPercent === null || r.otherCpuPercent === undefined ? 'n/a' : `${r.otherCpuPercent} % of a core`],
    ['server open files / limit', (r) => `${r.serverOpenFiles?.withStreams ?? 'n/a'} / ${r.serverOpenFiles?.softLimit ?? 'n/a'}`],
    ['bench event-loop delay p99', (r) => ms(r.benchLoopDelayP99Ms)]
  ]
  const header = ['', ...ran.map((run) => run.backend === 'sqlite' ? 'SQLite, 1 instance' : 'PostgreSQL, B ← A')]
  const lines = [header, ...rows.map(([label, cell]) => [label, ...ran.map(cell)])]
  const widths = header.map((_, col) => Math.max(...lines.map((line) => line[col]!.length)))
  const out = [
    `cred live delivery — ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ${process.platform}`,
    `open files: ${openFilesNote}`,
    '',
    ...lines.map((line) => line.map((cell, col) => col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)).join('   ').trimEnd())
  ]
  out.push('', 'other CPU: the rest of the machine while delivering (PostgreSQL, instance A, anything else): ' +
    `on ${cpus().length} cores, a lot of it means the latencies measure contention, not cred`)
  for (const run of results) {
    if (run.skipped !== undefined) out.push('', `${run.backend}: SKIPPED — ${run.skipped}`)
    for (const problem of run.problems) out.push(`${run.backend}: PROBLEM — ${problem}`)
    for (const warning of run.serverWarnings ?? []) out.push(`${run.backend}: server log — ${warning}`)
  }
  return `${out.join('\n')}\n`
}

// ---------------------------------------------------------------------------------------------
// main

// streams the clean-up closes are not counted as closed early
cleanUpOnSignals(() => { shuttingDown = true })

const timeLimit = setTimeout(() => {
  progress(`time limit of ${options.timeLimitMs / 1000} s reached: cleaning up`)
  shuttingDown = true
  cleanUp().finally(() => process.exit(1))
}, options.timeLimitMs)
timeLimit.unref()

async function main (): Promise<number> {
  const openFilesCheck = checkOpenFiles()
  if (!openFilesCheck.ok) progress(`open files: ${openFilesCheck.note}`)
  const results: RunResult[] = []
  const failed = (backend: RunResult['backend'], err: unknown): RunResult =>
    ({ backend, setup: '', problems: [`run failed: ${(err as Error).message}`] })

  if (args['no-sqlite']) {
    results.push({ backend: 'sqlite', setup: '', skipped: '--no-sqlite', problems: [] })
  } else {
    results.push(await runOnce('sqlite', { type: 'sqlite3', database: `${tempDir()}/cred-bench.db` })
      .catch((err: unknown) => failed('sqlite', err)))
  }

  if (args['no-postgres']) {
    results.push({ backend: 'postgresql', setup: '', skipped: '--no-postgres', problems: [] })
  } else {
    const url = new URL(args.postgres)
    const problem = await postgresProblem(args.postgres)
    if (problem !== null) {
      progress(`PostgreSQL at ${url.host} is not reachable (${problem}): skipping the cross-instance run`)
      results.push({ backend: 'postgresql', setup: '', skipped: `PostgreSQL at ${url.host} not reachable: ${problem}`, problems: [] })
    } else {
      const result = await createDatabase(args.postgres)
        .then((name) => runOnce('postgresql', postgresDatabaseConfig(args.postgres, name)))
        .catch((err: unknown) => failed('postgresql', err))
      results.push(result)
    }
  }

  if (args.json) {
    process.stdout.write(`${JSON.stringify({
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? null, node: process.version, platform: process.platform },
      options,
      openFiles: openFilesCheck,
      runs: results
    }, null, 2)}\n`)
  } else {
    process.stdout.write(table(results, openFilesCheck.note))
  }
  return results.some((run) => run.problems.length > 0) ? 1 : 0
}

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`bench:live: ${(err as Error).stack ?? String(err)}\n`)
} finally {
  await cleanUp()
}
process.exit(code)
