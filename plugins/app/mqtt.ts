import { readFileSync } from 'node:fs'
import { Type } from '@sinclair/typebox'
import { Ajv, type ErrorObject } from 'ajv'
import fp from 'fastify-plugin'
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { ConfigError } from '../../config/resolve.js'
import type { EventRecord, Lease, NewEventRecord } from '../../db/index.js'
import { endSafeStores } from '../../lib/mqtt-store.js'
import { eventTopic, postFilter, postTopic } from '../../lib/mqtt-topics.js'
import { Nullable, StoredText } from '../../schemas/common.js'
import { NAME_MAX, NewEvent } from '../../schemas/events.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the MQTT bridge, as health and metrics report it */
    mqttBridge: MqttBridgeStatus
  }
}

/**
 * - off: no broker is configured
 * - standby: another instance sharing the database bridges
 * - connecting: this instance bridges, and the broker is not connected (now retrying)
 * - connected: this instance bridges, connected to the broker
 */
export type MqttBridgeState = 'off' | 'standby' | 'connecting' | 'connected'

export interface MqttBridgeStatus {
  readonly state: MqttBridgeState
  /** why the broker is not connected (while connecting, after a failure) */
  readonly problem: string | undefined
  /** the broker, for people: host and port, never the credentials */
  readonly broker: string
}

/** The bridge's name in the database (its cursor and leadership). */
const BRIDGE = 'mqtt'
/** Events read and published at once; the cursor is saved after each such batch. */
const BATCH = 100
/** How often an instance that does not bridge asks whether it may. */
const CAMPAIGN_MS = 1000
/** How often the bridge looks for events no notification told of. */
const SWEEP_MS = 5000
/** The broker's reconnection backoff: from the first to the last, doubling. */
const RECONNECT_MS = [1000, 15_000] as const
/** What closing waits for publications in flight to be acknowledged. */
const CLOSE_GRACE_MS = 2000

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(done, ms)
  function done () {
    clearTimeout(timer)
    signal.removeEventListener('abort', done)
    resolve()
  }
  signal.addEventListener('abort', done, { once: true })
})

// Posts are checked as POST /events checks its `event` (plugins/app/validator.ts: no coercion)
const ajv = new Ajv({ allowUnionTypes: true, allErrors: false })
const validEvent = ajv.compile<NewEvent>(NewEvent)
const validDevice = ajv.compile<{ device: string, location: string | null }>(Type.Object({
  device: StoredText(NAME_MAX, { minLength: 1 }),
  location: Nullable(StoredText(NAME_MAX))
}))
const problemOf = (part: string, errors: ErrorObject[] | null | undefined): string => {
  const error = errors?.[0]
  return error === undefined ? `${part} is invalid` : `${part}${error.instancePath} ${error.message ?? 'is invalid'}`
}

