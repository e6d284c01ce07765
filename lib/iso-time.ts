const pad2 = (n: number): string => (n < 10 ? '0' : '') + n
const pad3 = (n: number): string => (n < 10 ? '00' : n < 100 ? '0' : '') + n

/**
 * `new Date(ms).toISOString()`, about four times faster: V8 formats that through snprintf,
 * which was most of the cost of listing 500 clients. Years outside 1000–9999 (never a real
 * event's) are left to toISOString.
 */
export function isoTime (ms: number): string {
  const date = new Date(ms)
  const year = date.getUTCFullYear()
  if (!(year >= 1000 && year <= 9999)) return date.toISOString()
  return `${year}-${pad2(date.getUTCMonth() + 1)}-${pad2(date.getUTCDate())}T${pad2(date.getUTCHours())}:` +
    `${pad2(date.getUTCMinutes())}:${pad2(date.getUTCSeconds())}.${pad3(date.getUTCMilliseconds())}Z`
}
