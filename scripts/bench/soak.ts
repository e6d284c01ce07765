#!/usr/bin/env node
// `npm run soak`: many simulated devices against one real cred-server, for a while. Each device
// authenticates with its subscriptions, posts events at a modest rate, and receives the events
// it subscribed to: half of them poll /clients/{id}/subscribedevents with after=, the other
// half hold a Server-Sent Events stream. At the end it checks that every subscriber received
// every event it subscribed to (no loss, no duplicate, nothing altered) and that no request
// failed, and reports the server's memory (RSS) at the start and at the end.
//
// Runs from dist/ (npm run build compiles it): node dist/scripts/bench/soak.js --help
import { Agent, request, type ClientRequest } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  cleanUp, cleanUpOnSignals, createDatabase, createKey, progress, rssKb, sleep, startOnFreePort, tempDir,
  type DatabaseConfig, type ServerProcess
} from './harness.js'

const usage = `Usage: npm run soak -- [--devices N] [--seconds S] [--postgres [--postgres-url URL]] [--json]
       node dist/scripts/bench/soak.js [same options]

Starts a cred-server on a temporary SQLite database (or a fresh PostgreSQL database),
creates API keys with cred-gen, and simulates devices for a while: each authenticates
with subscriptions, posts events now and then, and receives the events it subscribed
to, half of them by polling subscribedevents with after=, half over an event stream.
Prints requests, errors (must be 0), events posted against events received (every
subscriber must receive every event it subscribed to) and the server's RSS at the
start and at the end. Exit code 0 when nothing failed and nothing was lost.

  --devices N          simulated devices (default 200)
  --seconds S          how long the devices post events (default 60)
  --post-interval S    mean seconds between two posts of one device (default 2)
  --poll-interval S    seconds between two polls of a polling device (default 1)
  --drain S            after the posting, at most this long for subscribers to catch up (default 15)
  --postgres           use a fresh PostgreSQL database (dropped at the end) instead of SQLite
  --postgres-url URL   the PostgreSQL server for it (default $SOAK_POSTGRES_URL or
                       postgres://postgres@127.0.0.1:5432/postgres)
  --json               print the results as JSON
  -h, --help           show this help
`

interface Options {
  devices: number
  seconds: number
  postInterval: number
  pollInterval: number
  drain: number
  postgresUrl: string | null
  json: boolean
}

function options (): Options {
  let values
  try {
    values = parseArgs({ strict: true, options: {
      devices: { type: 'string' },
      seconds: { type: 'string' },
      'post-interval': { type: 'string' },
      'poll-interval': { type: 'string' },
      drain: { type: 'string' },
      postgres: { type: 'boolean' },
      'postgres-url': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    } }).values
  } catch (err) {
    usageError((err as Error).message)
  }
  if (values.help === true) {
    process.stdout.write(usage)
    process.exit(0)
  }
  const number = (name: string, text: string | undefined, fallback: number, integer = false) => {
    if (text === undefined) return fallback
    const value = Number(text)
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      usageError(`--${name} takes a positive ${integer ? 'integer' : 'number'}, not '${text}'`)
    }
    return value
  }
  const devices = number('devices', values.devices, 200, true)
  if (devices < 2) usageError('--devices: at least 2 (one streaming, one polling)')
  if (values['postgres-url'] !== undefined && values.postgres !== true) usageError('--postgres-url goes with --postgres')
  return {
    devices,
    seconds: number('seconds', values.seconds, 60),
    postInterval: number('post-interval', values['post-interval'], 2),
    pollInterval: number('poll-interval', values['poll-interval'], 1),
    drain: number('drain', values.drain, 15),
    postgresUrl: values.postgres === true
      ? values['postgres-url'] ?? process.env.SOAK_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
      : null,
    json: values.json === true
  }
}

function usageError (message: string): never {
  process.stderr.write(`soak: ${message}\n${usage}`)
  process.exit(2)
}

cleanUpOnSignals()

/** RSS of the server in bytes, after a full garbage collection in it when `collect`. */
async function rss (server: ServerProcess, collect: boolean): Promise<number> {
  if (collect) await server.collectGarbage()
  const kb = rssKb(server.pid)
  if (kb === null) throw new Error(`no VmRSS for cred-server (pid ${server.pid})`)
  return kb * 1024
}

