import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { AccessEnded, EventRecord, SessionRecord, Subscription } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** live delivery of new events to open streams and long polls */
    live: LiveDelivery
  }
}

/** Which events a stream or long poll wants. */
export interface EventMatcher {
  /** event name → location filter (null = any location); null = every event */
  subscriptions: Map<string, string | null> | null
  /** only events posted by this client */
  clientId?: number
}

export type Deliver = (event: EventRecord) => void

export interface LiveDelivery {
  /** Builds a matcher from a client's subscriptions. */
  matcherFor (subscriptions: Subscription[]): EventMatcher
  /**
   * Serves an SSE stream: every matching event with id > `after` from the database in
   * ascending order, then live ones, each exactly once, until the client goes away, falls
   * more than the buffer limit behind, its session ends or its API key is revoked, or the
   * server closes. 429 beyond the per-session or per-key limit of streams and long polls.
   */
  stream (request: FastifyRequest, reply: FastifyReply, options: StreamOptions): Promise<void>
  /**
   * Long polling: runs `query`; when it finds nothing and `waitSeconds` > 0, holds the request
   * until a matching event arrives (and runs it again) or the time is up (empty list). A
   * waiting poll counts toward the same limits as streams (429 beyond), and ends with 401 when
   * its session ends or its API key is revoked meanwhile.
   */
  poll<T extends { id: number }> (reply: FastifyReply, matcher: EventMatcher, waitSeconds: number | undefined, query: () => Promise<T[]>): Promise<T[]>
  /** event streams open now (for metrics) */
  readonly openStreams: number
  /** long polls waiting for an event now (for metrics) */
  readonly waitingPolls: number
}

export interface StreamOptions {
  matcher: EventMatcher
  after: number
  /** matching events with id > after, ascending, at most `limit` */
  catchUp: (after: number, limit: number) => Promise<EventRecord[]>
}

const PAGE = 500

/** An event's SSE message (its full item as data), as bytes: bare, and as one HTTP/1.1 chunk. */
interface Frame { origin: string, bare: Buffer, chunk: Buffer }
const crlf = Buffer.from('\r\n')

interface Listener { matcher: EventMatcher, deliver: Deliver }

export function matches (matcher: EventMatcher, event: EventRecord): boolean {
  if (matcher.clientId !== undefined && matcher.clientId !== event.clientId) return false
  if (matcher.subscriptions === null) return true
  const location = matcher.subscriptions.get(event.name)
  return location === null || (location !== undefined && location === event.location)
}

/**
 * Open streams indexed by event name, so a new event is matched against the streams that
 * subscribed to its name (and the few that take every event) — never against all of them,
 * and never with a database query per stream.
 */
export class Fanout {
  private readonly byName = new Map<string, Set<Listener>>()
  private readonly everyName = new Set<Listener>()

  add (listener: Listener): () => void {
    const names = listener.matcher.subscriptions
    if (names === null) {
      this.everyName.add(listener)
      return () => { this.everyName.delete(listener) }
    }
    for (const name of names.keys()) {
      let set = this.byName.get(name)
      if (set === undefined) this.byName.set(name, set = new Set())
      set.add(listener)
    }
    return () => {
      for (const name of names.keys()) {
        const set = this.byName.get(name)
        set?.delete(listener)
        if (set?.size === 0) this.byName.delete(name)
      }
    }
  }

  /** true when no stream or long poll is listening */
  get empty (): boolean {
    return this.everyName.size === 0 && this.byName.size === 0
  }

  dispatch (event: EventRecord): void {
    for (const listener of this.everyName) {
      if (matches(listener.matcher, event)) listener.deliver(event)
    }
    const named = this.byName.get(event.name)
    if (named === undefined) return
    for (const listener of named) {
      if (matches(listener.matcher, event)) listener.deliver(event)
    }
  }
}

/** A stream or waiting long poll, held open for one session. */
interface Hold {
  clientId: number
  apikeyId: number
  /** ends it because its session ended or its key was revoked */
  end: () => void
}

/** What is held open, by session (client id) and by API key: for the limits, and to end them. */
class Holds {
  private readonly byClient = new Map<number, Set<Hold>>()
  private readonly byKey = new Map<number, Set<Hold>>()

  get size (): number {
    return this.byClient.size
  }

  perClient (clientId: number): number {
    return this.byClient.get(clientId)?.size ?? 0
  }

  perKey (apikeyId: number): number {
    return this.byKey.get(apikeyId)?.size ?? 0
  }

