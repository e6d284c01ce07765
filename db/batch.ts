/**
 * Group commit for event inserts. Events posted while a write is in progress wait, and the
 * next write stores all of them in ONE transaction: one WAL flush (one fsync) for the whole
 * group instead of one per event. Each caller's promise settles only when its group has
 * committed (or failed), so a 201 still means "durable", ids still commit in order, and
 * nothing is acknowledged that a crash could lose.
 *
 * `write` gets the queued items in arrival order and returns one result per item, in the
 * same order. When it throws, every item of that group fails with the error.
 */
export function groupCommit<In, Out> (
  write: (items: In[]) => Promise<Out[]> | Out[],
  { maxGroup = 256, gather = immediately }: { maxGroup?: number, gather?: (flush: () => void) => void } = {}
): (item: In) => Promise<Out> {
  interface Waiting { item: In, resolve: (out: Out) => void, reject: (err: unknown) => void }
  let queue: Waiting[] = []
  let busy = false

  async function flush (): Promise<void> {
    while (queue.length > 0) {
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
    gather(() => { void flush() })
  })
}

/** Writes at once: items queue only while a write is in progress (asynchronous drivers). */
function immediately (flush: () => void): void {
  flush()
}

/**
 * Writes after the requests already read from the sockets have been handled (setImmediate):
 * for a synchronous driver, where nothing could queue behind a write in progress, this is
 * what lets a burst of posts share one transaction.
 */
export function afterPendingIo (flush: () => void): void {
  setImmediate(flush)
}
