import { Store } from 'mqtt'
import t from 'tap'
import { EndSafeStore } from '../../lib/mqtt-store.js'

const packet = { cmd: 'publish', topic: 't', payload: 'p', qos: 1, retain: false, dup: false, messageId: 7 } as const

t.test("a late acknowledgement after a forced end finds nothing, where MQTT.js's own store throws", async (t) => {
  const plain = new Store()
  plain.put(packet, () => {})
  plain.close(() => {})
  t.throws(() => plain.del({ messageId: 7 }, () => {}), TypeError, 'the library store, closed, throws')

  const safe = new EndSafeStore()
  const stored = await new Promise<unknown>((resolve) => safe.put(packet, () => safe.get({ messageId: 7 }, (err, found) => resolve(err ?? found))))
  t.match(stored, { messageId: 7 }, 'open, it stores and finds like the library store')
  await new Promise<void>((resolve) => safe.close(() => resolve()))
  for (const call of ['del', 'get'] as const) {
    const err = await new Promise<Error | undefined>((resolve) => safe[call]({ messageId: 7 }, (err) => resolve(err)))
    t.match(err?.message, /missing packet/, `${call} after close answers "missing packet"`)
  }
  const put = await new Promise<Error | undefined>((resolve) => safe.put(packet, (err) => resolve(err)))
  t.match(put?.message, /has ended/, 'put after close is refused')
})