  clientIds (): number[] {
    return [...this.byClient.keys()]
  }

  add (hold: Hold): () => void {
    const add = (map: Map<number, Set<Hold>>, id: number) => {
      let set = map.get(id)
      if (set === undefined) map.set(id, set = new Set())
      set.add(hold)
    }
    const remove = (map: Map<number, Set<Hold>>, id: number) => {
      const set = map.get(id)
      set?.delete(hold)
      if (set?.size === 0) map.delete(id)
    }
    add(this.byClient, hold.clientId)
    add(this.byKey, hold.apikeyId)
    let held = true
    return () => {
      if (!held) return
      held = false
      remove(this.byClient, hold.clientId)
      remove(this.byKey, hold.apikeyId)
    }
  }

  /** Ends what is held for these sessions, or for every session of these keys; returns how many. */
  end (ended: Exclude<AccessEnded, 'unknown'>): number {
    const map = 'clientIds' in ended ? this.byClient : this.byKey
    const ids = 'clientIds' in ended ? ended.clientIds : ended.apikeyIds
    let count = 0
    for (const id of ids) {
      for (const hold of [...map.get(id) ?? []]) {
        hold.end()
        count++
      }
    }
    return count
  }

  /** Ends everything held. */
  endAll (): number {
    return this.end({ clientIds: this.clientIds() })
  }
}

/**
 * Ids of sessions ended and keys revoked in the last minute: a stream or long poll whose
 * request was authorized just before its session ended must not start after it.
 */
class RecentlyEnded {
  private readonly at = new Map<number, number>()

  add (ids: readonly number[], now: number): void {
    for (const id of ids) {
      this.at.delete(id)
      this.at.set(id, now)
    }
    for (const [id, when] of this.at) {
      if (when > now - 60_000 && this.at.size <= 10_000) break
      this.at.delete(id)
    }
  }

  has (id: number): boolean {
    return this.at.has(id)
  }
}

/** How often the sessions of what is held open are checked even without a notification. */
const SWEEP_MS = 500

/**
 * One notifier per instance, fed by the repositories' `notifications`: they tell of committed
 * events either with the events themselves, dispatched at once (this process's own commits,
 * e.g. on SQLite), or with the highest id committed by any instance (e.g. PostgreSQL's
 * LISTEN/NOTIFY): then the new events are read once from the database in id order and
 * dispatched to this instance's streams.
 *
 * Streams and waiting long polls end when their session ends or their key is revoked, by
 * this instance or another: the repositories tell `access` listeners what ended (by name,
 * or "unknown": then every held session is re-checked in one query, and no event is
 * dispatched until that is done), and a sweep checks them every SWEEP_MS anyway.
 * An event is dispatched only once every revocation committed before it has been handled:
 * where every instance's commits are told (`everyCommit`), events are dispatched only up to
 * the highest id announced by a notification already received (notifications arrive in commit
 * order); otherwise the repositories see other processes' commits before telling of their own.
 */
