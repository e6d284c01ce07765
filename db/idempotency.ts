// What both repositories do with a group of posts of which some carry an `Idempotency-Key`:
// which of them to store, and what each post is answered. The dialects differ only in how they
// read and write the keys (./sqlite.ts, ./postgres.ts).
import type { EventRecord, IdempotencyKey, NewEventRecord, PostedEvent } from './repositories.js'

/** How long a key answers with the event it first stored: a retry within it stores nothing. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000

/**
 * How often an instance deletes expired keys, at most. Each purge is a range on the `created`
 * index, so it reads only the rows it deletes; lookups ignore expired rows anyway, so a late
 * purge only costs space.
 */
export const PURGE_INTERVAL_MS = 60 * 1000

/** A post as the group commit queues it: the event, and the key it was sent with, if any. */
export type QueuedEvent = NewEventRecord & { idempotency?: IdempotencyKey }

/** An idempotency key's row to write: the key now names this event (a new key, or one expired). */
export interface KeyRow extends IdempotencyKey {
  eventId: number
}

/** One string per (API key, key), for maps. */
export const keyOf = (key: IdempotencyKey): string => `${key.apikeyId} ${key.key}`

/** The distinct keys a group was sent with; none (the common case) when no post has one. */
export function keysOf (group: QueuedEvent[]): IdempotencyKey[] {
  let keys: Map<string, IdempotencyKey> | undefined
  for (const event of group) {
    if (event.idempotency === undefined) continue
    keys ??= new Map()
    keys.set(keyOf(event.idempotency), event.idempotency)
  }
  return keys === undefined ? [] : [...keys.values()]
}

/** A group sorted out against the events its keys already name. */
export interface SortedGroup {
  /** the posts to store, in the order of the group (so their ids follow it) */
  fresh: QueuedEvent[]
  /**
   * Given `fresh` as stored (same order, ids ascending): the answer of every post of the group,
   * in its order, and the key rows to write.
   */
  answers: (stored: EventRecord[]) => { answers: PostedEvent[], keyRows: KeyRow[] }
}

/**
 * Which posts of `group` are new events, given `found`: the event each key already names
 * within the window (looked up, in the same transaction, by `keysOf(group)` with `key`). A post
 * whose key is found is answered that event, marked `replayed`; of several posts of the group
 * with one new key, the first is stored and the others are answered its event, replayed.
 */
export function sortOut (group: QueuedEvent[], found: (key: IdempotencyKey) => EventRecord | undefined): SortedGroup {
  const fresh: QueuedEvent[] = []
  /** each post's answer: an index into `fresh` (stored; `replay` tells whether it is the first), or an earlier event */
  const plan: Array<{ stored: number, replay: boolean } | { earlier: EventRecord }> = []
  const firstOf = new Map<string, number>()
  for (const event of group) {
    const idempotency = event.idempotency
    if (idempotency === undefined) {
      plan.push({ stored: fresh.push(event) - 1, replay: false })
      continue
    }
    const key = keyOf(idempotency)
    const first = firstOf.get(key)
    if (first !== undefined) {
      plan.push({ stored: first, replay: true })
      continue
    }
    const earlier = found(idempotency)
    if (earlier !== undefined) {
      plan.push({ earlier })
      continue
    }
    firstOf.set(key, fresh.length)
    plan.push({ stored: fresh.push(event) - 1, replay: false })
  }
  return {
    fresh,
    answers (stored) {
      const answers = plan.map((step): PostedEvent => {
        if ('earlier' in step) return { ...step.earlier, replayed: true }
        const event = stored[step.stored]!
        return step.replay ? { ...event, replayed: true } : event
      })
      const keyRows = [...firstOf.values()].map((index) => ({ ...fresh[index]!.idempotency!, eventId: stored[index]!.id }))
      return { answers, keyRows }
    }
  }
}

/** A purge schedule: `due(now)` is true at most once per PURGE_INTERVAL_MS (and the first time). */
export function purgeSchedule (): { due: (now: number) => boolean } {
  let last = Number.NEGATIVE_INFINITY
  return {
    due (now) {
      if (now - last < PURGE_INTERVAL_MS) return false
      last = now
      return true
    }
  }
}
