import Fastify, { type FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import cred from '../../../app.js'
import { resolveConfig } from '../../../config/resolve.js'
import { openDatabase } from '../../../db/index.js'
import type { SettingsInput } from '../../../schemas/config.js'
import { tcpProxy } from '../../db/tcp-proxy.js'
import { backends, bearer, build, capturedLogs, forEachBackend, listen, testDatabase, testPostgres, type Backend, type TestApp } from '../../helper.js'
import { openStream } from '../../sse-client.js'
import {
  device, freePort, mqttUnavailable, privateBroker, randomPrefix, sleep, subscribe, testBroker, waitUntil, type Received
} from '../../mqtt-helper.js'

if (mqttUnavailable !== null) t.plan(0, mqttUnavailable)

/** The origin of the `uri` of published events in these tests. */
const publicUrl = 'http://cred.example:5000'

const mqttSettings = (url: string, topicPrefix: string) => ({ mqtt: { url, topicPrefix, publicUrl } })

/** Builds cred with the bridge on, and waits until it bridges. */
async function bridged (t: Test, url: string, topicPrefix: string, { backend = 'sqlite', settings = {}, server }: { backend?: Backend, settings?: SettingsInput, server?: FastifyServerOptions } = {}): Promise<TestApp> {
  const built = await build(t, { ...mqttSettings(url, topicPrefix), ...settings }, { backend, ...(server === undefined ? {} : { server }) })
  await waitUntil('the bridge to connect', async () => (await built.app.inject({ url: '/health/ready' })).json().mqtt === 'connected')
  return built
}

/** Posts an event as the client of `sessionKey`; returns its id. */
async function post (app: TestApp['app'], sessionKey: string, event: Record<string, unknown>): Promise<number> {
  const res = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event } })
  if (res.statusCode !== 201) throw new Error(`post failed: ${res.body}`)
  return (res.json() as { event: { id: number } }).event.id
}

const ids = (messages: Received[]) => messages.map((message) => (JSON.parse(message.payload) as { id: number }).id)

