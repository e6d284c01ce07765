import { listPage, pageAnswer, type EventRecord, type ListFilter } from './repositories.js'

/**
 * The newest events of the table, newest first: every event with an id >= the lowest one held
 * (events are never deleted and new ones get higher ids). It answers the reads devices make
 * most (the latest few events; "anything after the id I saw last?" when nothing is new)
 * without a query, and says when it cannot. Keeping it current is its owner's job:
 * `RecentEvents` (SQLite) and `NotifiedRecentEvents` (PostgreSQL).
 */
class EventWindow {
  private rows: EventRecord[] = []
  /** true when `rows` is the whole table */
  private complete = false

  constructor (readonly size: number) {}

  /** The newest `size` events (or all of them), newest first, as just read from the database. */
  replace (rows: EventRecord[]): void {
    this.rows = rows
    this.complete = rows.length < this.size
  }

  /** Events committed after every event held, in id order. */
  prepend (events: EventRecord[]): void {
    const rows = [...events].reverse().concat(this.rows)
    this.complete = this.complete && rows.length <= this.size
    this.rows = rows.length > this.size ? rows.slice(0, this.size) : rows
  }

  latestId (): number {
    return this.rows[0]?.id ?? 0
  }

  list (filter: ListFilter): EventRecord[] | undefined {
    const rows = this.rows
    const after = filter.after ?? -1
    const before = filter.before ?? Number.POSITIVE_INFINITY
    const inWindow: EventRecord[] = []
    for (const row of rows) {
      if (row.id <= after) break
      if (row.id < before) inWindow.push(row)
    }
    // Events older than the oldest row held are not here: answer only when none of them
    // could be part of the answer.
    const lowest = rows[rows.length - 1]?.id
    const holdsAllInWindow = this.complete || lowest === undefined || after >= lowest - 1
    const page = listPage(filter)
    if (page.oldestFirst) return holdsAllInWindow ? pageAnswer(page, inWindow.reverse()) : undefined
    const enough = page.limit !== undefined && inWindow.length >= page.offset + page.limit
    if (!holdsAllInWindow && !enough) return undefined
    return inWindow.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit)
  }
}

/**
 * The newest events of a SQLite database. This connection's own inserts are added as they
 * commit; a commit by any other connection (a second process on the same file, or a script)
 * changes SQLite's `data_version`, which every read checks first, and then reloads. The
 * reads may use a reading of it taken a moment ago (a commit elsewhere is then seen a moment
 * later, as a poll that came a moment earlier would have); adding this connection's own
 * rows reads it afresh, so the rows held are always every event from the lowest one held up.
 */
export class RecentEvents {
  private readonly window: EventWindow
  private version: unknown

  constructor (
    /** the newest `count` events, newest first */
    private readonly newest: (count: number) => EventRecord[],
    /** SQLite's `pragma data_version` on the same connection (possibly read a moment ago) */
    private readonly dataVersion: () => unknown,
    size = 100,
    /** the same, read now */
    private readonly dataVersionNow: () => unknown = dataVersion
  ) {
    this.window = new EventWindow(size)
    this.reload()
  }

  private reload (): void {
    this.version = this.dataVersion()
    this.window.replace(this.newest(this.window.size))
  }

  /** Reloads when another connection has committed since the last look. */
  private current (): EventWindow {
    if (this.dataVersion() !== this.version) this.reload()
    return this.window
  }

  /** Events this connection has just committed, in id order. */
  added (events: EventRecord[]): void {
    if (events.length === 0) return
    // another connection may have committed before these: reload rather than leave a hole
    if (this.dataVersionNow() !== this.version) return this.reload()
    this.window.prepend(events)
  }

  /** The highest event id (0 when there is none). */
  latestId (): number {
    return this.current().latestId()
  }

  /**
   * `events.list(filter)`, when the rows held are enough to answer it; otherwise undefined
   * (the caller queries the database).
   */
  list (filter: ListFilter): EventRecord[] | undefined {
    return this.current().list(filter)
  }
}

/**
 * The newest events of a PostgreSQL database shared by several instances, kept current by
 * the notification every insert sends on commit (with the group's highest id).
 *
 * It answers only while it is known to be current: loaded (in the background, after the first
 * read that found it stale) while the notification listener was up, and not older than
 * `maxAgeMs`, which bounds what a listener that died without noticing can miss. Otherwise
 * every read returns undefined and the caller queries the database.
 *
 * - This instance's own inserts are added as they commit, before their 201: an instance always
 *   reads its own writes. Ids commit in order (the insert lock), so a group whose first id is
 *   not the one after the newest held may follow another instance's commit not yet notified
 *   here: it makes the window stale rather than leave a hole.
 * - Another instance's commit is seen when its notification arrives (about a millisecond
 *   later on one machine). Until then a poll here finds nothing new, and gets the event on
 *   its next poll: `after=` never skips it, since nothing with a higher id is held first.
 * - `generation` changes with every event that makes the window stale: a load that was
 *   running then may have missed it, and does not install its rows; nor does a load that
 *   does not reach this instance's newest insert (it read before that commit).
 */
export class NotifiedRecentEvents {
  private readonly window: EventWindow
  private fresh = false
  private loadedAt = 0
  private generation = 0
  private loading = false
  /** the highest id this instance has added: a load that does not reach it read too early */
  private newestOwn = 0

  constructor (
    /** the newest `count` events, newest first, from the database */
    private readonly newest: (count: number) => Promise<EventRecord[]>,
    /** false while commits by other instances could go unnoticed (the listener is down) */
    private readonly usable: () => boolean,
    size = 100,
    private readonly maxAgeMs = 1000
  ) {
    this.window = new EventWindow(size)
  }

  /** A notification: events up to id `latest` are committed (by any instance). */
  committed (latest: number): void {
    if (this.fresh && Number.isInteger(latest) && latest > 0 && latest <= this.window.latestId()) return
    this.stale()
  }

  /** Commits may have gone unnoticed (e.g. the listener reconnected). */
  stale (): void {
    this.fresh = false
    this.generation++
  }

  /** Events this instance has just committed, in id order. */
  added (events: EventRecord[]): void {
    if (events.length === 0) return
    this.newestOwn = Math.max(this.newestOwn, events[events.length - 1]!.id)
    if (this.fresh && events[0]!.id === this.window.latestId() + 1) this.window.prepend(events)
    else this.stale()
  }

  /** The window when it may answer; otherwise undefined, and a load starts. */
  private current (): EventWindow | undefined {
    if (this.fresh && this.usable() && Date.now() - this.loadedAt < this.maxAgeMs) return this.window
    this.load()
    return undefined
  }

  private load (): void {
    if (this.loading || !this.usable()) return
    this.loading = true
    const generation = this.generation
    const startedAt = Date.now()
    this.newest(this.window.size).then((rows) => {
      if (generation !== this.generation || (rows[0]?.id ?? 0) < this.newestOwn) return
      this.window.replace(rows)
      this.loadedAt = startedAt
      this.fresh = true
    }, () => {
      // the read that started this load queries the database itself and reports any trouble
    }).finally(() => { this.loading = false })
  }

  /** The highest event id, or undefined when the window may not answer. */
  latestId (): number | undefined {
    return this.current()?.latestId()
  }

  /** `events.list(filter)` when the window may answer it; otherwise undefined. */
  list (filter: ListFilter): EventRecord[] | undefined {
    return this.current()?.list(filter)
  }
}