export default fp(async function live (fastify) {
  const fanout = new Fanout()
  const streams = new Set<() => void>()
  const polls = new Set<AbortController>()
  const holds = new Holds()
  const { repos } = fastify
  const notifications = repos.notifications
  const { maxStreamsPerSession, maxStreamsPerKey } = fastify.config

  // Events with a higher id are not dispatched yet: their notification has not arrived, and
  // with it every access change committed before them.
  let announced = notifications.everyCommit ? await repos.events.latestId() : Number.POSITIVE_INFINITY

  let closing = false
  // While a re-check runs, events are held back and then dispatched in order.
  let rechecking: Promise<void> | null = null
  let recheckAgain = false
  let readLatest = false
  const held: EventRecord[] = []
  // set once the notification listener exists, below; a dispatch before that has nothing to read
  let readNew: (() => void) | undefined // eslint-disable-line prefer-const

  function dispatch (event: EventRecord): void {
    if (rechecking !== null) held.push(event)
    else fanout.dispatch(event)
  }

  function report (what: string, ended: number) {
    if (ended > 0) fastify.log.info({ ended }, `ended streams and long polls: ${what}`)
  }

  async function recheckOnce (withLatest: boolean): Promise<void> {
    try {
      // after a reconnect: events up to the newest committed now may be dispatched once the
      // sessions are re-checked below (that check sees every revocation committed before them)
      const latest = withLatest ? await repos.events.latestId() : undefined
      const ended = await repos.access.ended(holds.clientIds())
      report('their session ended or their API key was revoked', holds.end({ clientIds: ended }))
      if (latest !== undefined && latest > announced) {
        announced = latest
        readNew?.()
      }
    } catch (err) {
      // whose session is still valid cannot be told: end them all (they reconnect)
      if (!closing) fastify.log.error({ err }, 'checking the sessions of open streams and long polls failed')
      report('their sessions could not be checked', holds.endAll())
    }
  }

  /** Re-checks every held session, holding back events until done; `withLatest` after a reconnect. */
  function recheck (withLatest = false): void {
    recheckAgain = true
    readLatest ||= withLatest
    if (rechecking !== null) return
    rechecking = (async () => {
      // not within the caller: the repositories may call a listener in the middle of a read
      await Promise.resolve()
      try {
        while (recheckAgain) {
          recheckAgain = false
          const latest = readLatest
          readLatest = false
          await recheckOnce(latest)
        }
      } finally {
        rechecking = null
        let next = 0
        // (a dispatch may start another re-check, which holds the rest again)
        while (rechecking === null && next < held.length) fanout.dispatch(held[next++]!) // eslint-disable-line no-unmodified-loop-condition
        held.splice(0, next)
      }
    })()
  }

  const endedClients = new RecentlyEnded()
  const revokedKeys = new RecentlyEnded()
  let lastUnknown = Number.NEGATIVE_INFINITY
  const stopListening = repos.access.listen((ended) => {
    const now = Date.now()
    if (ended === 'unknown') {
      lastUnknown = now
      if (holds.size > 0) recheck()
      return
    }
    if ('clientIds' in ended) endedClients.add(ended.clientIds, now)
    else revokedKeys.add(ended.apikeyIds, now)
    report('clientIds' in ended ? `session ${ended.clientIds.join(', ')} ended` : `API key ${ended.apikeyIds.join(', ')} revoked`, holds.end(ended))
  })

  /**
   * Registers a stream or long poll of the request's session: 429 beyond the limits, 401 when
   * its session ended since the request was authorized.
   */
  function hold (reply: FastifyReply, end: () => void): () => void {
    const session: SessionRecord = reply.request.client!
    if (endedClients.has(session.id) || revokedKeys.has(session.apikeyId)) {
      throw fastify.httpErrors.unauthorized('Not Authenticated')
    }
    if (holds.perClient(session.id) >= maxStreamsPerSession) {
      throw fastify.httpErrors.tooManyRequests(`Too many open streams and long polls: at most ${maxStreamsPerSession} per session`)
    }
    if (holds.perKey(session.apikeyId) >= maxStreamsPerKey) {
      throw fastify.httpErrors.tooManyRequests(`Too many open streams and long polls: at most ${maxStreamsPerKey} per API key`)
    }
    const release = holds.add({ clientId: session.id, apikeyId: session.apikeyId, end })
    // something may have ended elsewhere since the request was authorized (with a margin: the clocks differ)
    if (lastUnknown >= Date.now() - reply.elapsedTime - 1000) recheck()
    return release
  }

  /**
   * Rows just read from the database, as far as they may be handed out now: once every
   * access change committed before them has been handled (the caller then checks that its
   * session was not ended by it).
   */
  async function settled<T extends { id: number }> (rows: T[]): Promise<T[]> {
    repos.access.look()
    // (the re-check clears it when it ends)
    while (rechecking !== null) await rechecking // eslint-disable-line no-unmodified-loop-condition
    const horizon = announced
    return rows.length === 0 || rows.every((row) => row.id <= horizon) ? rows : rows.filter((row) => row.id <= horizon)
  }

  // The sweep catches what no notification told (a change made by hand in SQL; with SQLite,
  // another process's revocation while nothing here reads the database). It holds no event
  // back, and a failure ends nothing: the notifications and re-checks vouch for the order.
  let sweeping = false
  let sweepFailed = false
  const sweep = setInterval(() => {
    if (holds.size === 0 || sweeping) return
    sweeping = true
    repos.access.ended(holds.clientIds())
      .then((ended) => {
        sweepFailed = false
        report('their session ended or their API key was revoked (seen by the periodic check)', holds.end({ clientIds: ended }))
      }, (err: unknown) => {
        if (!sweepFailed && !closing) fastify.log.warn({ err }, 'the periodic check of the sessions of open streams and long polls failed')
        sweepFailed = true
      })
      .finally(() => { sweeping = false })
  }, SWEEP_MS)
  sweep.unref()

  // A notification naming only the highest id committed: the events up to it are read from the
  // database, in id order. Events above the cursor have not been dispatched yet. Reads are
  // serialised: a notification that arrives during a read is covered by the read after it.
  let cursor = announced
  let reading: Promise<void> | null = null
  let again = false
  const readBatches = async (): Promise<void> => {
    do {
      again = false
      for (;;) {
        const batch = await repos.events.listAfter(cursor, 500)
        let ahead = false
        for (const event of batch) {
          // not announced yet: read again when it is
          if (event.id > announced) {
            ahead = true
            break
          }
          cursor = event.id
          dispatch(event)
        }
        if (ahead || batch.length < 500) break
      }
    } while (again)
  }
  const onNotify = (latest?: number) => {
    if (latest !== undefined && latest > announced) announced = latest
    if (reading !== null) {
      again = true
      return
    }
    // Nobody listens: there is nothing to dispatch, only the cursor moves on. A stream or
    // long poll starts listening before it reads the database, so what was committed before
    // that, it reads itself. (Posting then costs no second query per insert.)
    if (latest !== undefined && fanout.empty) {
      cursor = Math.max(cursor, latest)
      return
    }
    reading = readBatches()
      .catch((err: unknown) => fastify.log.error({ err }, 'reading new events for live delivery failed'))
      .finally(() => { reading = null })
  }
  readNew = () => onNotify()
  // A notification with the events themselves dispatches them at once. After a (re)connect,
  // what was committed while the listener was away was not announced: re-check the sessions,
  // then catch up to the newest event.
  const subscription = await notifications.listen(({ latest, events }) => {
    if (events === undefined) onNotify(latest)
    else for (const event of events) dispatch(event)
  }, () => {
    recheck(true)
    onNotify()
  })
  fastify.addHook('onClose', async () => {
    await subscription.close()
  })

  fastify.addHook('onClose', async () => {
    clearInterval(sweep)
    stopListening()
  })

  // Closing the server ends open streams, so it is not held open by them.
  fastify.addHook('preClose', async () => {
    closing = true
    for (const end of streams) end()
    for (const poll of polls) poll.abort()
  })

  const bufferLimit = fastify.config.streamBufferLimit

  // A live event goes to every stream alike: its message is made once per origin (the streams of
  // one host share it), not once per stream.
  const frames = new WeakMap<EventRecord, Frame>()
  function frameOf (event: EventRecord, origin: string): Frame {
    let frame = frames.get(event)
    if (frame === undefined || frame.origin !== origin) {
      const bare = Buffer.from(`id: ${event.id}\nevent: event\ndata: ${fastify.items.eventJson(origin, event)}\n\n`)
      frame = { origin, bare, chunk: Buffer.concat([Buffer.from(`${bare.length.toString(16)}\r\n`), bare, crlf]) }
      frames.set(event, frame)
    }
    return frame
  }

  async function stream (request: FastifyRequest, reply: FastifyReply, { matcher, after, catchUp }: StreamOptions): Promise<void> {
    let ended = false
    const release = hold(reply, () => {
      ended = true
      end()
    })
    const sse = reply.sse
    sse.keepAlive()
    sse.sendHeaders(200)
    // a first comment flushes the response head, so clients (and proxies) see the stream open now
    const { raw } = reply
    raw.write(': connected\n\n')
    const socket = raw.socket
    if (socket === null) {
      // the client is gone already
      release()
      return
    }
    const origin = `${request.protocol}://${request.host}`
    let lastSent = after
    let live = false
    let missed = false
    let writing = false
    const queue: EventRecord[] = []

    const end = () => {
      remove()
      streams.delete(end)
      release()
      sse.close()
    }
    // A message goes to the socket as the bytes of one HTTP/1.1 chunk (or bare, where the response
    // is not chunked: HTTP/1.0), after what the response wrote before it. The response's own
    // write would cork the socket, defer the write to the next tick and send four pieces.
    // False: wait for 'drain'.
    const write = raw.chunkedEncoding
      ? (event: EventRecord): boolean => socket.write(frameOf(event, origin).chunk)
      : (event: EventRecord): boolean => socket.write(frameOf(event, origin).bare)
    const drained = () => new Promise<void>((resolve) => {
      if (socket.destroyed) return resolve()
      const done = () => {
        socket.off('drain', done).off('close', done)
        resolve()
      }
      socket.on('drain', done).on('close', done)
    })
    const send = async (event: EventRecord) => {
      if (!write(event)) await drained()
    }
    /** Writes a live event unless it went out already; false: the socket is full. */
    const deliverNow = (event: EventRecord): boolean => {
      if (event.id <= lastSent) return true
      lastSent = event.id
      fastify.metrics.delivered(event.time)
      return write(event)
    }
    const waitForDrain = () => {
      writing = true
      drained().then(() => {
        writing = false
        pump()
      })
    }
    // what queued while the socket was full
    const pump = () => {
      while (!writing && queue.length > 0 && sse.isConnected) { // eslint-disable-line no-unmodified-loop-condition
        if (!deliverNow(queue.shift()!)) waitForDrain()
      }
    }
    const remove = fanout.add({
      matcher,
      deliver (event) {
        if (!live) {
          missed = true
          return
        }
        if (!writing) {
          if (sse.isConnected && !deliverNow(event)) waitForDrain()
          return
        }
        queue.push(event)
        if (queue.length > bufferLimit) {
          request.log.warn({ bufferLimit }, 'stream closed: the client fell too far behind (it can reconnect with Last-Event-ID)')
          end()
        }
      }
    })
    streams.add(end)
    sse.onClose(() => {
      remove()
      streams.delete(end)
      release()
    })

    // Catch up from the database. Events that arrive meanwhile are not queued (the queue
    // would grow with the backlog); another round reads them, until a round sees none.
    // Events not yet announced are left to live delivery.
    try {
      do {
        missed = false
        for (;;) {
          const batch = await catchUp(lastSent, PAGE)
          const ready = await settled(batch)
          for (const event of ready) {
            if (ended || !sse.isConnected) return
            await send(event)
            lastSent = event.id
          }
          if (ready.length < batch.length || batch.length < PAGE) break
        }
      } while (missed && sse.isConnected)
      live = true
    } catch (err) {
      // the response has started: end the stream; the client reconnects with Last-Event-ID
      request.log.error({ err }, 'stream catch-up failed')
      end()
    }
  }

  /** Resolves true when a matching event arrives, false after `ms` or when `signal` aborts. */
  function waitFor (matcher: EventMatcher, ms: number, signal: AbortSignal) {
    // finish() may run before the timer is set (a listener called at once)
    let timer: NodeJS.Timeout | undefined // eslint-disable-line prefer-const
    let settle: (arrived: boolean) => void = () => {}
    const arrived = new Promise<boolean>((resolve) => { settle = resolve })
    const finish = (result: boolean) => {
      remove()
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      settle(result)
    }
    const onAbort = () => finish(false)
    const remove = fanout.add({ matcher, deliver: () => finish(true) })
    timer = setTimeout(() => finish(false), ms)
    signal.addEventListener('abort', onAbort, { once: true })
    return { arrived, cancel: () => finish(false) }
  }

  async function poll<T extends { id: number }> (reply: FastifyReply, matcher: EventMatcher, waitSeconds: number | undefined, query: () => Promise<T[]>): Promise<T[]> {
    if (waitSeconds === undefined || waitSeconds <= 0) return query()
    const deadline = Date.now() + waitSeconds * 1000
    const controller = new AbortController()
    let ended = false
    const release = hold(reply, () => {
      ended = true
      controller.abort()
    })
    const onClose = () => controller.abort()
    reply.raw.once('close', onClose)
    polls.add(controller)
    const notAuthenticated = () => fastify.httpErrors.unauthorized('Not Authenticated')
    try {
      for (;;) {
        // listen before querying, so an event committed in between is not missed
        const waiter = waitFor(matcher, deadline - Date.now(), controller.signal)
        const rows = await settled(await query())
        if (ended) {
          waiter.cancel()
          throw notAuthenticated()
        }
        if (rows.length > 0 || Date.now() >= deadline || controller.signal.aborted) {
          waiter.cancel()
          return rows
        }
        if (!await waiter.arrived) {
          if (ended) throw notAuthenticated()
          return rows
        }
      }
    } finally {
      release()
      polls.delete(controller)
      reply.raw.off('close', onClose)
    }
  }

  fastify.decorate('live', {
    poll,
    matcherFor (subscriptions) {
      return { subscriptions: new Map(subscriptions.map((s) => [s.eventName, s.location])) }
    },
    stream,
    get openStreams () { return streams.size },
    get waitingPolls () { return polls.size }
  } satisfies LiveDelivery)
}, { name: 'cred-live', dependencies: ['cred-config', 'cred-repositories', 'cred-items', 'cred-metrics'] })
