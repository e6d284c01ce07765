/** How long a reading of `data_version` is used for: a commit by another process is seen this much later at most. */
export const CHANGE_CHECK_MS = 10

/**
 * Commits by other connections (another process on the same file, or a script), as SQLite's
 * `data_version` shows them. Reading it starts a read transaction (three system calls: a lock,
 * a stat, an unlock), too dear for every request; `seen()` reads it at most once per
 * `CHANGE_CHECK_MS` and answers the others from the last reading. `now()` always reads it: the
 * insert path uses it to know that nothing was committed in between before it adds its rows to
 * the newest events.
 *
 * `onChange` is called when a reading differs from the one before. Since the insert path
 * reads it after each of this connection's commits, a session ended or a key revoked by
 * another process before an event committed here is known before that event is delivered.
 */
export function changeWatch (read: () => unknown, onChange: () => void) {
  let value = read()
  let at = performance.now()
  const now = (): unknown => {
    const before = value
    value = read()
    at = performance.now()
    if (value !== before) onChange()
    return value
  }
  return {
    now,
    seen: (): unknown => performance.now() - at >= CHANGE_CHECK_MS ? now() : value
  }
}