/** Sends SIGTERM and waits up to `ms` for the server to exit: its exit code, or null if it did not. */
function terminate (server: ServerProcess, ms: number): Promise<{ code: number | null, signal: NodeJS.Signals | null } | null> {
  const { child } = server
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
      return
    }
    const timer = setTimeout(() => resolve(null), ms)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
    child.kill('SIGTERM')
  })
}

// ---------------------------------------------------------------------------------------------
// HTTP

interface Answer { status: number, body: string }

const REQUEST_TIMEOUT = 30_000

function call (method: string, origin: string, path: string, { agent, sessionKey, body }: {
  agent?: Agent, sessionKey?: string, body?: unknown
}): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const headers: Record<string, string> = {}
  if (sessionKey !== undefined) headers.authorization = `Bearer ${sessionKey}`
  if (payload !== undefined) {
    headers['content-type'] = 'application/json'
    headers['content-length'] = String(Buffer.byteLength(payload))
  }
  return new Promise((resolve, reject) => {
    const req = request(`${origin}${path}`, { method, headers, agent: agent ?? false, timeout: REQUEST_TIMEOUT }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT / 1000} s`)))
    req.on('error', reject)
    req.end(payload)
  })
}

// ---------------------------------------------------------------------------------------------
// The simulation

const NAMES = ['Light', 'Motion', 'Temperature', 'Door'] as const
/** Every ALARM_EVERY-th post of a device is an Alarm, which every device subscribed to. */
const ALARM_EVERY = 25
const DEVICES_PER_ROOM = 10

interface EventFields { device: string, name: string, location: string, action: string, value: string }
interface Posted extends EventFields { id: number }

interface Device {
  name: string
  room: string
  mode: 'stream' | 'poll'
  /** event name → location (null: any) */
  subscriptions: Map<string, string | null>
  agent: Agent
  clientId: number
  sessionKey: string
  /** event id → the event as received, and how many times it was */
  received: Map<number, { event: EventFields, times: number }>
  /** highest id received (the poll's after=) */
  lastId: number
  stream: ClientRequest | null
}

const matches = (device: Device, event: { name: string, location: string | null }) => {
  if (!device.subscriptions.has(event.name)) return false
  const location = device.subscriptions.get(event.name)
  return location === null || location === event.location
}

class Soak {
  readonly requests = { auth: 0, post: 0, poll: 0, stream: 0 }
  errors = 0
  readonly errorSamples: string[] = []
  readonly posted: Posted[] = []
  readonly postLatencies: number[] = []
  readonly streamLatencies: number[] = []
  /** event value → when its POST was sent */
  private readonly sentAt = new Map<string, number>()
  devices: Device[] = []
  posting = false
  polling = true

  constructor (private readonly origin: string, private readonly opts: Options) {}

  error (what: string): void {
    this.errors++
    if (this.errorSamples.length < 10) this.errorSamples.push(what)
  }

  async connect (apikey: string): Promise<void> {
    const rooms = Math.max(1, Math.round(this.opts.devices / DEVICES_PER_ROOM))
    const batch = 20
    for (let start = 0; start < this.opts.devices; start += batch) {
      const indexes = Array.from({ length: Math.min(batch, this.opts.devices - start) }, (_, i) => start + i)
      const devices = await Promise.all(indexes.map((index) => this.authenticate(apikey, index, rooms)))
      for (const device of devices) if (device !== null) this.devices.push(device)
    }
    if (this.devices.length !== this.opts.devices) throw new Error(`only ${this.devices.length} of ${this.opts.devices} devices could authenticate`)
    await Promise.all(this.devices.filter((device) => device.mode === 'stream').map((device) => this.openStream(device)))
  }

  private async authenticate (apikey: string, index: number, rooms: number): Promise<Device | null> {
    const name = `Soak device ${index}`
    const room = `Room ${index % rooms}`
    const subscribe = { Light: { location: room }, Motion: { location: room }, Alarm: {} }
    this.requests.auth++
    const answer = await call('POST', this.origin, '/auth', { body: { apikey, device: name, location: room, subscribe } })
      .catch((err: unknown) => ({ status: 0, body: (err as Error).message }))
    if (answer.status !== 201) {
      this.error(`POST /auth: ${answer.status} ${answer.body.slice(0, 200)}`)
      return null
    }
    const { id, sessionKey } = JSON.parse(answer.body) as { id: number, sessionKey: string }
    return {
      name,
      room,
      mode: index % 2 === 0 ? 'stream' : 'poll',
      subscriptions: new Map([['Light', room], ['Motion', room], ['Alarm', null]]),
      agent: new Agent({ keepAlive: true, maxSockets: 2 }),
      clientId: id,
      sessionKey,
      received: new Map(),
      lastId: 0,
      stream: null
    }
  }

  private receive (device: Device, event: Posted): void {
    const seen = device.received.get(event.id)
    if (seen !== undefined) seen.times++
    else device.received.set(event.id, { event: { device: event.device, name: event.name, location: event.location, action: event.action, value: event.value }, times: 1 })
    if (event.id > device.lastId) device.lastId = event.id
  }

  /** Resolves once the stream is open (its first comment has arrived). */
  private openStream (device: Device): Promise<void> {
    this.requests.stream++
    return new Promise((resolve) => {
      let open = false
      const opened = () => {
        if (open) return
        open = true
        resolve()
      }
      const failed = (what: string) => {
        if (device.stream === null) return // closed by the soak itself
        this.error(`stream of ${device.name}: ${what}`)
        device.stream = null
        opened()
      }
      const req = request(`${this.origin}/clients/${device.clientId}/subscribedevents/stream`, {
        agent: false,
        headers: { authorization: `Bearer ${device.sessionKey}`, accept: 'text/event-stream' }
      }, (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          failed(`status ${res.statusCode}`)
          return
        }
        res.setEncoding('utf8')
        let buffer = ''
        let data: string[] = []
        res.on('data', (chunk: string) => {
          buffer += chunk
          let newline: number
          while ((newline = buffer.indexOf('\n')) !== -1) {
            const line = buffer.slice(0, newline)
            buffer = buffer.slice(newline + 1)
            if (line.startsWith(':')) {
              opened()
            } else if (line.startsWith('data:')) {
              data.push(line.slice(line.startsWith('data: ') ? 6 : 5))
            } else if (line === '' && data.length > 0) {
              const event = JSON.parse(data.join('\n')) as Posted
              data = []
              const sent = this.sentAt.get(event.value)
              if (sent !== undefined) this.streamLatencies.push(Date.now() - sent)
              this.receive(device, event)
            }
          }
        })
        res.on('end', () => failed('ended by the server'))
        res.on('error', (err) => failed(err.message))
      })
      req.on('error', (err) => failed(err.message))
      req.end()
      device.stream = req
    })
  }

  async post (device: Device, until: number): Promise<void> {
    const interval = this.opts.postInterval * 1000
    await sleep(Math.random() * interval)
    for (let seq = 0; Date.now() < until; seq++) {
      const name = seq % ALARM_EVERY === ALARM_EVERY - 1 ? 'Alarm' : NAMES[seq % NAMES.length]!
      const event = { name, location: device.room, action: 'Soak', value: `${device.name} #${seq}` }
      const started = Date.now()
      this.sentAt.set(event.value, started)
      this.requests.post++
      try {
        const answer = await call('POST', this.origin, '/events', { agent: device.agent, sessionKey: device.sessionKey, body: { event } })
        if (answer.status !== 201) {
          this.error(`POST /events: ${answer.status} ${answer.body.slice(0, 200)}`)
        } else {
          this.postLatencies.push(Date.now() - started)
          const { id } = (JSON.parse(answer.body) as { event: { id: number } }).event
          this.posted.push({ id, device: device.name, ...event })
        }
      } catch (err) {
        this.error(`POST /events: ${(err as Error).message}`)
      }
      await sleep(interval * (0.5 + Math.random()))
    }
  }

  async poll (device: Device): Promise<void> {
    const interval = this.opts.pollInterval * 1000
    await sleep(Math.random() * interval)
    while (this.polling) {
      this.requests.poll++
      try {
        const answer = await call('GET', this.origin, `/clients/${device.clientId}/subscribedevents?full=true&after=${device.lastId}`, {
          agent: device.agent, sessionKey: device.sessionKey
        })
        if (answer.status !== 200) this.error(`GET subscribedevents: ${answer.status} ${answer.body.slice(0, 200)}`)
        else for (const event of (JSON.parse(answer.body) as { events: Posted[] }).events) this.receive(device, event)
      } catch (err) {
        this.error(`GET subscribedevents: ${(err as Error).message}`)
      }
      await sleep(interval)
    }
  }

  /** events each device should have received: every posted event matching its subscriptions */
  expected (device: Device): Posted[] {
    return this.posted.filter((event) => matches(device, event))
  }

  missing (device: Device): number {
    return this.expected(device).filter((event) => !device.received.has(event.id)).length
  }

  closeStreams (): void {
    for (const device of this.devices) {
      const stream = device.stream
      device.stream = null
      stream?.destroy()
      device.agent.destroy()
    }
  }

  /** The final account of what was delivered. */
  deliveries () {
    const postedById = new Map(this.posted.map((event) => [event.id, event]))
    let expected = 0
    let received = 0
    let lost = 0
    let duplicated = 0
    let unexpected = 0
    let altered = 0
    let complete = 0
    for (const device of this.devices) {
      const wanted = this.expected(device)
      expected += wanted.length
      const missing = wanted.filter((event) => !device.received.has(event.id)).length
      lost += missing
      if (missing === 0) complete++
      for (const [id, { event, times }] of device.received) {
        received += times
        duplicated += times - 1
        const posted = postedById.get(id)
        if (posted === undefined || !matches(device, posted)) {
          unexpected++
          continue
        }
        if (event.device !== posted.device || event.name !== posted.name || event.location !== posted.location ||
          event.action !== posted.action || event.value !== posted.value) altered++
      }
    }
    return { expected, received, lost, duplicated, unexpected, altered, completeSubscribers: complete }
  }
}

