// Crash safety and graceful shutdown of the real cred-server process (dist/: run `npm run build`
// first). Several connections keep POSTing events while the process is killed (SIGKILL) or
// asked to stop (SIGTERM, SIGINT); a restart on the same database then shows what was kept.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { Agent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { mariadbUnavailable, postgresUnavailable, testDatabase, type Backend } from '../helper.js'
import { bin, request, run, sandbox, type Sandbox } from '../process-helper.js'

// Six real servers under load: on a busy 2-core machine (tap runs other test files beside this
// one) that can take longer than .taprc's per-file timeout.
t.setTimeout(300_000)
// Each test has its own sandbox and database, and spends much of its time waiting (process
// starts, fsync, signals): three at a time.
t.jobs = 3
import { openStream } from '../sse-client.js'

/** Concurrent posting loops, each on its own keep-alive connection. */
const LOOPS = 8
/** Events acknowledged (201) before the process is signalled. */
const ACKED_BEFORE_SIGNAL = 240

// ---------------------------------------------------------------------------------------------
// The server process

/** The fields of a log line that the tests read. */
interface Log {
  level: number
  msg: string
  reqId?: string
  url?: string
  statusCode?: number
}

interface Cred {
  child: ChildProcess
  origin: string
  port: number
  logs: Log[]
  stderr: () => string
  /** resolves with the first log line matching `match` (already logged or still to come) */
  logged: (match: (line: Log) => boolean) => Promise<Log>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Starts cred-server in the sandbox and resolves once it serves. Unlike process-helper's
 * startServer, it parses each log line once: these tests make thousands of request log lines.
 */
function launch (t: Test, box: Sandbox): Promise<Cred> {
  const child = spawn(process.execPath, [bin('cred-server')], { cwd: box.cwd, env: box.env, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  const logs: Log[] = []
  const waiters: Array<{ match: (line: Log) => boolean, resolve: (line: Log) => void }> = []
  let partial = ''
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop()!
    for (const text of lines) {
      if (text.trim() === '') continue
      let line: Log
      try {
        const parsed = JSON.parse(text) as { level: number, msg: string, reqId?: string, req?: { url?: string }, res?: { statusCode?: number } }
        line = { level: parsed.level, msg: parsed.msg }
        if (parsed.reqId !== undefined) line.reqId = parsed.reqId
        if (parsed.req?.url !== undefined) line.url = parsed.req.url
        if (parsed.res?.statusCode !== undefined) line.statusCode = parsed.res.statusCode
      } catch {
        line = { level: 0, msg: text }
      }
      logs.push(line)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.match(line)) waiters.splice(i, 1)[0]!.resolve(line)
      }
    }
  })
  const logged = (match: (line: Log) => boolean) => {
    const seen = logs.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise<Log>((resolve, reject) => {
      waiters.push({ match, resolve })
      void exited.then(() => {
        // the last lines are read before 'close'
        const late = logs.find(match)
        if (late !== undefined) resolve(late)
        else reject(new Error(`cred-server ended without logging the line awaited\nstderr: ${stderr}`))
      })
    })
  }
  return logged((line) => line.msg.startsWith('cred is serving ')).then((line) => {
    const port = Number(/:(\d+)\//.exec(line.msg)![1])
    return { child, origin: `http://127.0.0.1:${port}`, port, logs, stderr: () => stderr, logged, exited }
  })
}

/** A sandbox whose credrc listens on a free loopback port and uses `database` (default: SQLite cred.db). */
function credrc (t: Test, database = "database:\n  database: 'cred.db'\n", extra = ''): Sandbox {
  const box = sandbox(t)
  // at debug: the request lines, which show what the server read
  writeFileSync(join(box.cwd, 'credrc'), `host: '127.0.0.1'\nport: 0\nlogLevel: debug\n${extra}${database}`)
  return box
}

