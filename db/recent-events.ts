import type { EventRecord, ListFilter } from './repositories.js'

/**
 * The newest events of a SQLite database, kept in memory: the reads devices make most (the
 * latest few events; "anything after the id I saw last?" when nothing is new) are answered
 * without running a query.
 *
 * It holds every event with an id >= its lowest one (events are never deleted and new ones
 * get higher ids), newest first. This connection's own inserts are added as they commit;
 * a commit by any other connection (a second process on the same file, or a script) changes
 * SQLite's `data_version`, which every read checks first (one cheap pragma) and then reloads.
 */
export class RecentEvents {
  private rows: EventRecord[] = []
  /** true when `rows` is the whole table */
  private complete = false
  private version: unknown

  constructor (
    /** the newest `count` events, newest first */
    private readonly newest: (count: number) => EventRecord[],
    /** SQLite's `pragma data_version` on the same connection */
    private readonly dataVersion: () => unknown,
    private readonly size = 100
  ) {
    this.reload()
  }

  private reload (): void {
    this.version = this.dataVersion()
    this.rows = this.newest(this.size)
    this.complete = this.rows.length < this.size
  }

  /** Reloads when another connection has committed since the last look. */
  private current (): EventRecord[] {
    if (this.dataVersion() !== this.version) this.reload()
    return this.rows
  }

  /** Events this connection has just committed, in id order. */
  added (events: EventRecord[]): void {
    if (events.length === 0) return
    // another connection may have committed before these: reload rather than guess
    if (this.dataVersion() !== this.version) return this.reload()
    const rows = [...events].reverse().concat(this.rows)
    this.complete = this.complete && rows.length <= this.size
    this.rows = rows.length > this.size ? rows.slice(0, this.size) : rows
  }

  /** The highest event id (0 when there is none). */
  latestId (): number {
    return this.current()[0]?.id ?? 0
  }

  /**
   * `events.list(filter)`, when the rows held are enough to answer it; otherwise undefined
   * (the caller queries the database).
   */
  list (filter: ListFilter): EventRecord[] | undefined {
    const rows = this.current()
    const after = filter.after ?? -1
    const before = filter.before ?? Number.POSITIVE_INFINITY
    const offset = filter.offset ?? 0
    const inWindow: EventRecord[] = []
    for (const row of rows) {
      if (row.id <= after) break
      if (row.id < before) inWindow.push(row)
    }
    // Events older than the oldest row held are not here: answer only when none of them
    // could be part of the answer.
    const lowest = rows[rows.length - 1]?.id
    const holdsAllInWindow = this.complete || lowest === undefined || after >= lowest - 1
    const enough = filter.limit !== undefined && inWindow.length >= offset + filter.limit
    if (!holdsAllInWindow && !enough) return undefined
    return inWindow.slice(offset, filter.limit === undefined ? undefined : offset + filter.limit)
  }
}