function percentile (values: number[], p: number): number | null {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const mb = (bytes: number) => Math.round(bytes / 1024 / 102.4) / 10

// ---------------------------------------------------------------------------------------------

async function main (): Promise<number> {
  const opts = options()
  const dir = tempDir('cred-soak-')
  let database: DatabaseConfig
  if (opts.postgresUrl !== null) {
    const url = new URL(opts.postgresUrl)
    database = {
      type: 'postgresql',
      host: url.hostname,
      port: url.port === '' ? 5432 : Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: await createDatabase(opts.postgresUrl, 'cred_soak_')
    }
  } else {
    database = { type: 'sqlite3', database: join(dir, 'soak.db') }
  }
  const backend = opts.postgresUrl === null ? 'SQLite' : 'PostgreSQL'

  progress(`starting cred-server on ${backend}`)
  const { server, config } = await startOnFreePort('soak', dir, 'credrc', database)
  const writeKey = await createKey(config, 'write')
  const rssStart = await rss(server, true)

  // A bound on everything: the run ends in failure rather than hang.
  const bound = 60 + opts.seconds + opts.drain + 60
  const watchdog = setTimeout(() => {
    process.stderr.write(`soak: still running after ${bound} s: giving up\n`)
    void cleanUp().finally(() => process.exit(1))
  }, bound * 1000).unref()

  const soak = new Soak(server.url, opts)
  progress(`${opts.devices} devices authenticate; ${Math.ceil(opts.devices / 2)} open event streams`)
  await soak.connect(writeKey)
  const rssConnected = await rss(server, true)
  let rssPeak = Math.max(rssStart, rssConnected)
  const sampler = setInterval(() => {
    try {
      rssPeak = Math.max(rssPeak, (rssKb(server.pid) ?? 0) * 1024)
    } catch {}
  }, 1000)

  progress(`posting for ${opts.seconds} s`)
  const until = Date.now() + opts.seconds * 1000
  const polls = soak.devices.filter((device) => device.mode === 'poll').map((device) => soak.poll(device))
  await Promise.all(soak.devices.map((device) => soak.post(device, until)))

  progress(`waiting (at most ${opts.drain} s) for every subscriber to catch up`)
  const drainUntil = Date.now() + opts.drain * 1000
  while (Date.now() < drainUntil && soak.devices.some((device) => soak.missing(device) > 0)) await sleep(200)
  soak.polling = false
  await Promise.all(polls)
  soak.closeStreams()
  clearInterval(sampler)
  const rssEnd = await rss(server, true)
  const rssEndRaw = await rss(server, false)
  rssPeak = Math.max(rssPeak, rssEndRaw)

  progress('stopping cred-server (SIGTERM)')
  const stopped = await terminate(server, 20_000)
  if (stopped === null) soak.error('cred-server did not exit within 20 s of SIGTERM')
  else if (stopped.code !== 0) soak.error(`cred-server exited with code ${stopped.code} (signal ${stopped.signal}) after SIGTERM`)
  clearTimeout(watchdog)

  const deliveries = soak.deliveries()
  const result = {
    settings: {
      devices: opts.devices,
      streaming: soak.devices.filter((device) => device.mode === 'stream').length,
      polling: soak.devices.filter((device) => device.mode === 'poll').length,
      seconds: opts.seconds,
      postInterval: opts.postInterval,
      pollInterval: opts.pollInterval,
      database: backend
    },
    requests: { total: Object.values(soak.requests).reduce((a, b) => a + b, 0), ...soak.requests },
    errors: soak.errors,
    errorSamples: soak.errorSamples,
    events: { posted: soak.posted.length, perSecond: Math.round(soak.posted.length / opts.seconds * 10) / 10 },
    deliveries,
    latencyMs: {
      post: { p50: percentile(soak.postLatencies, 50), p99: percentile(soak.postLatencies, 99), max: percentile(soak.postLatencies, 100) },
      streamDelivery: { p50: percentile(soak.streamLatencies, 50), p99: percentile(soak.streamLatencies, 99), max: percentile(soak.streamLatencies, 100) }
    },
    serverRssMB: { start: mb(rssStart), connected: mb(rssConnected), peak: mb(rssPeak), end: mb(rssEnd), endBeforeGc: mb(rssEndRaw) },
    serverWarnings: server.warnings.length,
    serverExit: stopped === null ? null : stopped.code,
    pass: false
  }
  result.pass = soak.errors === 0 && deliveries.lost === 0 && deliveries.duplicated === 0 &&
    deliveries.unexpected === 0 && deliveries.altered === 0
  if (server.warnings.length > 0) progress(`server warnings (first 5):\n${server.warnings.slice(0, 5).map((line) => JSON.stringify(line)).join('\n')}`)

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
  } else {
    const { settings, requests, events, latencyMs, serverRssMB } = result
    const lines = [
      `cred soak: ${settings.devices} devices (${settings.streaming} on event streams, ${settings.polling} polling every ${settings.pollInterval} s), ` +
        `posting every ~${settings.postInterval} s for ${settings.seconds} s, on ${settings.database}`,
      `  requests         ${requests.total} (auth ${requests.auth}, post ${requests.post}, poll ${requests.poll}, stream ${requests.stream})`,
      `  errors           ${result.errors}${soak.errorSamples.map((sample) => `\n                     ${sample}`).join('')}`,
      `  events posted    ${events.posted} (${events.perSecond}/s)`,
      `  deliveries       expected ${deliveries.expected}, received ${deliveries.received}: lost ${deliveries.lost}, ` +
        `duplicated ${deliveries.duplicated}, unexpected ${deliveries.unexpected}, altered ${deliveries.altered}`,
      `  subscribers      ${deliveries.completeSubscribers} of ${settings.devices} received every event they subscribed to`,
      `  POST latency     p50 ${latencyMs.post.p50} ms, p99 ${latencyMs.post.p99} ms, max ${latencyMs.post.max} ms`,
      `  stream delivery  p50 ${latencyMs.streamDelivery.p50} ms, p99 ${latencyMs.streamDelivery.p99} ms, max ${latencyMs.streamDelivery.max} ms (from POST sent)`,
      `  server RSS       start ${serverRssMB.start} MB, devices connected ${serverRssMB.connected} MB, peak ${serverRssMB.peak} MB, ` +
        `end ${serverRssMB.end} MB (after a full GC; ${serverRssMB.endBeforeGc} MB before)`,
      `  server           ${result.serverWarnings} warnings logged; exit code ${result.serverExit} after SIGTERM`,
      `  result           ${result.pass ? 'PASS' : 'FAIL'}`
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  }
  return result.pass ? 0 : 1
}

let code = 1
try {
  code = await main()
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`)
} finally {
  await cleanUp()
}
process.exit(code)
