// MQTT for the bridge's tests: the broker every machine of the project runs (127.0.0.1:1883), a
// private Mosquitto a test may stop and start, and subscribers that collect what arrives.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, connect as tcpConnect } from 'node:net'
import { join } from 'node:path'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { tempDir, unreachable } from './helper.js'
import { endSafeStores } from '../lib/mqtt-store.js'

/** The shared broker of the tests (`.ci/run` starts it). */
export const testBroker = 'mqtt://127.0.0.1:1883'

/** Why the MQTT tests cannot run here, or null; with CI=true an unreachable broker is an error. */
export const mqttUnavailable: string | null = await unreachable('MQTT', testBroker, async () => {
  const client = await mqtt.connectAsync(testBroker, { reconnectPeriod: 0, connectTimeout: 3000 })
  await client.endAsync()
})

/** A topic prefix no other test uses. */
export const randomPrefix = (): string => `cred-test/${randomBytes(6).toString('hex')}`

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Waits until `check` is true (polled), or fails with `what` after `ms`. */
export async function waitUntil (what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

export interface Received { topic: string, payload: string, retain: boolean }

export interface Subscriber {
  client: MqttClient
  messages: Received[]
  /** Waits until at least `count` messages arrived. */
  received (count: number, ms?: number): Promise<Received[]>
}

/** A client subscribed to `filter` at QoS 1 that collects what arrives; ended when the test ends. */
export async function subscribe (t: Test, url: string, filter: string, options: IClientOptions = {}): Promise<Subscriber> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 3000, ...endSafeStores(), ...options })
  t.teardown(() => client.endAsync(true))
  const messages: Received[] = []
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: payload.toString('utf8'), retain: packet.retain }))
  await client.subscribeAsync(filter, { qos: 1 })
  return {
    client,
    messages,
    async received (count, ms = 10_000) {
      await waitUntil(`${count} MQTT messages on ${filter} (got ${messages.length})`, () => messages.length >= count, ms)
      return messages
    }
  }
}

/** A client that publishes as a device would; ended when the test ends. */
export async function device (t: Test, url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 3000, ...endSafeStores(), ...options })
  t.teardown(() => client.endAsync(true))
  return client
}

/** A port free on 127.0.0.1 now. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')))
    })
  })
}

const accepts = (port: number) => new Promise<boolean>((resolve) => {
  const socket = tcpConnect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
})

export interface PrivateBroker {
  url: string
  port: number
  /** Stops it (SIGTERM; it saves its sessions and queued messages) and waits for its end. */
  stop (): Promise<void>
  /** Starts it again on the same port, with what it saved. */
  start (): Promise<void>
}

/**
 * A Mosquitto of the test's own on `port` (default: a free one), with persistence in a temporary directory (so
 * that sessions and queued messages survive a restart); stopped by its process id when the
 * test ends.
 */
export async function privateBroker (t: Test, port?: number, { settings = ['allow_anonymous true'], scheme = 'mqtt' }: { settings?: string[], scheme?: 'mqtt' | 'mqtts' } = {}): Promise<PrivateBroker> {
  const dir = tempDir(t, 'cred-mosquitto-')
  port ??= await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    ...settings,
    'persistence true',
    `persistence_location ${dir}/`,
    'log_dest none',
    ''
  ].join('\n'))
  const command = process.env.MOSQUITTO ?? '/usr/sbin/mosquitto'
  let child: ChildProcess | undefined
  const broker: PrivateBroker = {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    async start () {
      const started = spawn(command, ['-c', conf], { stdio: 'ignore' })
      child = started
      await waitUntil(`the private Mosquitto on port ${port}`, async () => {
        if (started.exitCode !== null) throw new Error(`mosquitto exited with code ${started.exitCode}`)
        return accepts(port)
      })
    },
    async stop () {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGTERM')
      await exited
    }
  }
  t.teardown(() => broker.stop())
  await broker.start()
  return broker
}