/** A sandbox whose credrc uses a fresh database on the test server of `backend`. */
async function serverCredrc (t: Test, backend: 'postgresql' | 'mariadb'): Promise<Sandbox> {
  const db = await testDatabase(t, backend)
  return credrc(t, `database:\n  type: ${backend}\n  host: '${db.host}'\n  port: ${db.port}\n  user: '${db.user}'\n  database: '${db.database}'\n`)
}

async function writeKey (t: Test, box: Sandbox): Promise<string> {
  const res = await run(t, 'cred-gen', ['--write', '--json'], box)
  if (res.code !== 0) throw new Error(`cred-gen failed: ${res.stderr}`)
  return (JSON.parse(res.stdout) as { apikey: string }).apikey
}

async function authenticate (origin: string, apikey: string, body: Record<string, unknown>) {
  const res = await request(`${origin}/auth`, { method: 'POST', body: { apikey, ...body } })
  if (res.status !== 201) throw new Error(`auth failed: ${res.status} ${res.body}`)
  return res.json() as { id: number, sessionKey: string }
}

// ---------------------------------------------------------------------------------------------
// The client side of one request, as it saw it

type Outcome =
  /** a complete response: status line, headers and the whole body */
  | { kind: 'response', status: number, headers: IncomingHttpHeaders, body: string }
  /** the request failed; `responseStarted`: some of the response had arrived */
  | { kind: 'error', code: string, reusedSocket: boolean, responseStarted: boolean }

/** One request; `onWritten` is called once it has been handed to the operating system whole. */
function send (url: string, { method = 'GET', headers = {}, body, agent, onWritten }: {
  method?: string, headers?: Record<string, string>, body?: string, agent?: Agent, onWritten?: () => void
}): Promise<Outcome> {
  return new Promise((resolve) => {
    let responseStarted = false
    // assigned below: fail() may run before the request exists, if creating it throws
    let req: ClientRequest | undefined // eslint-disable-line prefer-const
    const fail = (err: NodeJS.ErrnoException) => resolve({
      kind: 'error', code: err.code ?? err.message, reusedSocket: req?.reusedSocket ?? false, responseStarted
    })
    req = httpRequest(url, {
      method,
      agent: agent ?? false,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
    }, (res) => {
      responseStarted = true
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body: text }))
      res.on('error', fail)
      res.on('aborted', () => fail(Object.assign(new Error('response aborted'), { code: 'ABORTED' })))
    })
    req.on('error', fail)
    if (onWritten !== undefined) req.on('finish', onWritten)
    req.end(body)
  })
}

// ---------------------------------------------------------------------------------------------
// The load: LOOPS loops, each with its own session and keep-alive connection, posting events
// one after the other until a request does not get a 201.

interface EventFields { name: string, location: string, action: string, value: string }

interface Sent {
  /** unique per request: in the URL (`?r=`, so the server's request log names it) and in the value */
  marker: string
  device: string
  event: EventFields
  /** the whole request has been handed to the operating system */
  written?: boolean
  outcome?: Outcome
  /** the id of the 201 answer */
  id?: number
}

class Load {
  readonly sent: Sent[] = []
  acked = 0
  private readonly targets: Array<{ count: number, resolve: () => void }> = []
  readonly done: Promise<void>

  constructor (origin: string, sessions: Array<{ device: string, sessionKey: string }>) {
    this.done = Promise.all(sessions.map((session, loop) => this.loop(origin, loop, session))).then(() => {
      for (const target of this.targets) target.resolve()
    })
  }

  /** requests written whole and not answered yet */
  inFlight (): Sent[] {
    return this.sent.filter((sent) => sent.written === true && sent.outcome === undefined)
  }

  /** resolves once `count` events have been acknowledged (or every loop has ended) */
  acknowledged (count: number): Promise<void> {
    if (this.acked >= count) return Promise.resolve()
    return new Promise((resolve) => this.targets.push({ count, resolve }))
  }

