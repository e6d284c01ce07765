#!/usr/bin/env node
// `npm run soak`: many simulated devices against one real cred-server for a while (the usage
// below says what they do and when it passes).
import type { ClientRequest } from 'node:http'
import {
  authenticate, cleanUp, cleanUpOnSignals, commandLine, createKey, expectJson, freshDatabase, openStream, progress, quantile, rssKb, sleep, sorted, startServer, tempDir, writeConfig,
  type ServerProcess
} from './harness.js'

const { values, number, fail: usageError } = commandLine('soak', `Usage: npm run soak -- [options]   (node dist/scripts/bench/soak.js after npm run build)

Starts a cred-server on a temporary SQLite file (or a fresh PostgreSQL or MariaDB database) and simulates
devices: each authenticates with subscriptions, posts events now and then, and receives the
events it subscribed to, half by polling subscribedevents with after=, half over an event
stream. Exits 0 when no request failed and nothing was lost, duplicated or altered.
`, {
  devices: ['N', '200', 'simulated devices, at least 2'],
  seconds: ['S', '60', 'how long the devices post'],
  'post-interval': ['S', '2', 'mean seconds between two posts of a device'],
  'poll-interval': ['S', '1', 'seconds between two polls of a polling device'],
  drain: ['S', '15', 'at most this long for the subscribers to catch up afterwards'],
  postgres: ['', null, 'on a fresh PostgreSQL database (dropped afterwards) instead of SQLite'],
  'postgres-url': ['URL', process.env.SOAK_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', 'its server, $SOAK_POSTGRES_URL when set'],
  mariadb: ['', null, 'on a fresh MariaDB database (dropped afterwards) instead of SQLite'],
  'mariadb-url': ['URL', process.env.SOAK_MARIADB_URL ?? 'mysql://root@127.0.0.1:3306', 'its server, $SOAK_MARIADB_URL when set'],
  json: ['', null, 'print the results as JSON']
})
for (const flag of ['postgres', 'mariadb'] as const) {
  if (process.argv.includes(`--${flag}-url`) && values[flag] !== true) usageError(`--${flag}-url goes with --${flag}`)
}
if (values.postgres === true && values.mariadb === true) usageError('--postgres or --mariadb, not both')
const options = {
  devices: Math.floor(number('devices', 2)),
  seconds: number('seconds', 0.1),
  postMs: number('post-interval', 0.001) * 1000,
  pollMs: number('poll-interval', 0.001) * 1000,
  drainMs: number('drain', 0) * 1000,
  kind: values.postgres === true ? 'postgresql' as const : values.mariadb === true ? 'mariadb' as const : 'sqlite' as const
}

interface Event { id: number, device: string, name: string, location: string, action: string, value: string }

interface Device {
  name: string
  room: string
  stream: ClientRequest | null
  auth: Record<string, string>
  clientId: number
  /** event id → the event as received, and how often */
  received: Map<number, { event: Event, times: number }>
  lastId: number
}

const wants = (device: Device, event: Event) => event.name === 'Alarm' || ((event.name === 'Light' || event.name === 'Motion') && event.location === device.room)
const fields = ['device', 'name', 'location', 'action', 'value'] as const
const counts = { auth: 0, post: 0, poll: 0, stream: 0 }
const errors: string[] = []
const posted: Event[] = []
const postMs: number[] = []
const deliveryMs: number[] = []
const sentAt = new Map<string, number>()
let closing = false

const fail = (what: string) => { errors.push(what) }
const receive = (device: Device, event: Event) => {
  const seen = device.received.get(event.id)
  if (seen !== undefined) seen.times++
  else device.received.set(event.id, { event, times: 1 })
  device.lastId = Math.max(device.lastId, event.id)
}

/** Resolves once the stream's first comment has arrived (or it failed). */
function stream (origin: string, device: Device): Promise<void> {
  counts.stream++
  return new Promise((resolve) => {
    const failed = (what: string) => { if (!closing) fail(`stream of ${device.name}: ${what}`); resolve() }
    device.stream = openStream(`${origin}/clients/${device.clientId}/subscribedevents/stream`, device.auth, {
      answered: (res) => {
        if (res.statusCode !== 200) return failed(`status ${res.statusCode}`)
        res.on('end', () => failed('ended by the server')).on('error', (err) => failed(err.message))
      },
      comment: resolve,
      event: ({ data }) => {
        const event = JSON.parse(data) as Event
        const sent = sentAt.get(event.value)
        if (sent !== undefined) deliveryMs.push(Date.now() - sent)
        receive(device, event)
      }
    }).on('error', (err) => failed(err.message))
  })
}

/** A device's request: its answer, or null (and an error counted). */
async function call (device: Device, method: 'GET' | 'POST', url: string, body?: unknown) {
  counts[method === 'POST' ? 'post' : 'poll']++
  return expectJson(method === 'POST' ? 201 : 200, url, { method, body, headers: device.auth }).catch((err: Error) => { fail(err.message); return null })
}

const percentiles = (samples: number[]) => {
  const all = sorted(samples)
  return { p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: quantile(all, 1) }
}
const mb = async (server: ServerProcess, gc: boolean) => {
  if (gc) await server.collectGarbage()
  return Math.round(rssKb(server.pid) / 102.4) / 10
}

cleanUpOnSignals(() => { closing = true })
let code = 1
try {
  const database = await freshDatabase(options.kind, { postgresql: String(values['postgres-url']), mariadb: String(values['mariadb-url']) }, 'cred_soak_')
  progress(`starting cred-server on ${database.type}`)
  const config = writeConfig(tempDir('cred-soak-'), 'credrc', database)
  const server = await startServer({ label: 'soak', args: ['--config', config, '--log-level', 'warn'], gc: true })
  const apikey = await createKey(config, 'write')
  const rss = { start: await mb(server, true), connected: 0, peak: 0, end: 0, endBeforeGc: 0 }
  setTimeout(() => { fail('still running long after the end: giving up'); cleanUp().finally(() => process.exit(1)) },
    120_000 + options.seconds * 1000 + options.drainMs).unref()

  progress(`${options.devices} devices authenticate; half open event streams`)
  const rooms = Math.max(1, Math.round(options.devices / 10))
  const devices: Device[] = []
  for (let index = 0; index < options.devices; index++) {
    const name = `Soak device ${index}`
    const room = `Room ${index % rooms}`
    counts.auth++
    const { id, headers } = await authenticate(server.origin, apikey, name, { location: room, subscribe: { Light: { location: room }, Motion: { location: room }, Alarm: {} } })
    devices.push({ name, room, stream: null, auth: headers, clientId: id, received: new Map(), lastId: 0 })
  }
  const streaming = devices.filter((_, i) => i % 2 === 0)
  await Promise.all(streaming.map((device) => stream(server.origin, device)))
  rss.connected = await mb(server, true)
  // the peak is the highest reading of all (RSS may shrink when memory goes back to the system)
  rss.peak = rss.connected
  const sampler = setInterval(() => { rss.peak = Math.max(rss.peak, Math.round(rssKb(server.pid) / 102.4) / 10) }, 1000)

  progress(`posting for ${options.seconds} s`)
  const until = Date.now() + options.seconds * 1000
  const polling = { on: true }
  const polls = devices.filter((_, i) => i % 2 === 1).map(async (device) => {
    await sleep(Math.random() * options.pollMs)
    while (polling.on) {
      const answer = await call(device, 'GET', `${server.origin}/clients/${device.clientId}/subscribedevents?full=true&after=${device.lastId}`)
      for (const event of (answer?.events ?? []) as Event[]) receive(device, event)
      await sleep(options.pollMs)
    }
  })
  await Promise.all(devices.map(async (device) => {
    await sleep(Math.random() * options.postMs)
    for (let seq = 0; Date.now() < until; seq++) {
      const event = { name: seq % 25 === 24 ? 'Alarm' : ['Light', 'Motion', 'Temperature', 'Door'][seq % 4]!, location: device.room, action: 'Soak', value: `${device.name} #${seq}` }
      const started = Date.now()
      sentAt.set(event.value, started)
      const answer = await call(device, 'POST', `${server.origin}/events`, { event })
      if (answer !== null) {
        postMs.push(Date.now() - started)
        posted.push({ id: answer.event.id, device: device.name, ...event })
      }
      await sleep(options.postMs * (0.5 + Math.random()))
    }
  }))

  progress(`waiting (at most ${options.drainMs / 1000} s) for every subscriber to catch up`)
  const missing = (device: Device) => posted.filter((event) => wants(device, event) && !device.received.has(event.id)).length
  const drainUntil = Date.now() + options.drainMs
  while (Date.now() < drainUntil && devices.some((device) => missing(device) > 0)) await sleep(200)
  polling.on = false
  await Promise.all(polls)
  closing = true
  for (const device of devices) device.stream?.destroy()
  clearInterval(sampler)
  rss.end = await mb(server, true)
  rss.endBeforeGc = await mb(server, false)
  rss.peak = Math.max(rss.peak, rss.endBeforeGc)

  progress('stopping cred-server (SIGTERM)')
  server.child.kill('SIGTERM')
  const exit = await Promise.race([server.exited, sleep(20_000).then(() => null)])
  if (exit?.code !== 0) fail(`cred-server ${exit === null ? 'did not exit within 20 s of SIGTERM' : `exited with code ${exit.code} (signal ${exit.signal}) after SIGTERM`}`)

  const byId = new Map(posted.map((event) => [event.id, event]))
  const deliveries = { expected: 0, received: 0, lost: 0, duplicated: 0, unexpected: 0, altered: 0, completeSubscribers: 0 }
  for (const device of devices) {
    const lost = missing(device)
    deliveries.expected += posted.filter((event) => wants(device, event)).length
    deliveries.lost += lost
    if (lost === 0) deliveries.completeSubscribers++
    for (const [id, { event, times }] of device.received) {
      deliveries.received += times
      deliveries.duplicated += times - 1
      const sent = byId.get(id)
      if (sent === undefined || !wants(device, sent)) deliveries.unexpected++
      else if (fields.some((field) => event[field] !== sent[field])) deliveries.altered++
    }
  }
  const pass = errors.length === 0 && deliveries.lost + deliveries.duplicated + deliveries.unexpected + deliveries.altered === 0
  const result = {
    settings: { devices: options.devices, streaming: streaming.length, polling: devices.length - streaming.length, seconds: options.seconds, database: database.type },
    requests: { total: counts.auth + counts.post + counts.poll + counts.stream, ...counts },
    errors: errors.length,
    errorSamples: errors.slice(0, 10),
    events: { posted: posted.length, perSecond: Math.round(posted.length / options.seconds * 10) / 10 },
    deliveries,
    latencyMs: { post: percentiles(postMs), streamDelivery: percentiles(deliveryMs) },
    serverRssMB: rss,
    serverWarnings: server.warnings().length,
    serverExit: exit?.code ?? null,
    pass
  }
  // the table: a line per part of the result, its fields in a row
  const line = ([key, value]: [string, unknown]): string => typeof value !== 'object' || value === null
    ? `${key} ${String(value)}`
    : `${key}: ${Object.entries(value).map((entry) => line(entry)).join(', ')}`
  process.stdout.write(values.json === true ? `${JSON.stringify(result, null, 2)}\n` : `${Object.entries(result).map((entry) => `  ${line(entry)}`).join('\n')}\n`)
  code = pass ? 0 : 1
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`)
} finally {
  await cleanUp()
}
process.exit(code)
