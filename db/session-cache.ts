import type { SessionRecord } from './repositories.js'

/**
 * Sessions looked up in the last second, by session key: a device polling several times a
 * second authenticates without a query (or hashing its key) each time. The keys are held in
 * this process's memory for that second, as every request's headers are anyway.
 *
 * A session stops being valid when its client ends it (DELETE /auth) or its key is revoked.
 * Both repositories `clear()` the cache when this process does either, and when another
 * process does: SQLite sees any other connection's commit in `PRAGMA data_version`; on
 * PostgreSQL every instance is told through a notification, and while the notification
 * listener is down the cache is not used at all (`usable` false). An entry is also never
 * used for more than `ttlMs`, which bounds what a change that sends no notification (a
 * hand-written UPDATE) can miss. The auth plugin updates `lastActive` on the cached record
 * itself, so its throttled "last active" writes stay throttled.
 */
export class SessionCache {
  private readonly entries = new Map<string, { session: SessionRecord, until: number }>()
  /** changes whenever the cache is cleared: a lookup that started before must not store its answer */
  private generation = 0

  constructor (
    /** false while changes made elsewhere could go unnoticed */
    private readonly usable: () => boolean = () => true,
    private readonly ttlMs = 1000,
    private readonly maxEntries = 10_000
  ) {}

  lookup (key: string, load: (key: string) => Promise<SessionRecord | undefined> | SessionRecord | undefined): Promise<SessionRecord | undefined> {
    if (!this.usable()) return Promise.resolve().then(() => load(key))
    const now = Date.now()
    const entry = this.entries.get(key)
    // a hit, the common case, is one resolved promise (no async function around it)
    if (entry !== undefined && entry.until > now) return Promise.resolve(entry.session)
    return this.loaded(key, load, now)
  }

  /** The session `lookup(key)` would answer from memory, without a promise; undefined when it would load it. */
  peek (key: string): SessionRecord | undefined {
    if (!this.usable()) return undefined
    const entry = this.entries.get(key)
    return entry !== undefined && entry.until > Date.now() ? entry.session : undefined
  }

  /** `load(key)`, kept for `ttlMs` from `now` unless the cache was cleared meanwhile or became unusable. */
  private async loaded (key: string, load: (key: string) => Promise<SessionRecord | undefined> | SessionRecord | undefined, now: number): Promise<SessionRecord | undefined> {
    const generation = this.generation
    const session = await load(key)
    if (session === undefined || generation !== this.generation || !this.usable()) {
      this.entries.delete(key)
      return session
    }
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    this.entries.set(key, { session, until: now + this.ttlMs })
    return session
  }

  clear (): void {
    this.generation++
    this.entries.clear()
  }
}