  private async loop (origin: string, loop: number, { device, sessionKey }: { device: string, sessionKey: string }) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (let n = 0; ; n++) {
        const marker = `${loop}-${n}`
        // a unique value with text of every width, so a torn or mangled write would show
        const event = { name: 'Crash', location: `Room ${loop}`, action: 'Posted', value: `${marker} ${randomBytes(48).toString('base64')} ü€𝄞` }
        const sent: Sent = { marker, device, event }
        this.sent.push(sent)
        const outcome = await send(`${origin}/events?r=${marker}`, {
          method: 'POST',
          agent,
          headers: { authorization: `Bearer ${sessionKey}` },
          body: JSON.stringify({ event }),
          onWritten: () => { sent.written = true }
        })
        sent.outcome = outcome
        if (outcome.kind !== 'response' || outcome.status !== 201) return
        sent.id = (JSON.parse(outcome.body) as { event: { id: number } }).event.id
        this.acked++
        for (let i = this.targets.length - 1; i >= 0; i--) {
          if (this.acked >= this.targets[i]!.count) this.targets.splice(i, 1)[0]!.resolve()
        }
      }
    } finally {
      agent.destroy()
    }
  }
}

async function startLoad (origin: string, apikey: string): Promise<Load> {
  const sessions = []
  for (let loop = 0; loop < LOOPS; loop++) {
    const device = `Loop ${loop} ${randomBytes(4).toString('hex')}`
    const { sessionKey } = await authenticate(origin, apikey, { device, location: `Room ${loop}` })
    sessions.push({ device, sessionKey })
  }
  return new Load(origin, sessions)
}

interface StoredEvent extends EventFields { id: number, device: string }

/** Every event in the database, read through a restarted server. */
async function storedEvents (origin: string, apikey: string): Promise<StoredEvent[]> {
  const { sessionKey } = await authenticate(origin, apikey, { device: 'Checker', location: 'Office' })
  const res = await send(`${origin}/events?full=true`, { headers: { authorization: `Bearer ${sessionKey}` } })
  if (res.kind !== 'response' || res.status !== 200) throw new Error(`listing the events failed: ${JSON.stringify(res)}`)
  return (JSON.parse(res.body) as { events: StoredEvent[] }).events
}

const markerOf = (value: string) => value.split(' ')[0]!

/**
 * What a restart finds, against what was sent: every acknowledged event is there, under the
 * id it was acknowledged with, with exactly the fields sent; every stored event is one that was
 * sent (nothing half-written or made up), and none is stored twice. Returns the markers of the
 * requests that were not acknowledged but whose event was stored anyway.
 */
function checkStored (t: Test, sent: Sent[], stored: StoredEvent[]): Set<string> {
  const byMarker = new Map(sent.map((request) => [request.marker, request]))
  const seen = new Map<string, StoredEvent>()
  const ids = new Set<number>()
  const strays: StoredEvent[] = []
  const duplicates: string[] = []
  const mangled: string[] = []
  for (const event of stored) {
    if (ids.has(event.id)) duplicates.push(`id ${event.id}`)
    ids.add(event.id)
    const marker = markerOf(event.value)
    const request = byMarker.get(marker)
    if (request === undefined) {
      strays.push(event)
      continue
    }
    if (seen.has(marker)) duplicates.push(marker)
    seen.set(marker, event)
    const { id: _id, ...fields } = event
    const expected = { device: request.device, ...request.event }
    if (JSON.stringify(pick(fields)) !== JSON.stringify(pick(expected))) mangled.push(`${marker}: stored ${JSON.stringify(pick(fields))}, sent ${JSON.stringify(pick(expected))}`)
  }
  const acked = sent.filter((request) => request.id !== undefined)
  const lost = acked.filter((request) => seen.get(request.marker)?.id !== request.id)
  t.same(lost.map((request) => request.marker), [], `all ${acked.length} acknowledged events are stored under their ids`)
  t.same(duplicates, [], 'no event is stored twice')
  t.same(mangled, [], 'every stored event has exactly the fields sent')
  t.same(strays, [], 'every stored event is one that was sent')
  return new Set([...seen.keys()].filter((marker) => byMarker.get(marker)!.id === undefined))
}

