import { DatabaseUnavailableError, type AccessEnded, type CommittedEvents, type EventNotifications } from '../repositories.js'

/**
 * How long access_ended rows are kept: older ones are purged (../mysql/index.ts, by whichever
 * instance writes the next row, at most once a minute). A poller reads only the rows above the
 * last it saw, and reads them within LOOK_GAP_MS of the look that saw it, or not at all (see
 * `PolledChanges`): a row is purged long after every poller that could still need it has read
 * it, with minutes to spare for instances whose clocks disagree (`created` is the writer's time,
 * the purge compares it with the purger's).
 */
export const ACCESS_ENDED_KEEP_MS = 10 * 60 * 1000

/**
 * The longest a poller trusts the access_ended rows above the last it saw: when more time has
 * passed since the look that saw it (a stalled process, looks that kept failing slowly), rows
 * it has not read may have been purged, and it tells that anything may have ended instead.
 */
export const LOOK_GAP_MS = 60 * 1000

/** What one look at the database finds: the highest event id and the highest access_ended row. */
export interface Latest {
  events: number
  access: number
}

/** How the poller reads the database (through the repositories' pool and its deadline). */
export interface ChangeReads {
  /** One query on two primary keys: `select max(id)` of events and of access_ended. */
  latest (): Promise<Latest>
  /** What the access_ended rows above `after`, up to `upTo`, say ended, in commit order. */
  ended (after: number, upTo: number): Promise<AccessEnded[]>
}

/** What the repositories do with what is learnt, before the service's listeners hear it. */
interface Heard {
  /** events up to `latest` were committed */
  events (latest: number): void
  /** sessions or keys ended ('unknown': after the database was away, anything may have) */
  ended (ended: AccessEnded): void
  /** the database answers again: what was committed meanwhile went unnoticed */
  connected (): void
}

/**
 * Other instances' commits, on a database without notifications (MariaDB, MySQL): each
 * instance looks every `intervalMs` with ONE query on two primary keys (the highest event id
 * and the highest access_ended row), whatever the number of streams and requests, and reads
 * the access_ended rows above the last it saw when there are some.
 *
 * Told in commit order, as PostgreSQL's notifications are: ids of events and of access_ended
 * rows are taken under the same lock (./event-inserts.ts), so the ends committed before an
 * event are those a look that sees the event sees too, and they are told first. This
 * instance's own groups are told as soon as they commit (`ownCommit`), after the ends their
 * transaction saw committed before them. Looks and own commits are told one at a time, in the
 * order they were read.
 *
 * It looks only while something listens (`listen()`), as a PostgreSQL instance hears
 * notifications only then. `listening()` is false before, from a failed look until one
 * succeeds again, and when no look has succeeded for a while (a look waiting on a server that
 * went silent): then the session cache and the newest events held are not used, and readiness
 * says so.
 */
export class PolledChanges implements EventNotifications {
  readonly everyCommit = true
  private readonly listeners = new Set<{ onEvents: (committed: CommittedEvents) => void, onConnected: () => void }>()
  private told: Latest = { events: 0, access: 0 }
  /** when the read that found `told.access` began */
  private toldAt = 0
  private healthy = false
  private lastAnswer = 0
  private queue: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  /** access_ended rows this instance wrote and told already */
  private readonly own = new Set<number>()

  constructor (
    private readonly reads: ChangeReads,
    private readonly intervalMs: number,
    private readonly heard: Heard,
    /** a monotonic clock in ms (tests pass their own) */
    private readonly now: () => number = () => performance.now()
  ) {}

  private schedule (): void {
    clearTimeout(this.timer)
    if (this.listeners.size === 0) return
    this.timer = setTimeout(() => {
      // a failed look makes listening() false; the next one may succeed
      this.serially(() => this.look()).catch(() => {}).finally(() => this.schedule())
    }, this.intervalMs)
    this.timer.unref()
  }

  /** Runs `task` after the tasks before it. */
  private serially (task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task)
    this.queue = run.catch(() => {})
    return run
  }

  /** Looks once. The first look, or the first after the database was away: what changed before went unnoticed. */
  private async look (): Promise<void> {
    let latest: Latest
    const started = this.now()
    try {
      latest = await this.reads.latest()
    } catch (err) {
      this.healthy = false
      throw err
    }
    this.lastAnswer = this.now()
    if (!this.healthy) {
      this.healthy = true
      this.told = latest
      this.toldAt = started
      this.own.clear()
      this.heard.ended('unknown')
      this.heard.connected()
      for (const listener of this.listeners) listener.onConnected()
      return
    }
    await this.tell(latest, started)
  }

  /**
   * Tells the ends up to `latest.access`, then the events up to `latest.events`. `readAt`: when
   * the look that found `latest` began (an own commit's has none: what it saw is not newer).
   */
  private async tell (latest: Latest, readAt?: number): Promise<void> {
    if (latest.access > this.told.access) {
      let ended: AccessEnded[]
      try {
        ended = await this.reads.ended(this.told.access, latest.access)
      } catch {
        // anything up to latest.access may have ended: re-check everything
        ended = ['unknown']
      }
      // rows it did not read may have been purged meanwhile: re-check everything
      if (this.now() - this.toldAt > LOOK_GAP_MS) ended = ['unknown']
      this.told.access = latest.access
      for (const each of ended) this.heard.ended(each)
    }
    if (readAt !== undefined) this.toldAt = readAt
    if (latest.events > this.told.events) {
      this.told.events = latest.events
      this.heard.events(latest.events)
      for (const listener of this.listeners) listener.onEvents({ latest: latest.events })
    }
  }

  /** This instance committed events up to `latest.events`, after the access_ended rows up to `latest.access`. */
  ownCommit (latest: Latest): void {
    // while nothing listens, nobody is told (the first look tells that anything may have changed)
    if (this.listeners.size === 0) return
    this.serially(() => this.tell(latest)).catch(() => {})
  }

  /** This instance's own end or revocation, told already: the access_ended row `id` is not told again. */
  ownEnd (id: number): void {
    if (this.listeners.size > 0) this.own.add(id)
  }

  /** Whether `id` is an access_ended row of this instance's (told already); forgets it. */
  isOwn (id: number): boolean {
    return this.own.delete(id)
  }

  /** A connection to the database was lost: not listening until the next look succeeds. */
  lost (): void {
    this.healthy = false
  }

  listening (): boolean {
    return this.listeners.size > 0 && this.healthy && this.now() - this.lastAnswer < Math.max(1000, 5 * this.intervalMs)
  }

  async listen (onEvents: (committed: CommittedEvents) => void, onConnected: () => void) {
    const listener = { onEvents, onConnected }
    const first = this.listeners.size === 0
    this.listeners.add(listener)
    if (first) {
      this.healthy = false
      try {
        await this.serially(() => this.look())
      } catch (err) {
        this.listeners.delete(listener)
        throw new DatabaseUnavailableError(`cannot look for other instances' changes: ${(err as Error).message}`, { cause: err })
      }
      this.schedule()
    }
    return {
      close: async () => {
        this.listeners.delete(listener)
        if (this.listeners.size === 0) {
          clearTimeout(this.timer)
          this.healthy = false
        }
      }
    }
  }
}
