import { createHook } from 'node:async_hooks'

/**
 * Keeps `process.nextTick` fast for the life of the process (Node 20; call once, at start).
 *
 * nextTick queues a fresh object literal with two symbol-keyed properties, whose hidden
 * classes ("maps") V8 records in monomorphic feedback. Maps no live object uses are freed after
 * a few full collections; when a server is idle while those run, no tick object is alive, the
 * next tick makes new maps, and the literal's feedback turns megamorphic for good: every
 * nextTick then goes through V8's runtime. Holding one tick object keeps its maps alive.
 * What it is worth is measured in docs/performance.md.
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