function pick (fields: { device: string } & EventFields) {
  return { device: fields.device, name: fields.name, location: fields.location, action: fields.action, value: fields.value }
}

/** Resolves once connecting to `port` is refused: the listening socket is closed. */
async function listenerClosed (port: number): Promise<void> {
  for (;;) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' })
      socket.once('connect', () => { socket.destroy(); resolve(false) })
      socket.once('error', () => resolve(true))
    })
    if (refused) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A POST whose headers and first half of the body are sent now, the rest only when `finish`
 * is called: a request in progress for as long as the test likes. It names itself in the
 * URL (`?r=marker`).
 */
function slowPost (origin: string, sessionKey: string, marker: string, event: EventFields, agent: Agent | false = false) {
  const body = Buffer.from(JSON.stringify({ event }))
  const half = Math.floor(body.length / 2)
  let resolveOutcome: (outcome: Outcome) => void = () => {}
  const outcome = new Promise<Outcome>((resolve) => { resolveOutcome = resolve })
  let responseStarted = false
  const req = httpRequest(`${origin}/events?r=${marker}`, {
    method: 'POST',
    agent,
    headers: { authorization: `Bearer ${sessionKey}`, 'content-type': 'application/json', 'content-length': String(body.length) }
  }, (res) => {
    responseStarted = true
    let text = ''
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { text += chunk })
    res.on('end', () => resolveOutcome({ kind: 'response', status: res.statusCode ?? 0, headers: res.headers, body: text }))
  })
  req.on('error', (err: NodeJS.ErrnoException) => resolveOutcome({ kind: 'error', code: err.code ?? err.message, reusedSocket: false, responseStarted }))
  req.flushHeaders()
  req.write(body.subarray(0, half))
  return {
    outcome,
    finish: () => { req.end(body.subarray(half)) },
    abandon: () => { req.destroy() }
  }
}

const serverStarted = (cred: Cred, marker: string) =>
  cred.logged((line) => line.msg === 'incoming request' && line.url?.endsWith(`?r=${marker}`) === true)

// ---------------------------------------------------------------------------------------------

async function sigkill (t: Test, box: Sandbox) {
  const apikey = await writeKey(t, box)
  const first = await launch(t, box)
  const load = await startLoad(first.origin, apikey)
  await load.acknowledged(ACKED_BEFORE_SIGNAL)
  const pending = load.inFlight().length
  first.child.kill('SIGKILL')
  await load.done
  const { signal } = await first.exited
  t.equal(signal, 'SIGKILL', 'killed mid-stream')
  t.ok(pending > 0, `requests were in progress when it was killed (${pending})`)
  const unanswered = load.sent.filter((request) => request.id === undefined)
  t.ok(unanswered.every((request) => request.outcome?.kind === 'error'),
    'the only requests not acknowledged are those the kill cut off (no error status)')

  const second = await launch(t, box)
  const stored = await storedEvents(second.origin, apikey)
  const storedUnanswered = checkStored(t, load.sent, stored)
  t.ok(storedUnanswered.size <= LOOPS, `at most one cut-off request per connection was stored anyway (${storedUnanswered.size})`)
  t.equal(stored.length, load.acked + storedUnanswered.size, `${stored.length} events stored: the ${load.acked} acknowledged and ${storedUnanswered.size} cut off after the commit`)

  // and the database goes on: new events get higher ids
  const after = await startLoad(second.origin, apikey)
  await after.acknowledged(1)
  second.child.kill('SIGKILL')
  await after.done
  const newIds = after.sent.flatMap((request) => request.id ?? [])
  t.ok(newIds.length > 0 && Math.min(...newIds) > Math.max(...stored.map((event) => event.id)), 'new events get higher ids')
}

t.test('SIGKILL while 8 connections post events: every acknowledged event survives, whole and once (SQLite)', async (t) => {
  const box = credrc(t)
  await sigkill(t, box)
})

