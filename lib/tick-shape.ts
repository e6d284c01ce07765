import { createHook } from 'node:async_hooks'

/**
 * Keeps `process.nextTick` fast for the life of the process (Node 20; call once, at start).
 *
 * nextTick queues a fresh object literal with two symbol-keyed properties. V8 records the
 * hidden classes ("maps") of that literal in monomorphic feedback, and compiles Node's stream
 * and HTTP code, which calls nextTick several times per request, with the literal built inline.
 * Maps no live object uses are freed after a few full garbage collections (V8 keeps them for
 * two). When a server is idle while those collections run, no tick object is alive, the
 * literal's maps are freed, and the next tick makes new ones. The literal's feedback then turns
 * megamorphic, and it stays so: from then on every nextTick goes through V8's runtime.
 *
 * In a loop this is 0.22 instead of 0.05 µs per tick. In a cred-server it was 23–25 instead of
 * 19–20 µs of CPU per request on workload 3 of `npm run bench` (the poll). Before this fix,
 * about three server processes in four were slow, each for its whole life, by the luck of when
 * its collections ran.
 *
 * Holding one tick object keeps its map, and the maps it was built from, alive.
 */
let kept: object | undefined

export function keepTickObjectShape (): void {
  if (kept !== undefined) return
  // An async hook's `init` is the one place Node hands out a tick object. It is enabled only
  // for this one call: no other async resource passes through it.
  const hook = createHook({
    init (_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept === undefined) kept = resource
    }
  }).enable()
  try {
    process.nextTick(() => {})
  } finally {
    hook.disable()
  }
}

/** Whether this process holds its tick object (keepTickObjectShape has run). */
export const tickObjectShapeKept = (): boolean => kept !== undefined