t.test('cred → MQTT: every event, as the streams send it, on <prefix>/events/<name>/<location>', async (t) => {
  forEachBackend(t, async (t, backend) => {
    const prefix = randomPrefix()
    const sub = await subscribe(t, testBroker, `${prefix}/events/#`)
    // as devices filter: by name, any location (none included), and by location
    const doors = await subscribe(t, testBroker, `${prefix}/events/Door/+`)
    const livingRoom = await subscribe(t, testBroker, `${prefix}/events/+/Living Room`)
    const { app, session } = await bridged(t, testBroker, prefix, { backend })
    const { sessionKey } = await session('write', { device: 'Light Switch', location: 'Living Room' })
    const { sessionKey: reader } = await session('read')
    // a stream, at the public URL's host, for the bytes a stream sends
    const origin = await listen(app)
    const stream = await openStream(`${origin}/events/stream`, { ...bearer(reader), host: 'cred.example:5000' })
    t.teardown(() => stream.close())
    const posted = [
      await post(app, sessionKey, { name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On' }),
      // the characters that mean something in a topic are percent-encoded
      await post(app, sessionKey, { name: 'a/b+c#d%e', location: 'Hall/1+#', value: 21.5 }),
      // no location: an empty last level
      await post(app, sessionKey, { name: 'Door' })
    ]
    const messages = await sub.received(3)
    await sleep(300)
    t.same(messages.map((m) => m.topic), [`${prefix}/events/Light/Living Room`, `${prefix}/events/a%2Fb%2Bc%23d%25e/Hall%2F1%2B%23`, `${prefix}/events/Door/`])
    const streamed = await stream.received(3)
    for (const [i, id] of posted.entries()) {
      t.equal(messages[i]!.payload, streamed[i]!.data, `event ${id}: the full form, exactly as the stream sends it`)
    }
    t.match(JSON.parse(messages[0]!.payload), {
      id: posted[0], device: 'Light Switch', name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On', uri: `${publicUrl}/events/${posted[0]}`
    })
    t.equal(messages.length, 3, 'each once')
    t.same(ids(doors.messages), [posted[2]], 'an event without a location matches <name>/+')
    t.same(ids(livingRoom.messages), [posted[0]], '+/<location> filters by location')
  })
})

t.test('MQTT → cred: a device\'s post is stored as an event of its client, created once and active', async (t) => {
  forEachBackend(t, async (t, backend) => {
    const prefix = randomPrefix()
    const { app, session } = await bridged(t, testBroker, prefix, { backend })
    const { sessionKey: reader } = await session('read')
    const sub = await subscribe(t, testBroker, `${prefix}/events/#`)
    const stream = await device(t, testBroker)
    await stream.publishAsync(`${prefix}/post/Living Room/Light Switch`, JSON.stringify({ name: 'Light', action: 'Toggled', value: 'On' }), { qos: 1 })
    await stream.publishAsync(`${prefix}/post/Living Room/Light Switch`, JSON.stringify({ name: 'Light', action: 'Toggled', value: 'Off' }), { qos: 1 })
    // percent-encoded levels, a number value, and an event location of its own
    await stream.publishAsync(`${prefix}/post/Hall%2F1/Sensor%231`, JSON.stringify({ name: 'Temperature', value: 21.5, location: 'Attic' }), { qos: 1 })
    // no location
    await stream.publishAsync(`${prefix}/post//Doorbell`, JSON.stringify({ name: 'Ring' }), { qos: 1 })
    const listed = async () => (await app.inject({ url: '/events?full=true', headers: bearer(reader) })).json().events as Array<Record<string, unknown>>
    await waitUntil('4 events', async () => (await listed()).length === 4)
    const events = (await listed()).reverse()
    t.match(events, [
      { device: 'Light Switch', name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On' },
      { device: 'Light Switch', name: 'Light', location: 'Living Room', action: 'Toggled', value: 'Off' },
      { device: 'Sensor#1', name: 'Temperature', location: 'Attic', action: null, value: '21.5' },
      { device: 'Doorbell', name: 'Ring', location: null, action: null, value: null }
    ])
    const clients = (await app.inject({ url: '/clients?full=true', headers: bearer(reader) })).json().clients as Array<Record<string, unknown>>
    const bridgedClients = clients.filter((c) => c.device !== null)
    t.same(bridgedClients.map((c) => [c.device, c.location]).sort(), [['Doorbell', null], ['Light Switch', 'Living Room'], ['Sensor#1', 'Hall/1']], 'one client per device and location, listed as active')
    // and stored events go out like any other
    const messages = await sub.received(4)
    t.same(ids(messages), events.map((e) => Number(String(e.uri).split('/').pop())))
  })
})

t.test('MQTT → cred: invalid posts are logged, counted and never stored; the bridge goes on', async (t) => {
  const prefix = randomPrefix()
  const client = await device(t, testBroker)
  // a retained post, which the broker repeats to every new subscriber: not stored
  const retained = `${prefix}/post/Hall/Old`
  await client.publishAsync(retained, '{"name":"Light"}', { qos: 1, retain: true })
  t.teardown(() => client.publishAsync(retained, '', { qos: 1, retain: true }))
  const { logger, lines } = capturedLogs()
  const { app, session } = await bridged(t, testBroker, prefix, { settings: { metrics: true, bodyLimit: 2048 }, server: { logger } })
  const { sessionKey: reader } = await session('read')
  const topic = `${prefix}/post/Kitchen/Switch`
  for (const payload of ['not json', '[1]', '{"action":"Toggled"}', JSON.stringify({ name: 'x'.repeat(241) }), '{"name":"Light","value":{"a":1}}', '{"name":""}']) {
    await client.publishAsync(topic, payload, { qos: 1 })
  }
  await client.publishAsync(`${prefix}/post/Kitchen/${'d'.repeat(241)}`, '{"name":"Light"}', { qos: 1 })
  // no device
  await client.publishAsync(`${prefix}/post/Kitchen/`, '{"name":"Light"}', { qos: 1 })
  // larger than bodyLimit
  await client.publishAsync(topic, JSON.stringify({ name: 'Light', value: 'v'.repeat(3000) }), { qos: 1 })
  await client.publishAsync(topic, '{"name":"Light","value":true}', { qos: 1 })
  const listed = async () => (await app.inject({ url: '/events?full=true', headers: bearer(reader) })).json().events as Array<Record<string, unknown>>
  await waitUntil('the valid post', async () => (await listed()).length === 1)
  await sleep(300)
  t.match(await listed(), [{ device: 'Switch', location: 'Kitchen', name: 'Light', value: 'true' }], 'only the valid post is stored')
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /^cred_mqtt_received_total\{outcome="invalid"\} 10$/m)
  const refused = lines.filter((line) => /^MQTT bridge: a post on .+ was refused: /.test(String(line.msg)))
  t.equal(refused.length, 10, 'each refusal logged')
  t.match(refused.map((line) => line.problem), ['it is retained (devices post without the retain flag)', 'payload is not JSON', 'payload must be a JSON object',
    "payload must have required property 'name'", 'payload/name must NOT have more than 240 characters'])
  t.match(metrics, /^cred_mqtt_received_total\{outcome="stored"\} 1$/m)
  t.match(metrics, /^cred_mqtt_connected 1$/m)
})

t.test('a broker that cannot be reached at start: cred serves, says so in /health/ready, and bridges once it is there', async (t) => {
  const port = await freePort()
  const prefix = randomPrefix()
  const { app, session } = await build(t, { ...mqttSettings(`mqtt://127.0.0.1:${port}`, prefix), metrics: true })
  const { sessionKey } = await session('write')
  await waitUntil('the first failed attempt', async () => /ECONNREFUSED/.test((await app.inject({ url: '/health/ready' })).json().message))
  const ready = await app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 200, 'still ready: HTTP is served')
  t.match(ready.json(), { status: 200, mqtt: 'connecting', message: new RegExp(`^OK, but the MQTT broker at mqtt://127\\.0\\.0\\.1:${port} is not connected \\(.*ECONNREFUSED.*\\): retrying$`) })
  t.match((await app.inject({ url: '/metrics' })).body, /^cred_mqtt_connected 0$/m)
  const posted = [await post(app, sessionKey, { name: 'Light', value: 'On' }), await post(app, sessionKey, { name: 'Light', value: 'Off' })]
  // the broker comes up on that port
  const broker = await privateBroker(t, port)
  const sub = await subscribe(t, broker.url, `${prefix}/events/#`)
  await waitUntil('the bridge to connect', async () => (await app.inject({ url: '/health/ready' })).json().mqtt === 'connected', 20_000)
  t.same(ids(await sub.received(2)), posted, 'what was posted meanwhile, once, in order')
})

t.test('the embedded plugin bridges only when the host passes mqtt', async (t) => {
  const prefix = randomPrefix()
  const sub = await subscribe(t, testBroker, `${prefix}/events/#`)
  /** A host app with cred at /cred on a database of its own; posts one event and answers its id. */
  async function host (settings: SettingsInput) {
    const database = await testDatabase(t, 'sqlite')
    const app = Fastify()
    await app.register(cred, { prefix: '/cred', config: { ...settings, database } })
    await app.ready()
    t.teardown(() => app.close())
    const repos = await openDatabase(resolveConfig({ database }, 'test').database)
    t.teardown(() => repos.close())
    const { apikey } = await repos.apikeys.create('write')
    const auth = await app.inject({ method: 'POST', url: '/cred/auth', payload: { apikey } })
    const post = async () => (await app.inject({ method: 'POST', url: '/cred/events', headers: bearer(auth.json().sessionKey), payload: { event: { name: 'Light' } } })).json().event.id as number
    return { app, post }
  }
  const quiet = await host({})
  t.same((await quiet.app.inject({ url: '/cred/health/ready' })).json(), { status: 200, message: 'OK' }, 'no bridge: nothing about MQTT')
  await quiet.post()
  await sleep(500)
  t.same(sub.messages, [], 'nothing published')

  const bridging = await host({ mqtt: { url: testBroker, topicPrefix: prefix } })
  await waitUntil('the bridge to connect', async () => (await bridging.app.inject({ url: '/cred/health/ready' })).json().mqtt === 'connected')
  const id = await bridging.post()
  const [message] = await sub.received(1)
  t.equal(message!.topic, `${prefix}/events/Light/`)
  // without publicUrl: the host and port of the settings, and the host's prefix
  t.match(JSON.parse(message!.payload), { id, name: 'Light', uri: `http://localhost:5000/cred/events/${id}` })
})

t.test('a broker stopped while events are posted and started again: every event published once, in order', async (t) => {
  const broker = await privateBroker(t)
  const prefix = randomPrefix()
  // a subscriber whose session and queued messages the broker keeps across its restart
  const sub = await subscribe(t, broker.url, `${prefix}/events/#`, { clean: false, clientId: `test-${prefix}` })
  const { app, session } = await bridged(t, broker.url, prefix, { settings: { metrics: true } })
  const { sessionKey } = await session('write')
  const posted: number[] = []
  for (let i = 0; i < 5; i++) posted.push(await post(app, sessionKey, { name: 'Meter', value: i }))
  await sub.received(5)
  await broker.stop()
  for (let i = 5; i < 10; i++) posted.push(await post(app, sessionKey, { name: 'Meter', value: i }))
  await waitUntil('the bridge to see the broker gone', async () => (await app.inject({ url: '/health/ready' })).json().mqtt === 'connecting')
  t.match((await app.inject({ url: '/metrics' })).body, /^cred_mqtt_connected 0$/m)
  await broker.start()
  await sub.received(10, 30_000)
  await sleep(500)
  t.same(ids(sub.messages), posted, 'every event once, in id order')
  const metrics = (await app.inject({ url: '/metrics' })).body
  t.match(metrics, /^cred_mqtt_published_total 10$/m)
  t.match(metrics, /^cred_mqtt_publish_lag_seconds_count 10$/m, 'the lag of each publication')
})

t.test('a restart of cred publishes what was stored meanwhile, from the cursor, and nothing twice', async (t) => {
  const prefix = randomPrefix()
  const sub = await subscribe(t, testBroker, `${prefix}/events/#`)
  const database = await testDatabase(t, 'sqlite')
  const first = await build(t, mqttSettings(testBroker, prefix), { database })
  await waitUntil('the bridge to connect', async () => (await first.app.inject({ url: '/health/ready' })).json().mqtt === 'connected')
  const { sessionKey } = await first.session('write')
  const posted: number[] = []
  for (let i = 0; i < 3; i++) posted.push(await post(first.app, sessionKey, { name: 'Meter', value: i }))
  await sub.received(3)
  await first.app.close()
  // stored while no instance bridges
  const quiet = await build(t, {}, { database })
  for (let i = 3; i < 5; i++) posted.push(await post(quiet.app, sessionKey, { name: 'Meter', value: i }))
  await quiet.app.close()
  const second = await build(t, mqttSettings(testBroker, prefix), { database })
  await waitUntil('the bridge to connect', async () => (await second.app.inject({ url: '/health/ready' })).json().mqtt === 'connected')
  await sub.received(5)
  await sleep(500)
  t.same(ids(sub.messages), posted, 'the two stored meanwhile, after the first three, none twice')
})

t.test('PostgreSQL, two instances on one database: one bridges; the other takes over when it stops', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const prefix = randomPrefix()
  const sub = await subscribe(t, testBroker, `${prefix}/events/#`)
  const database = await testDatabase(t, 'postgresql')
  const a = await build(t, mqttSettings(testBroker, prefix), { backend: 'postgresql', database })
  const b = await build(t, mqttSettings(testBroker, prefix), { backend: 'postgresql', database })
  const stateOf = async (app: TestApp['app']) => (await app.inject({ url: '/health/ready' })).json().mqtt as string
  await waitUntil('one instance to bridge', async () => [await stateOf(a.app), await stateOf(b.app)].includes('connected'))
  await sleep(1500)
  const states = [await stateOf(a.app), await stateOf(b.app)]
  t.same(states.slice().sort(), ['connected', 'standby'], 'exactly one bridges')
  const [leader, follower] = states[0] === 'connected' ? [a, b] : [b, a]
  const { sessionKey } = await a.session('write')
  const posted: number[] = []
  // posted on either instance, published once by the one that bridges
  for (let i = 0; i < 4; i++) posted.push(await post((i % 2 === 0 ? a : b).app, sessionKey, { name: 'Meter', value: i }))
  await sub.received(4)
  const stopped = Date.now()
  await leader.app.close()
  await waitUntil('the other instance to take over', async () => await stateOf(follower.app) === 'connected', 10_000)
  t.ok(Date.now() - stopped < 5000, `taken over within 5 s (${Date.now() - stopped} ms)`)
  for (let i = 4; i < 6; i++) posted.push(await post(follower.app, sessionKey, { name: 'Meter', value: i }))
  await sub.received(6)
  await sleep(500)
  t.same(ids(sub.messages), posted, 'every event once, in order')
})

