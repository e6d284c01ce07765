/**
 * Group commit for event inserts. Events posted while a write is in progress wait, and the
 * next write stores all of them in ONE transaction: one WAL flush (one fsync) for the whole
 * group instead of one per event. Each caller's promise settles only when its group has
 * committed (or failed), so a 201 still means "durable", ids still commit in order, and
 * nothing is acknowledged that a crash could lose.
 *
 * `write` gets the queued items in arrival order and returns one result per item, in the
 * same order. When it throws, every item of that group fails with the error. `gather` runs
 * before each group is taken from the queue, the first and every later one, and calls its
 * argument when the group should be written.
 */
export function groupCommit<In, Out> (
  write: (items: In[]) => Promise<Out[]> | Out[],
  { maxGroup = 256, gather = immediately }: { maxGroup?: number, gather?: (flush: () => void) => void } = {}
): (item: In) => Promise<Out> {
  interface Waiting { item: In, resolve: (out: Out) => void, reject: (err: unknown) => void }
  let queue: Waiting[] = []
  let busy = false
  const gathered = () => new Promise<void>((resolve) => gather(resolve))

  async function flush (): Promise<void> {
    while (queue.length > 0) {
      await gathered()
      const group = queue.length <= maxGroup ? queue : queue.slice(0, maxGroup)
      queue = group === queue ? [] : queue.slice(maxGroup)
      try {
        const results = await write(group.map((waiting) => waiting.item))
        if (results.length !== group.length) throw new Error(`group write returned ${results.length} results for ${group.length} items`)
        group.forEach((waiting, i) => waiting.resolve(results[i]!))
      } catch (err) {
        for (const waiting of group) waiting.reject(err)
      }
    }
    busy = false
  }

  return (item: In) => new Promise<Out>((resolve, reject) => {
    queue.push({ item, resolve, reject })
    if (busy) return
    busy = true
    void flush()
  })
}

/** Writes as soon as the code running now has finished (a microtask): items queue only while a write is in progress, or arrive in the same run of code. */
function immediately (flush: () => void): void {
  flush()
}

/** Turns of the event loop a group gathers posts for. */
const GATHER_TURNS = 3

/**
 * Writes after GATHER_TURNS turns of the event loop (setImmediate), each of which first reads
 * and handles whatever requests have arrived, so that a burst of posts shares one transaction.
 *
 * - A synchronous driver (SQLite): nothing can queue behind a write in progress. One turn
 *   takes in the posts read together; three also take in those the clients just answered
 *   send next, so a commit, whose fsync blocks the thread, is shared by more posts.
 * - An asynchronous driver (PostgreSQL): posts queue while a group is being written, but the
 *   clients that group answers send their next posts only after their answers reach them.
 *   Written at once, the queue splits the connections into two groups that take turns;
 *   gathering before each group lets the answered clients' posts join the queued ones: fewer,
 *   larger transactions. (docs/performance.md has the measurements.)
 *
 * An idle server pays three empty turns, microseconds.
 */
export function afterPendingIo (flush: () => void): void {
  let turns = GATHER_TURNS
  const turn = () => {
    if (--turns === 0) flush()
    else setImmediate(turn)
  }
  setImmediate(turn)
}