t.test('SIGKILL while 8 connections post events: every acknowledged event survives, whole and once (PostgreSQL)',
  { skip: postgresUnavailable ?? false }, async (t) => {
    await sigkill(t, await serverCredrc(t, 'postgresql'))
  })

t.test('SIGKILL while 8 connections post events: every acknowledged event survives, whole and once (MariaDB)',
  { skip: mariadbUnavailable ?? false }, async (t) => {
    await sigkill(t, await serverCredrc(t, 'mariadb'))
  })

const shuttingDown = { status: 503, message: 'Service Unavailable: the server is shutting down' }

async function sigterm (t: Test, box: Sandbox, backend: Backend) {
  const apikey = await writeKey(t, box)
  const first = await launch(t, box)
  const { origin } = first
  const auth = (sessionKey: string) => ({ authorization: `Bearer ${sessionKey}` })

  // Besides the load, connections that must not hold the shutdown open, each a keep-alive
  // connection the client would keep: one left idle...
  const keepAlive = () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    return agent
  }
  const watcher = await authenticate(origin, apikey, { device: 'Watcher', location: 'Office', subscribe: { Nothing: {} } })
  const warmUp = await send(`${origin}/events?limit=1`, { agent: keepAlive(), headers: auth(watcher.sessionKey) })
  t.equal(warmUp.kind === 'response' && warmUp.status, 200, 'a keep-alive connection, left idle')
  // ...and requests in progress for sure when the signal comes: an event stream, a long poll
  // that nothing will answer, and a POST whose body is half sent
  const stream = await openStream(`${origin}/events/stream`, auth(watcher.sessionKey))
  t.equal(stream.status, 200, 'an event stream is open')
  const longPoll = send(`${origin}/clients/${watcher.id}/subscribedevents?wait=60`, { agent: keepAlive(), headers: auth(watcher.sessionKey) })
  const slowEvent = { name: 'Slow', location: 'Office', action: 'Uploaded', value: `slow ${randomBytes(8).toString('hex')}` }
  const slow = slowPost(origin, watcher.sessionKey, 'slow', slowEvent, keepAlive())
  t.teardown(slow.abandon)
  await serverStarted(first, 'slow')
  await first.logged((line) => line.msg === 'incoming request' && line.url?.includes('wait=60') === true)

  const load = await startLoad(origin, apikey)
  await load.acknowledged(ACKED_BEFORE_SIGNAL)
  // in flight at the signal: written whole before the signal was sent, and not answered yet
  const inFlight = new Set(load.inFlight().map((request) => request.marker))
  first.child.kill('SIGTERM')
  await first.logged((line) => line.msg === 'SIGTERM received: closing')
  await listenerClosed(first.port)
  t.pass('after SIGTERM, new connections are refused')

  const poll = await longPoll
  t.same(poll.kind === 'response' && [poll.status, JSON.parse(poll.body)], [200, { status: 200, message: 'OK', events: [] }],
    'the long poll is answered at once, with what there is (nothing)')
  t.equal(poll.kind === 'response' && poll.headers.connection, 'close', 'with Connection: close')
  await stream.ended
  t.pass('the event stream is ended by the server')

  // the server waits for the POST still in progress: its body arrives only now
  slow.finish()
  const slowOutcome = await slow.outcome
  t.equal(slowOutcome.kind === 'response' && slowOutcome.status, 201, 'the POST in progress when the signal came is answered 201')
  const slowId = slowOutcome.kind === 'response' ? (JSON.parse(slowOutcome.body) as { event: { id: number } }).event.id : -1
  t.equal(slowOutcome.kind === 'response' && slowOutcome.headers.connection, 'close', 'with Connection: close')

  await load.done
  const { code, signal } = await first.exited
  t.same({ code, signal }, { code: 0, signal: null }, 'exit code 0, though a keep-alive connection was left open')
  t.ok(first.logs.some((line) => line.msg === 'closed'), 'logs that it closed')
  t.equal(first.stderr(), '', 'nothing on stderr')
  if (backend === 'sqlite') t.notOk(existsSync(join(box.cwd, 'cred.db-wal')), 'the database was closed (SQLite removes the WAL file on a clean close)')
  t.ok(inFlight.size > 0, `requests were in flight when the signal was sent (${inFlight.size})`)

  // What counts, precisely:
  // - In flight at the signal: a request the client had written whole (its 'finish' event)
  //   before the test sent SIGTERM, and that had no answer yet. The server holds it, if only
  //   in its socket buffer, when the signal arrives. It must be answered 201, completely.
  // - Sent after the signal: besides a 201, it may be refused cleanly, in one of these ways:
  //   the connection is refused (the listener has closed); or the 503 envelope saying the
  //   server is shutting down, with Connection: close; or the connection is reset before any
  //   byte of a response, and the server's request log shows it never read the request (a
  //   new connection left in the accept queue when the listener closed, or a keep-alive
  //   connection closed as idle at the very moment the request went out).
  // - Whatever the server read (its 'incoming request' log line names the `?r=` marker), it
  //   completed, and the client got the whole response.
  // Anything else is a failed request. Events of refused requests must not be stored.
  const reqIds = new Map<string, string>()
  for (const line of first.logs) {
    const marker = line.msg === 'incoming request' ? /[?&]r=([^&]+)/.exec(line.url ?? '')?.[1] : undefined
    if (marker !== undefined) reqIds.set(marker, line.reqId!)
  }
  const completed = new Set(first.logs.filter((line) => line.msg === 'request completed').map((line) => line.reqId))
  const failures: string[] = []
  const refused = { connection: [] as Sent[], status503: [] as Sent[], reset: [] as Sent[] }
  for (const request of load.sent) {
    const { marker, outcome } = request
    const reqId = reqIds.get(marker)
    if (reqId !== undefined && !completed.has(reqId)) failures.push(`${marker}: the server read it and never completed it`)
    if (reqId !== undefined && outcome?.kind !== 'response') failures.push(`${marker}: read by the server, but the client got ${JSON.stringify(outcome)}`)
    if (outcome?.kind === 'response' && outcome.status === 201) continue
    if (inFlight.has(marker)) {
      failures.push(`${marker}: in flight at the signal, and got ${JSON.stringify(outcome)}`)
    } else if (outcome?.kind === 'error' && outcome.code === 'ECONNREFUSED') {
      refused.connection.push(request)
    } else if (outcome?.kind === 'response' && outcome.status === 503 && outcome.body === JSON.stringify(shuttingDown) &&
      outcome.headers.connection === 'close') {
      refused.status503.push(request)
    } else if (outcome?.kind === 'error' && !outcome.responseStarted && reqId === undefined) {
      refused.reset.push(request)
    } else {
      failures.push(`${marker}: sent after the signal, and got ${JSON.stringify(outcome)}`)
    }
  }
  t.same(failures, [], `no request failed: the ${inFlight.size} in flight at the signal and ${load.acked - inFlight.size} ` +
    `others answered 201; ${refused.connection.length} connections refused, ${refused.status503.length} answered 503, ` +
    `${refused.reset.length} reset unread`)
  // Stricter, for these clients: each sends its next request as soon as it has an answer, so
  // none is left on a connection the server closes as idle. The server answers what arrives
  // on open connections for a moment after the signal, with Connection: close; then the
  // clients' new connections are refused. No reset leaves a client unsure whether its POST
  // was stored.
  t.same(refused.reset.map((request) => request.marker), [], 'no connection was reset: each loop ended with a refused connection')

  const second = await launch(t, box)
  const stored = await storedEvents(second.origin, apikey)
  const withSlow: Sent[] = [...load.sent, { marker: 'slow', device: 'Watcher', event: slowEvent, ...(slowId === -1 ? {} : { id: slowId }) }]
  const storedUnanswered = checkStored(t, withSlow, stored)
  t.same([...storedUnanswered], [], 'no event was stored without its request being answered 201')
  t.ok(stored.some((event) => event.id === slowId && event.value === slowEvent.value), 'the slow POST is stored')
  const refusedMarkers = new Set([...refused.connection, ...refused.status503, ...refused.reset].map((request) => request.marker))
  t.same(stored.filter((event) => refusedMarkers.has(markerOf(event.value))), [], 'no refused request was stored')
  t.equal(stored.length, load.acked + 1, 'every event stored was acknowledged')

  // every message the stream delivered is a complete, stored event, in id order
  const storedById = new Map(stored.map((event) => [event.id, event]))
  const streamed = stream.messages.map((message) => JSON.parse(message.data) as StoredEvent)
  t.ok(streamed.length > 0, `the stream delivered events (${streamed.length})`)
  t.ok(streamed.every((event, i) => i === 0 || event.id > streamed[i - 1]!.id), 'in ascending id order')
  t.ok(streamed.every((event) => storedById.get(event.id)?.value === event.value), 'each one as stored')
  second.child.kill('SIGKILL')
}

