import type { AccessEnded } from './repositories.js'

/** The listeners of `AccessChanges.listen`, told in the order changes are learnt. */
export class AccessListeners {
  private readonly listeners = new Set<(ended: AccessEnded) => void>()

  listen (listener: (ended: AccessEnded) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  ended (ended: AccessEnded): void {
    for (const listener of this.listeners) listener(ended)
  }
}
