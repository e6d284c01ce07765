import type { CommittedEvents, EventNotifications, EventRecord } from './repositories.js'

/**
 * The notifications of a database whose events only this process writes while it serves
 * (SQLite): its own commits, told the moment they are made. There is nothing to connect to, so
 * it always listens.
 */
export class OwnCommits implements EventNotifications {
  readonly everyCommit = false
  private readonly listeners = new Set<(committed: CommittedEvents) => void>()

  async listen (onEvents: (committed: CommittedEvents) => void) {
    this.listeners.add(onEvents)
    return { close: async () => { this.listeners.delete(onEvents) } }
  }

  listening (): boolean {
    return true
  }

  /** Events this process has just committed, in id order. */
  committed (events: readonly EventRecord[]): void {
    if (events.length === 0) return
    const committed = { latest: events[events.length - 1]!.id, events }
    for (const listener of this.listeners) listener(committed)
  }
}
