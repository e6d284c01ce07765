// isoTime is toISOString, faster: the same text for every time a record can hold.
import fc from 'fast-check'
import t from 'tap'
import { isoTime } from '../../lib/iso-time.js'

t.test('the same text as toISOString', async (t) => {
  // the whole range a Date holds, so both branches are exercised
  fc.assert(fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => isoTime(ms) === new Date(ms).toISOString()), { numRuns: 2000 })
  for (const ms of [0, 1, 999, 1000, -1, Date.UTC(1000, 0, 1), Date.UTC(999, 11, 31, 23, 59, 59, 999), Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(2026, 10, 28, 9, 5, 7, 42)]) {
    t.equal(isoTime(ms), new Date(ms).toISOString(), String(ms))
  }
  t.equal(isoTime(Date.UTC(2026, 10, 28, 9, 5, 7, 42)), '2026-11-28T09:05:07.042Z')
})