/** A post's event, or why it is refused (one line); `limit` is the largest payload read, in bytes, as `bodyLimit` is for HTTP. */
function readPost (payload: Buffer, device: string, location: string | null, limit: number): NewEvent | string {
  if (!validDevice({ device, location })) return problemOf('topic', validDevice.errors)
  if (payload.length > limit) return `payload is larger than ${limit} bytes (bodyLimit)`
  let event: unknown
  try {
    event = JSON.parse(payload.toString('utf8'))
  } catch {
    return 'payload is not JSON'
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return 'payload must be a JSON object'
  if (!validEvent(event)) return problemOf('payload', validEvent.errors)
  return event
}

/** host:port of the broker's URL: what logs and /health/ready may show. */
function brokerOf (url: string): string {
  const { protocol, host } = new URL(url)
  return `${protocol}//${host}`
}

/**
 * The MQTT bridge (docs/mqtt.md), on when `mqtt.url` is set. One instance among those sharing
 * the database bridges (`repos.bridge.lead`); the others wait to take over.
 *
 * cred → MQTT: every stored event, in id order, from the cursor saved in the database (the
 * last id the broker acknowledged) on. While the broker is away, MQTT.js keeps what is in
 * flight and sends it again when it is back; the cursor only moves past acknowledged events.
 *
 * MQTT → cred: posts on <prefix>/post/<location>/<device>, stored as events of that device's
 * client; a QoS 1 post is acknowledged to the broker only once its event is committed.
 */
export default fp(async function mqttBridge (fastify) {
  const settings = fastify.config.mqtt
  if (settings.url === '') {
    fastify.decorate('mqttBridge', { state: 'off', problem: undefined, broker: '' } satisfies MqttBridgeStatus)
    return
  }
  let ca: Buffer | undefined
  if (settings.ca !== '') {
    try {
      ca = readFileSync(settings.ca)
    } catch (err) {
      throw new ConfigError('the settings', 'mqtt.ca', `cannot read ${settings.ca} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
    }
  }
  const { repos, metrics, items } = fastify
  const log = fastify.log.child({ mqtt: true })
  const prefix = settings.topicPrefix
  const broker = brokerOf(settings.url)
  const origin = settings.publicUrl !== ''
    ? settings.publicUrl
    : `${fastify.config.SSL ? 'https' : 'http'}://${fastify.config.host === '*' || fastify.config.host === '' ? 'localhost' : fastify.config.host}:${fastify.config.port}`

  const status = { state: 'standby' as MqttBridgeState, problem: undefined as string | undefined, broker }
  fastify.decorate('mqttBridge', status)

  const stopping = new AbortController()
  /** Ends the bridging of the instance that leads now (undefined: it does not lead). */
  let stepDown: ((graceMs: number) => Promise<void>) | undefined

  /** Runs the bridge until `lost` resolves or cred closes; the lease is released by the caller. */
  async function bridge (lost: Promise<void>): Promise<void> {
    let state = await repos.bridge.state(BRIDGE)
    if (state === undefined) {
      // the first start: events from now on are published, not the history
      state = { lastEventId: await repos.events.latestId(), apikeyId: null }
      await repos.bridge.create(BRIDGE, state)
    }
    let apikeyId = state.apikeyId
    const key = apikeyId === null ? undefined : await repos.apikeys.get(apikeyId)
    if (apikeyId === null || key === undefined || key.revoked !== null) {
      // the API key the devices' clients belong to: its secret is used by no one (who may post is the broker's business)
      apikeyId = (await repos.apikeys.create('write')).id
      await repos.bridge.saveApikey(BRIDGE, apikeyId)
      log.info({ apikeyId }, `MQTT bridge: the clients of MQTT devices belong to API key ${apikeyId}`)
    }
    const deviceKey = apikeyId
    let cursor = state.lastEventId
    let active = true

    const options: IClientOptions = {
      clientId: `cred-bridge:${prefix}`,
      // a session the broker keeps while cred is away: QoS 1 posts wait for it, and one not acknowledged is sent again
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: RECONNECT_MS[0],
      // wrong credentials are retried too (with the backoff): the operator may fix the broker's side
      reconnectOnConnackError: true,
      connectTimeout: 5000,
      ...endSafeStores(),
      ...(settings.username === '' ? {} : { username: settings.username }),
      ...(settings.password === '' ? {} : { password: settings.password }),
      ...(ca === undefined ? {} : { ca })
    }
    status.state = 'connecting'
    const client: MqttClient = mqtt.connect(settings.url, options)
    // (MQTT.js calls this before it acknowledges a QoS 1 message: the acknowledgement waits for the commit)
    client.handleMessage = (packet, done) => {
      // (an error leaves the post unacknowledged: the broker sends it again on the next connection)
      storing(packet).then(() => done(), (err: unknown) => done(err as Error))
    }
    client.on('connect', () => {
      client.options.reconnectPeriod = RECONNECT_MS[0]
      client.subscribe(postFilter(prefix), { qos: 1 }, (err, granted) => {
        if (!active) return
        if (err !== null && err !== undefined) log.error({ err }, 'MQTT bridge: subscribing to the devices\' posts failed')
        // 128: the broker refused (its ACL)
        else if (granted?.some((grant) => grant.qos === 128) === true) log.error(`MQTT bridge: the broker refused the subscription to ${postFilter(prefix)} (its ACL?): devices' posts are not received`)
      })
      status.state = 'connected'
      status.problem = undefined
      log.info({ broker }, `MQTT bridge: connected to ${broker}`)
      pump()
    })
    client.on('error', (err) => {
      const problem = err.message.split('\n')[0]
      if (status.problem !== problem) log.warn({ err, broker }, `MQTT bridge: the broker at ${broker} cannot be reached: ${problem}; retrying`)
      status.problem = problem
    })
    client.on('close', () => {
      if (!active) return
      if (status.state === 'connected') log.warn({ broker }, `MQTT bridge: the connection to ${broker} closed; reconnecting`)
      status.state = 'connecting'
      status.problem ??= 'the connection closed'
      // Back off: each failed attempt waits twice as long, up to the last. (MQTT.js sets its timer
      // for the next attempt on 'close', before this listener: the new period counts from the one after.)
      client.options.reconnectPeriod = Math.min((client.options.reconnectPeriod ?? RECONNECT_MS[0]) * 2, RECONNECT_MS[1])
    })

    // cred → MQTT: the events after the cursor, in id order, in batches; one pump at a time
    let pumping: Promise<void> | null = null
    let again = false
    const publish = (event: EventRecord) =>
      client.publishAsync(eventTopic(prefix, event.name, event.location), items.eventJson(origin, event), { qos: 1 })
        .then(() => metrics.mqttPublished(event.time))
    async function drain (): Promise<void> {
      do {
        again = false
        for (;;) {
          const batch = await repos.events.listAfter(cursor, BATCH)
          if (batch.length === 0 || !active) break
          // MQTT.js sends them in order on one connection (and again in order after a reconnect)
          await Promise.all(batch.map(publish))
          cursor = batch[batch.length - 1]!.id
          await repos.bridge.saveCursor(BRIDGE, cursor)
          if (batch.length < BATCH) break
        }
      } while (again && active) // eslint-disable-line no-unmodified-loop-condition
    }
    function pump (): void {
      if (!active) return
      if (pumping !== null) {
        again = true
        return
      }
      pumping = drain()
        .catch((err: unknown) => {
          if (active) log.error({ err }, 'MQTT bridge: publishing events failed; trying again shortly')
        })
        .finally(() => { pumping = null })
    }
    const committed = await repos.notifications.listen(() => pump(), () => pump()).catch(async (err: unknown) => {
      active = false
      await client.endAsync(true).catch(() => {})
      throw err
    })
    const sweep = setInterval(pump, SWEEP_MS)
    sweep.unref()

    // MQTT → cred: each device's client, found or created once (one lookup at a time per device)
    const deviceClients = new Map<string, Promise<number>>()
    function clientOf (device: string, location: string | null): Promise<number> {
      const id = JSON.stringify([device, location])
      let found = deviceClients.get(id)
      if (found === undefined) {
        found = (async () => await repos.bridge.deviceClient(deviceKey, device, location) ??
          (await repos.clients.create({ device, location, apikeyId: deviceKey, subscriptions: [] })).id)()
        found.catch(() => deviceClients.delete(id))
        deviceClients.set(id, found)
      }
      return found
    }
    async function received (packet: IPublishPacket): Promise<void> {
      const refuse = (problem: string) => {
        log.warn({ topic: packet.topic, problem }, `MQTT bridge: a post on ${packet.topic} was refused: ${problem}`)
        metrics.mqttReceived('invalid')
      }
      const topic = postTopic(prefix, packet.topic)
      if (topic === undefined) return refuse('the topic names no device (<prefix>/post/<location>/<device>)')
      // a retained post is an old one the broker repeats to each new subscriber: stored already, or never meant to be
      if (packet.retain) return refuse('it is retained (devices post without the retain flag)')
      const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
      const event = readPost(payload, topic.device, topic.location, fastify.config.bodyLimit)
      if (typeof event === 'string') return refuse(event)
      const clientId = await clientOf(topic.device, topic.location)
      const { name, location = topic.location, action = null, value = null } = event
      const posted: NewEventRecord = { clientId, device: topic.device, name, location, action, value: value === null ? null : String(value) }
      await repos.events.create(posted)
      metrics.mqttReceived('stored')
      // after the commit, and not worth a retry (which would store the event again)
      await repos.clients.touch(clientId, Date.now()).catch((err: unknown) => log.warn({ err }, 'MQTT bridge: marking a device active failed'))
    }

    /** Stores a post, trying again while the database cannot (posts are taken one at a time: the next waits). */
    async function storing (packet: IPublishPacket): Promise<void> {
      for (let attempt = 0; ; attempt++) {
        try {
          return await received(packet)
        } catch (err) {
          if (!active) throw err
          if (attempt === 0) log.error({ err, topic: packet.topic }, 'MQTT bridge: storing a post failed; trying again (it is acknowledged once stored)')
          await sleep(Math.min(RECONNECT_MS[0] * 2 ** attempt, RECONNECT_MS[1]), stopping.signal)
        }
      }
    }

    let down: Promise<void> | undefined
    stepDown = (graceMs: number) => (down ??= (async () => {
      // what is in flight gets a moment to be acknowledged (and the cursor saved): no duplicate after a clean restart
      if (pumping !== null && status.state === 'connected') {
        await Promise.race([pumping, new Promise((resolve) => setTimeout(resolve, graceMs).unref())])
      }
      active = false
      clearInterval(sweep)
      await committed.close()
      await client.endAsync(true).catch(() => {})
      status.state = 'standby'
    })())
    pump()
    await Promise.race([lost, new Promise<void>((resolve) => stopping.signal.addEventListener('abort', () => resolve(), { once: true }))])
  }

  /** Takes the lead whenever it is free, and bridges while it holds it. */
  async function campaign (): Promise<void> {
    let failing = false
    while (!stopping.signal.aborted) {
      let lease: Lease | undefined
      let onLost = () => {}
      const lost = new Promise<void>((resolve) => { onLost = resolve })
      try {
        lease = await repos.bridge.lead(BRIDGE, () => {
          log.error('MQTT bridge: lost the database connection that made this instance the bridge; stopping it')
          onLost()
        })
        failing = false
      } catch (err) {
        if (!failing) log.warn({ err }, 'MQTT bridge: cannot ask the database whether this instance may bridge; retrying')
        failing = true
      }
      if (lease !== undefined && !stopping.signal.aborted) {
        log.info('MQTT bridge: this instance bridges')
        try {
          await bridge(lost)
        } catch (err) {
          log.error({ err }, 'MQTT bridge: the bridge stopped; trying again shortly')
        }
        await stepDown?.(0).catch(() => {})
        stepDown = undefined
        status.state = 'standby'
        await lease.release().catch(() => {})
      } else {
        await lease?.release().catch(() => {})
      }
      await sleep(CAMPAIGN_MS, stopping.signal)
    }
  }

  let campaigning: Promise<void> | undefined
  fastify.addHook('onReady', async () => {
    campaigning = campaign()
  })
  fastify.addHook('preClose', async () => {
    await stepDown?.(CLOSE_GRACE_MS)
    stopping.abort()
    await campaigning
  })
}, { name: 'cred-mqtt', dependencies: ['cred-config', 'cred-repositories', 'cred-items', 'cred-metrics'] })