t.test('SIGTERM while 8 connections post events: no request in flight fails, exit 0, nothing lost (SQLite)', async (t) => {
  await sigterm(t, credrc(t), 'sqlite')
})

t.test('SIGTERM while 8 connections post events: no request in flight fails, exit 0, nothing lost (PostgreSQL)',
  { skip: postgresUnavailable ?? false }, async (t) => {
    await sigterm(t, await serverCredrc(t, 'postgresql'), 'postgresql')
  })

t.test('SIGTERM while 8 connections post events: no request in flight fails, exit 0, nothing lost (MariaDB)',
  { skip: mariadbUnavailable ?? false }, async (t) => {
    await sigterm(t, await serverCredrc(t, 'mariadb'), 'mariadb')
  })

t.test('a request still in progress when the grace period runs out: exit 1 with a log line', async (t) => {
  const box = credrc(t, undefined, 'shutdownGrace: 1\n')
  const apikey = await writeKey(t, box)
  const cred = await launch(t, box)
  const { sessionKey } = await authenticate(cred.origin, apikey, { device: 'Stuck', location: 'Office' })
  const stuck = slowPost(cred.origin, sessionKey, 'stuck', { name: 'Stuck', location: 'Office', action: 'Never', value: 'finished' })
  t.teardown(stuck.abandon)
  await serverStarted(cred, 'stuck')
  cred.child.kill('SIGTERM')
  const { code } = await cred.exited
  t.equal(code, 1, 'exit code 1')
  const line = cred.logs.find((line) => line.msg.startsWith('requests still in progress after the shutdown grace period'))
  t.ok(line, 'logs why')
  t.equal(line?.level, 50, 'as an error')
  t.match(line?.msg, /shutdownGrace: 1 s/, 'naming the setting')
  t.notOk(cred.logs.some((line) => line.msg === 'closed'))
})

t.test('a second signal while closing exits 1 at once, with a log line', async (t) => {
  const box = credrc(t)
  const apikey = await writeKey(t, box)
  const cred = await launch(t, box)
  const { sessionKey } = await authenticate(cred.origin, apikey, { device: 'Stuck', location: 'Office' })
  const stuck = slowPost(cred.origin, sessionKey, 'stuck', { name: 'Stuck', location: 'Office', action: 'Never', value: 'finished' })
  t.teardown(stuck.abandon)
  await serverStarted(cred, 'stuck')
  cred.child.kill('SIGINT')
  await cred.logged((line) => line.msg === 'SIGINT received: closing')
  cred.child.kill('SIGTERM')
  const { code } = await cred.exited
  t.equal(code, 1, 'exit code 1 (the 10 s grace period has not run out)')
  const line = cred.logs.find((line) => line.msg === 'SIGTERM received again while closing: exiting now')
  t.ok(line, 'logs why')
  t.equal(line?.level, 50, 'as an error')
})
