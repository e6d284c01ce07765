import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Gauge } from 'prom-client'
import { HotCounter, HotHistogram, type HotCounterSeries, type HotHistogramSeries } from '../../lib/hot-metrics.js'
import type { Repositories } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * cred's own metrics, recorded in `metricsRegistry`. When the `metrics` setting is off,
     * every method does nothing (and `timed` gives the repositories back as they are).
     */
    metrics: CredMetrics
  }
}

export type AuthOutcome = 'success' | 'invalid_key' | 'rate_limited'

export interface CredMetrics {
  /** an event was committed by POST /events */
  eventPosted (): void
  /** an /auth attempt ended: a session was created, the key was refused, or the address was blocked */
  authAttempt (outcome: AuthOutcome): void
  /** an event posted at `time` (epoch ms) was just written to a live stream */
  delivered (time: number): void
  /** the MQTT broker acknowledged an event committed at `time` (epoch ms) */
  mqttPublished (time: number): void
  /** an MQTT post was stored, or refused */
  mqttReceived (outcome: 'stored' | 'invalid'): void
  /** the repositories, with every call timed and counted while in flight */
  timed (repos: Repositories): Repositories
}

const off: CredMetrics = {
  eventPosted () {},
  authAttempt () {},
  delivered () {},
  mqttPublished () {},
  mqttReceived () {},
  timed: (repos) => repos
}

/** Seconds: requests (long polls wait up to 60 s; streams last longer and land in +Inf). */
const requestBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const lagBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const queryBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The label-bound children of one route and method, made on its first request. */
interface RouteSeries {
  duration: HotHistogramSeries
  byStatus: Map<number, HotCounterSeries>
  method: string
  route: string
}

/**
 * cred's metrics (names and labels are listed in the README, "Operations"). Kept cheap: the
 * hot paths use prom-client children bound to their labels once (per route, method and
 * status; per repository call), never label objects made per request; gauges are read when
 * Prometheus scrapes, never kept up to date on the way.
 */