t.test('PostgreSQL out of reach while devices post: every post is stored once it is back, none lost', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const proxy = await tcpProxy(t, testPostgres)
  const database = await testDatabase(t, 'postgresql')
  const prefix = randomPrefix()
  const { app } = await build(t, mqttSettings(testBroker, prefix), { backend: 'postgresql', database: { ...database, port: proxy.port } })
  await waitUntil('the bridge to connect', async () => (await app.inject({ url: '/health/ready' })).json().mqtt === 'connected')
  // what was stored, read past the proxy
  const direct = await openDatabase(resolveConfig({ database }, 'test').database)
  t.teardown(() => direct.close())
  const values = async () => (await direct.events.list({})).map((event) => Number(event.value)).sort((a, b) => a - b)
  const client = await device(t, testBroker)
  const publish = (value: number) => client.publishAsync(`${prefix}/post/Lab/Counter`, JSON.stringify({ name: 'Count', value }), { qos: 1 })
  for (let i = 0; i < 3; i++) await publish(i)
  await waitUntil('the first posts stored', async () => (await values()).length === 3)
  await proxy.stop()
  // the broker takes them (it acknowledges the device), and holds them for cred
  for (let i = 3; i < 6; i++) await publish(i)
  await sleep(1500)
  await proxy.start()
  await waitUntil('every post stored', async () => new Set(await values()).size === 6, 45_000)
  await sleep(500)
  const stored = await values()
  t.same([...new Set(stored)], [0, 1, 2, 3, 4, 5], 'every post stored')
  t.ok(stored.length - 6 <= 1, `at most one stored twice (a commit whose answer was cut off): ${stored.length - 6}`)
})
