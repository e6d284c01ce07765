// What every list answers, written out plainly from API.md ("List parameters"), for the tests
// to hold the databases and the in-memory window against.
import type { ListFilter } from '../../db/repositories.js'

/**
 * The ids a list filter answers from `ids` (any order): newest first; the filters, then
 * offset, then limit. Without `limit`, at most `maxItems`: the newest, or with `after`, when
 * there are more, the oldest `maxItems` after it (still newest first), so that a client that
 * takes the highest id it got as its next `after` never skips one.
 */
export function expectedIds (ids: number[], { before, after, offset = 0, limit, maxItems }: ListFilter): number[] {
  const ascending = ids.filter((id) => (after === undefined || id > after) && (before === undefined || id < before)).sort((a, b) => a - b)
  const newestFirst = [...ascending].reverse().slice(offset, limit === undefined ? undefined : offset + limit)
  if (limit !== undefined || maxItems === undefined || newestFirst.length <= maxItems) return newestFirst
  return after === undefined ? newestFirst.slice(0, maxItems) : ascending.slice(0, maxItems).reverse()
}
