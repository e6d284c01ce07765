// keepTickObjectShape keeps process.nextTick on its fast path through full garbage
// collections made while no tick is queued. Read from V8's own feedback for nextTick
// (%DebugPrint, with --allow-natives-syntax) in a child process: without the fix, the same
// sequence leaves nextTick's object literal megamorphic, which is the slow path.
import { spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { keepTickObjectShape } from '../../lib/tick-shape.js'

const built = new URL('../../dist/lib/tick-shape.js', import.meta.url).href

const script = `
if (process.argv[2] === 'keep') (await import(${JSON.stringify(built)})).keepTickObjectShape()
const burst = (n) => new Promise((resolve) => {
  let left = n
  for (let i = 0; i < n; i++) process.nextTick(() => { if (--left === 0) resolve() })
})
for (let i = 0; i < 2000; i++) await burst(50)
// idle, as a server between requests: no tick object alive while the collections run
await new Promise((resolve) => setTimeout(resolve, 20))
for (let i = 0; i < 6; i++) globalThis.gc()
for (let i = 0; i < 2000; i++) await burst(50);
%DebugPrint(process.nextTick)
`

/** The states of nextTick's feedback slots for the literal's computed keys (MONOMORPHIC, MEGAMORPHIC, ...). */
async function literalFeedback (dir: string, mode: 'keep' | 'plain'): Promise<string[]> {
  // V8 prints to the process's stdout, which Node makes non-blocking when it is a pipe: what
  // does not fit the pipe at once is lost. A file takes all of it.
  const file = join(dir, `${mode}.out`)
  const out = openSync(file, 'w')
  try {
    // Without tap's loader, which tap adds back to the environment of every child it sees spawned
    // (hence `env -u`): its coverage changes how V8 keeps feedback.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--allow-natives-syntax', '--expose-gc', join(dir, 'ticks.mjs'), mode],
      { stdio: ['ignore', out, 'inherit'] })
    const code = await new Promise((resolve, reject) => child.on('error', reject).on('exit', resolve))
    if (code !== 0) throw new Error(`the child exited with ${String(code)}`)
  } finally {
    closeSync(out)
  }
  return [...readFileSync(file, 'utf8').matchAll(/DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((match) => match[1]!)
}

t.test('nextTick stays monomorphic through collections made while idle', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cred-tick-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'ticks.mjs'), script)

  const plain = await literalFeedback(dir, 'plain')
  if (!plain.includes('MEGAMORPHIC')) {
    t.plan(0, `this Node (${process.version}) keeps nextTick monomorphic without help (${plain.join(', ') || 'no such feedback'}): nothing to compare`)
    return
  }
  const kept = await literalFeedback(dir, 'keep')
  t.ok(kept.length > 0, 'the feedback is read')
  t.same(kept.filter((state) => state !== 'MONOMORPHIC'), [], `every slot monomorphic with the fix: ${kept.join(', ')} (without it: ${plain.join(', ')})`)
})

t.test('a second call changes nothing, and later ticks run as before', async (t) => {
  keepTickObjectShape()
  keepTickObjectShape()
  const order: number[] = []
  await new Promise<void>((resolve) => {
    process.nextTick(() => order.push(1))
    process.nextTick((a: number, b: number) => { order.push(a + b); resolve() }, 1, 1)
  })
  t.same(order, [1, 2])
})