export default fp(async function metrics (fastify) {
  if (!fastify.config.metrics) {
    fastify.decorate('metrics', off)
    return
  }
  const registers = [fastify.metricsRegistry]

  // HTTP requests, by route template (as registered, prefix included: '/events/:id'), method and status
  const requests = new HotCounter<'method' | 'route' | 'status'>('cred_http_requests_total',
    'HTTP requests answered, by route template, method and status code', registers)
  const requestDuration = new HotHistogram<'method' | 'route'>('cred_http_request_duration_seconds',
    'Time from receiving a request to the end of its answer, by route template and method (streams: their whole life)',
    requestBuckets, registers)
  /** The series of one route template and method ('unmatched': no route), made on first use. */
  function seriesOf (url: string | undefined, method: string): RouteSeries {
    // '/events' and '/events/' are one route (as in the OpenAPI document)
    const route = url === undefined ? 'unmatched' : url.length > 1 ? url.replace(/\/$/, '') : url
    return { duration: requestDuration.labels({ method, route }), byStatus: new Map(), method, route }
  }
  function record (series: RouteSeries, reply: FastifyReply): void {
    let count = series.byStatus.get(reply.statusCode)
    if (count === undefined) {
      count = requests.labels({ method: series.method, route: series.route, status: String(reply.statusCode) })
      series.byStatus.set(reply.statusCode, count)
    }
    count.inc()
    series.duration.observe(reply.elapsedTime / 1000)
  }
  // Each route gets an onResponse hook of its own, holding its series from the start: a
  // request then costs no lookup by route (request.routeOptions builds a new object on every
  // read). Requests no route matched are counted by the instance-wide hook.
  fastify.addHook('onRoute', (route) => {
    const byMethod = new Map<string, RouteSeries>()
    const countRequest = function (request: FastifyRequest, reply: FastifyReply, done: () => void) {
      let series = byMethod.get(request.method)
      if (series === undefined) byMethod.set(request.method, series = seriesOf(route.url, request.method))
      record(series, reply)
      done()
    }
    route.onResponse = route.onResponse === undefined ? [countRequest] : [...[route.onResponse].flat(), countRequest]
  })
  const unmatched = new Map<string, RouteSeries>()
  fastify.addHook('onResponse', function (request, reply, done) {
    if (request.is404) {
      let series = unmatched.get(request.method)
      if (series === undefined) unmatched.set(request.method, series = seriesOf(undefined, request.method))
      record(series, reply)
    }
    done()
  })

  const eventsPosted = new HotCounter('cred_events_posted_total', 'Events posted (committed by POST /events)', registers).labels({})
  const authAttempts = new HotCounter<'outcome'>('cred_auth_attempts_total',
    'Authentication attempts (/auth) by outcome: success, invalid_key, rate_limited', registers)
  // every outcome is exposed from the start, at 0, so rate() sees its first increase
  const authOutcomes: Record<AuthOutcome, HotCounterSeries> = {
    success: authAttempts.labels({ outcome: 'success' }),
    invalid_key: authAttempts.labels({ outcome: 'invalid_key' }),
    rate_limited: authAttempts.labels({ outcome: 'rate_limited' })
  }
  const deliveryLag = new HotHistogram('cred_delivery_lag_seconds',
    'Time from an event being posted (its time) to its write on a live stream', lagBuckets, registers).labels({})

  /** A gauge, registered, whose value is read on each scrape. */
  function gauge (name: string, help: string, read: () => number | Promise<number>): Gauge {
    return new Gauge({ name, help, registers, async collect () { this.set(await read()) } })
  }

  // The MQTT bridge (plugins/app/mqtt.ts), when one is configured
  const mqtt = fastify.config.mqtt.url === '' ? undefined : mqttMetrics()
  function mqttMetrics () {
    gauge('cred_mqtt_connected', '1 while this instance bridges and is connected to the MQTT broker, else 0 (another instance may bridge)',
      () => fastify.mqttBridge.state === 'connected' ? 1 : 0)
    gauge('cred_mqtt_bridging', '1 while this instance is the one that bridges (connected to the broker or not), else 0',
      () => fastify.mqttBridge.state === 'connected' || fastify.mqttBridge.state === 'connecting' ? 1 : 0)
    const received = new HotCounter<'outcome'>('cred_mqtt_received_total',
      'Posts received from MQTT devices, by outcome: stored (as an event), invalid (refused and logged)', registers)
    return {
      published: new HotCounter('cred_mqtt_published_total', 'Events published to the MQTT broker (acknowledged by it)', registers).labels({}),
      lag: new HotHistogram('cred_mqtt_publish_lag_seconds',
        'Time from an event being stored (its time) to the MQTT broker acknowledging its publication', lagBuckets, registers).labels({}),
      received: { stored: received.labels({ outcome: 'stored' }), invalid: received.labels({ outcome: 'invalid' }) }
    }
  }

  gauge('cred_streams_open', 'Server-Sent Events streams open on this instance', () => fastify.live.openStreams)
  gauge('cred_long_polls_waiting', 'Long polls (wait=) held on this instance, waiting for an event', () => fastify.live.waitingPolls)

  // Database calls: one repository call is one query or transaction, on one pooled connection.
  const queryDuration = new HotHistogram<'query'>('cred_db_query_duration_seconds',
    'Duration of repository calls (one query or transaction each; events.create includes its wait for the group commit), by call (events.create, clients.findBySession, ...)',
    queryBuckets, registers)
  let inFlight = 0
  gauge('cred_db_calls_in_flight', 'Repository calls started and not finished: on PostgreSQL, connections in use plus calls queued for one', () => inFlight)
  gauge('cred_db_pool_size', 'Connections the pool may open (PostgreSQL poolSize; 1 for SQLite)', () => fastify.repos.poolSize)

  // after cred_db_calls_in_flight, which is read first: its count leaves out this scrape's own query
  const { pingtimeout } = fastify.config
  gauge('cred_clients_active', 'Devices active within pingtimeout (as GET /clients lists them: viewers not counted), sessions not ended; NaN when the database cannot say',
    async () => {
      try {
        return await fastify.repos.clients.countActive(Date.now() - pingtimeout * 1000)
      } catch (err) {
        fastify.log.warn({ err }, 'metrics: counting active clients failed')
        return Number.NaN
      }
    })

  /**
   * `group` (apikeys, clients or events) with each method timed as `group.method`, but for the
   * `untimed` ones: they answer from memory, synchronously, and are no repository call.
   */
  function timedGroup<T extends object> (group: string, repository: T, untimed: Array<keyof T & string> = []): T {
    const timed: Record<string, unknown> = {}
    for (const [name, method] of Object.entries(repository) as Array<[string, (...args: unknown[]) => Promise<unknown>]>) {
      if ((untimed as string[]).includes(name)) {
        timed[name] = method.bind(repository)
        continue
      }
      const duration = queryDuration.labels({ query: `${group}.${name}` })
      timed[name] = function (...args: unknown[]) {
        const start = performance.now()
        inFlight++
        const finished = () => {
          inFlight--
          duration.observe((performance.now() - start) / 1000)
        }
        // not an async wrapper: the caller gets the repository's own promise
        let result: Promise<unknown>
        try {
          result = method.apply(repository, args)
        } catch (err) {
          finished()
          throw err
        }
        result.then(finished, finished)
        return result
      }
    }
    return timed as T
  }

  fastify.decorate('metrics', {
    eventPosted () { eventsPosted.inc() },
    authAttempt (outcome) { authOutcomes[outcome].inc() },
    delivered (time) { deliveryLag.observe(Math.max(0, Date.now() - time) / 1000) },
    mqttPublished (time) {
      mqtt?.published.inc()
      mqtt?.lag.observe(Math.max(0, Date.now() - time) / 1000)
    },
    mqttReceived (outcome) { mqtt?.received[outcome].inc() },
    timed: (repos) => ({
      ...repos,
      apikeys: timedGroup('apikeys', repos.apikeys),
      clients: timedGroup('clients', repos.clients, ['cachedSession']),
      events: timedGroup('events', repos.events)
    })
  } satisfies CredMetrics)
}, { name: 'cred-metrics', dependencies: ['cred-config', 'cred-prometheus'] })
