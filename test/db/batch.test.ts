// Group commit: which items share a write, what each caller gets back, and when groups are taken.
import t from 'tap'
import { afterPendingIo, groupCommit } from '../../db/batch.js'

/** A write that records each group and answers every item doubled, after `wait()` resolves. */
function recording (wait: () => Promise<void> = async () => {}) {
  const groups: number[][] = []
  const write = async (items: number[]) => {
    groups.push(items)
    await wait()
    return items.map((item) => item * 2)
  }
  return { groups, write }
}

/** A gate a test opens by hand: writes wait on it. */
function gate () {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

t.test('items queued together share one write; each caller gets its own result', async (t) => {
  const { groups, write } = recording()
  const add = groupCommit(write)
  t.same(await Promise.all([add(1), add(2), add(3)]), [2, 4, 6])
  t.same(groups, [[1, 2, 3]], 'one group, in arrival order')
})

t.test('items arriving while a group is written wait and go in the next group', async (t) => {
  const first = gate()
  let calls = 0
  const { groups, write } = recording(() => ++calls === 1 ? first.promise : Promise.resolve())
  const add = groupCommit(write)
  const a = add(1)
  await turn()
  t.same(groups, [[1]], 'the first item is being written')
  const rest = [add(2), add(3), add(4)]
  await turn()
  t.same(groups, [[1]], 'the others wait for it')
  first.open()
  t.same(await Promise.all([a, ...rest]), [2, 4, 6, 8])
  t.same(groups, [[1], [2, 3, 4]])
})

t.test('gather runs before every group, and items arriving meanwhile join the group', async (t) => {
  const first = gate()
  let calls = 0
  const { groups, write } = recording(() => ++calls === 1 ? first.promise : Promise.resolve())
  let gathers = 0
  let late: Promise<number> | undefined
  const add = groupCommit(write, {
    gather: (flush) => {
      gathers++
      // the second group's gather: an item arrives before it flushes
      if (gathers === 2) late = add(9)
      setImmediate(flush)
    }
  })
  const a = add(1)
  await turn()
  await turn()
  const b = add(2)
  first.open()
  t.same(await Promise.all([a, b]), [2, 4])
  t.equal(await late, 18)
  t.same(groups, [[1], [2, 9]], 'the item that arrived during the gather went with the queued one')
  t.equal(gathers, 2, 'one gather per group')
})

t.test('afterPendingIo: items arriving in the next two turns of the event loop join the group', async (t) => {
  const { groups, write } = recording()
  const add = groupCommit(write, { gather: afterPendingIo })
  const results = [add(1)]
  await turn()
  results.push(add(2))
  await turn()
  results.push(add(3))
  t.same(await Promise.all(results), [2, 4, 6])
  t.same(groups, [[1, 2, 3]])
  // a later item, after the group was written, starts a group of its own
  t.equal(await add(4), 8)
  t.same(groups, [[1, 2, 3], [4]])
})

t.test('a failed write fails every item of its group, and only those', async (t) => {
  const first = gate()
  let calls = 0
  const add = groupCommit(async (items: number[]) => {
    if (++calls === 1) {
      await first.promise
      throw new Error('disk full')
    }
    return items
  })
  const failed = add(1)
  await turn()
  const next = [add(2), add(3)]
  first.open()
  const settled = await Promise.allSettled([failed, ...next])
  t.match(settled[0], { status: 'rejected', reason: { message: 'disk full' } })
  t.same(settled.slice(1), [{ status: 'fulfilled', value: 2 }, { status: 'fulfilled', value: 3 }],
    'items queued behind the failed write are written in the next group')
})

t.test('groups are at most maxGroup items', async (t) => {
  const { groups, write } = recording()
  const add = groupCommit(write, { maxGroup: 2 })
  t.same(await Promise.all([1, 2, 3, 4, 5].map((item) => add(item))), [2, 4, 6, 8, 10])
  t.same(groups, [[1, 2], [3, 4], [5]])
})

t.test('a write returning the wrong number of results fails its group instead of misassigning them', async (t) => {
  const add = groupCommit(async (items: number[]) => items.slice(1))
  const settled = await Promise.allSettled([add(1), add(2)])
  for (const result of settled) t.match(result, { status: 'rejected', reason: { message: 'group write returned 1 results for 2 items' } })
})
