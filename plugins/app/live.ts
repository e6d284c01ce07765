import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { EventRecord, Subscription } from '../../db/index.js'

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
  /** Called after an event is committed on this instance. */
  published (event: EventRecord): void
  /** Builds a matcher from a client's subscriptions. */
  matcherFor (subscriptions: Subscription[]): EventMatcher
  /**
   * Serves an SSE stream: every matching event with id > `after` from the database in
   * ascending order, then live ones, each exactly once, until the client goes away, falls
   * more than the buffer limit behind, or the server closes.
   */
  stream (request: FastifyRequest, reply: FastifyReply, options: StreamOptions): Promise<void>
  /**
   * Long polling: runs `query`; when it finds nothing and `waitSeconds` > 0, holds the request
   * until a matching event arrives (and runs it again) or the time is up (empty list).
   */
  poll<T> (reply: FastifyReply, matcher: EventMatcher, waitSeconds: number | undefined, query: () => Promise<T[]>): Promise<T[]>
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

/**
 * One notifier per instance: with SQLite (one process) an event is dispatched the moment
 * it is committed here; with PostgreSQL every instance learns of new events through
 * LISTEN/NOTIFY (the repositories' `notifications`), reads them once from the database in
 * id order, and dispatches them to its own streams.
 */
export default fp(async function live (fastify) {
  const fanout = new Fanout()
  const streams = new Set<() => void>()
  const polls = new Set<AbortController>()
  const { repos } = fastify
  const notifications = repos.notifications

  if (notifications !== undefined) {
    // Events above the cursor have not been dispatched yet. Reads are serialised: a
    // notification that arrives during a read is covered by the read after it.
    let cursor = await repos.events.latestId()
    let reading: Promise<void> | null = null
    let again = false
    const readNew = async (): Promise<void> => {
      do {
        again = false
        for (;;) {
          const batch = await repos.events.listAfter(cursor, 500)
          for (const event of batch) {
            cursor = event.id
            fanout.dispatch(event)
          }
          if (batch.length < 500) break
        }
      } while (again)
    }
    const onNotify = (latest?: number) => {
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
      reading = readNew()
        .catch((err: unknown) => fastify.log.error({ err }, 'reading new events for live delivery failed'))
        .finally(() => { reading = null })
    }
    // after a reconnect, catch up on whatever was committed while the listener was away
    const subscription = await notifications.listen(onNotify, () => onNotify())
    fastify.addHook('onClose', async () => {
      await subscription.close()
    })
  }

  // Closing the server ends open streams, so it is not held open by them.
  fastify.addHook('preClose', async () => {
    for (const end of streams) end()
    for (const poll of polls) poll.abort()
  })

  const bufferLimit = fastify.config.streamBufferLimit

  const streamsPerSession = new Map<number, number>()
  const maxStreams = fastify.config.maxStreamsPerSession

  async function stream (request: FastifyRequest, reply: FastifyReply, { matcher, after, catchUp }: StreamOptions): Promise<void> {
    const sessionId = request.client!.id
    const open = streamsPerSession.get(sessionId) ?? 0
    if (open >= maxStreams) {
      throw fastify.httpErrors.tooManyRequests(`Too many open streams: at most ${maxStreams} per session`)
    }
    streamsPerSession.set(sessionId, open + 1)
    let counted = true
    const uncount = () => {
      if (!counted) return
      counted = false
      const left = (streamsPerSession.get(sessionId) ?? 1) - 1
      if (left > 0) streamsPerSession.set(sessionId, left)
      else streamsPerSession.delete(sessionId)
    }
    const sse = reply.sse
    sse.keepAlive()
    sse.sendHeaders(200)
    // a first comment flushes the response head, so clients (and proxies) see the stream open now
    reply.raw.write(': connected\n\n')
    let lastSent = after
    let live = false
    let missed = false
    let writing = false
    const queue: EventRecord[] = []

    const end = () => {
      remove()
      streams.delete(end)
      uncount()
      sse.close()
    }
    const send = (event: EventRecord) =>
      sse.send({ id: String(event.id), event: 'event', data: fastify.items.event(request, event, true) })
    const pump = async () => {
      if (writing) return
      writing = true
      try {
        while (queue.length > 0 && sse.isConnected) {
          const event = queue.shift()!
          if (event.id <= lastSent) continue
          await send(event)
          lastSent = event.id
          fastify.metrics.delivered(event.time)
        }
      } finally {
        writing = false
      }
    }
    const remove = fanout.add({
      matcher,
      deliver (event) {
        if (!live) {
          missed = true
          return
        }
        queue.push(event)
        if (queue.length > bufferLimit) {
          request.log.warn({ bufferLimit }, 'stream closed: the client fell too far behind (it can reconnect with Last-Event-ID)')
          end()
          return
        }
        pump().catch(end)
      }
    })
    streams.add(end)
    sse.onClose(() => {
      remove()
      streams.delete(end)
      uncount()
    })

    // Catch up from the database. Events that arrive meanwhile are not queued (the queue
    // would grow with the backlog); another round reads them, until a round sees none.
    try {
      do {
        missed = false
        for (;;) {
          const batch = await catchUp(lastSent, PAGE)
          for (const event of batch) {
            if (!sse.isConnected) return
            await send(event)
            lastSent = event.id
          }
          if (batch.length < PAGE) break
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
    let timer: NodeJS.Timeout | undefined
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

  async function poll<T> (reply: FastifyReply, matcher: EventMatcher, waitSeconds: number | undefined, query: () => Promise<T[]>): Promise<T[]> {
    if (waitSeconds === undefined || waitSeconds <= 0) return query()
    const deadline = Date.now() + waitSeconds * 1000
    const controller = new AbortController()
    const onClose = () => controller.abort()
    reply.raw.once('close', onClose)
    polls.add(controller)
    try {
      for (;;) {
        // listen before querying, so an event committed in between is not missed
        const waiter = waitFor(matcher, deadline - Date.now(), controller.signal)
        const rows = await query()
        if (rows.length > 0 || Date.now() >= deadline || controller.signal.aborted) {
          waiter.cancel()
          return rows
        }
        if (!await waiter.arrived) return rows
      }
    } finally {
      polls.delete(controller)
      reply.raw.off('close', onClose)
    }
  }

  fastify.decorate('live', {
    published (event) {
      if (notifications === undefined) fanout.dispatch(event)
    },
    poll,
    matcherFor (subscriptions) {
      return { subscriptions: new Map(subscriptions.map((s) => [s.eventName, s.location])) }
    },
    stream,
    get openStreams () { return streams.size },
    get waitingPolls () { return polls.size }
  } satisfies LiveDelivery)
}, { name: 'cred-live', dependencies: ['cred-config', 'cred-repositories', 'cred-items', 'cred-metrics'] })
