import { Store } from 'mqtt'

type Packet = Parameters<Store['put']>[0]
type DoneCallback = Parameters<Store['put']>[1]
type PacketCallback = Parameters<Store['del']>[1]

/**
 * MQTT.js's in-memory store, safe to use after the client ended. A client ended with `force`
 * closes its stores at once, and an acknowledgement already on its way is then handled against
 * the closed store: MQTT.js throws, uncaught, and that would end the process. Here such a late
 * acknowledgement finds nothing, as for any packet the store does not hold.
 */
export class EndSafeStore extends Store {
  private closed = false

  override put (packet: Packet, cb: DoneCallback): this {
    if (this.closed) {
      cb(new Error('the MQTT client has ended'))
      return this
    }
    return super.put(packet, cb)
  }

  override del (packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    if (this.closed) {
      cb(new Error('missing packet'))
      return this
    }
    return super.del(packet, cb)
  }

  override get (packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    if (this.closed) {
      cb(new Error('missing packet'))
      return this
    }
    return super.get(packet, cb)
  }

  override close (cb: DoneCallback): void {
    this.closed = true
    super.close(cb)
  }
}

/** Both stores of a client (its options `incomingStore` and `outgoingStore`). */
export const endSafeStores = () => ({ incomingStore: new EndSafeStore(), outgoingStore: new EndSafeStore() })
