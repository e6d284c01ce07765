// Events per 5 minutes over the last hour, one line per event name (the busiest few; the rest
// together as "Other"), with the numbers in words beside it.
import { serverNow, type CredEvent } from './api.js'
import { byId, h, plural, s, timeOfDay } from './dom.js'

const BUCKET_MS = 5 * 60_000
const BUCKETS = 12
const HOUR_MS = BUCKET_MS * BUCKETS
/** series drawn by name; more names share one "Other" line */
const NAMED_SERIES = 5
const HEIGHT = 180
const MARGIN = { top: 12, right: 12, bottom: 26, left: 40 }

interface Series { name: string, counts: number[], total: number, other: boolean }

/** colours of the named series (styles.css: .series-0 … .series-4) */
const PALETTE = NAMED_SERIES
/** pixels between lines of equal counts, so that none hides another */
const SPREAD = 2.5

/**
 * Each event name keeps its colour while the page is open, whatever its rank: a colour changes
 * hands only when a name is shown while every colour is held by another name shown.
 */
class Colours {
  private readonly ownerOf = new Map<number, string>()
  private readonly colourOf = new Map<string, number>()

  /** A colour for each of `names` (at most PALETTE, all shown at once), none twice. */
  assign (names: string[]): Map<string, number> {
    const given = new Map<string, number>()
    const taken = new Set<number>()
    for (const name of names) {
      const colour = this.colourOf.get(name)
      if (colour !== undefined) {
        given.set(name, colour)
        taken.add(colour)
      }
    }
    for (const name of names) {
      if (given.has(name)) continue
      const free = Array.from({ length: PALETTE }, (_, colour) => colour).filter((colour) => !taken.has(colour))
      // a colour nobody had yet, else one whose name is not shown now
      const colour = free.find((candidate) => !this.ownerOf.has(candidate)) ?? free[0]!
      const previous = this.ownerOf.get(colour)
      if (previous !== undefined) this.colourOf.delete(previous)
      this.ownerOf.set(colour, name)
      this.colourOf.set(name, colour)
      given.set(name, colour)
      taken.add(colour)
    }
    return given
  }
}

/** 1, 2, 5, 10, 20, 50, ...: the smallest at or above n */
function roundUp (n: number): number {
  for (let scale = 1; ; scale *= 10) {
    for (const step of [1, 2, 5]) if (step * scale >= n) return step * scale
  }
}

export class RateChart {
  /** time (ms) and name of each event of the last hour */
  private seen: Array<{ time: number, name: string }> = []
  private note = ''
  private scheduled = false
  private readonly figure = byId('chart')
  private readonly resize = new ResizeObserver(() => this.update())
  private readonly timer = setInterval(() => this.update(), 30_000)
  private readonly colours = new Colours()

  constructor () {
    this.resize.observe(this.figure)
  }

  stop (): void {
    this.resize.disconnect()
    clearInterval(this.timer)
  }

  /**
   * The latest events, newest first (null while loading). `capped`: the server had more, so
   * when the oldest one is less than an hour old the chart misses some and says so.
   */
  reset (events: CredEvent[] | null, capped: boolean): void {
    this.seen = []
    this.note = events === null ? 'Loading…' : ''
    if (events !== null) {
      this.add([...events].reverse())
      const oldest = events[events.length - 1]
      if (capped && oldest !== undefined && Date.parse(oldest.time) > serverNow() - HOUR_MS) {
        this.note = `Counted from the latest ${plural(events.length, 'event')}: earlier events of this hour are not included.`
      }
    }
    this.update()
  }

  add (events: CredEvent[]): void {
    for (const event of events) this.seen.push({ time: Date.parse(event.time), name: event.name })
    this.update()
  }

  /** Draws at the next frame, once however many events arrive before it. */
  private update (): void {
    if (this.scheduled) return
    this.scheduled = true
    requestAnimationFrame(() => {
      this.scheduled = false
      this.draw()
    })
  }

  private series (start: number): Series[] {
    this.seen = this.seen.filter((event) => event.time >= start)
    const byName = new Map<string, number[]>()
    for (const { time, name } of this.seen) {
      const bucket = Math.min(BUCKETS - 1, Math.floor((time - start) / BUCKET_MS))
      const counts = byName.get(name) ?? new Array<number>(BUCKETS).fill(0)
      counts[bucket]! += 1
      byName.set(name, counts)
    }
    const all = [...byName].map(([name, counts]) => ({ name, counts, total: counts.reduce((a, b) => a + b, 0), other: false }))
      .sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1))
    if (all.length <= NAMED_SERIES + 1) return all
    const rest = all.slice(NAMED_SERIES)
    const counts = rest[0]!.counts.map((_, i) => rest.reduce((sum, series) => sum + series.counts[i]!, 0))
    return [...all.slice(0, NAMED_SERIES), { name: `Other (${rest.length} names)`, counts, total: counts.reduce((a, b) => a + b, 0), other: true }]
  }

  private draw (): void {
    const now = serverNow()
    const start = now - HOUR_MS
    const series = this.series(start)
    byId('chart-note').textContent = this.note
    byId('chart-note').hidden = this.note === ''
    if (series.length === 0) {
      this.figure.replaceChildren(h('p', { class: 'hint empty-chart' }, this.note === 'Loading…' ? '' : 'No events in the last hour.'))
      byId('chart-legend').replaceChildren()
      return
    }

    const width = Math.max(280, this.figure.clientWidth)
    const plotWidth = width - MARGIN.left - MARGIN.right
    const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
    const top = roundUp(Math.max(...series.flatMap((one) => one.counts)))
    const x = (bucket: number) => MARGIN.left + (bucket + 0.5) * plotWidth / BUCKETS
    const y = (count: number) => MARGIN.top + plotHeight - count / top * plotHeight
    // lines spread around their true height, so that equal counts draw side by side
    const shift = (index: number) => (index - (series.length - 1) / 2) * SPREAD
    const colours = this.colours.assign(series.filter((one) => !one.other).map((one) => one.name))
    const colourClass = (one: Series) => `series-${one.other ? 'other' : colours.get(one.name)!}`
    const busiest = series[0]!
    const summary = `${busiest.name}: ${plural(busiest.counts[BUCKETS - 1]!, 'event')} in the last 5 minutes, ${busiest.total.toLocaleString()} in the hour` +
      (series.length > 1 ? `; ${series.length - 1} more ${series.length === 2 ? 'name' : 'names'} in the legend.` : '.')

    const grid = [0, top / 2, top].map((value) => s('g', { class: 'grid' },
      s('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(value), y2: y(value) }),
      s('text', { x: MARGIN.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, Number.isInteger(value) ? value : value.toFixed(1))))
    const ticks = [0, 3, 6, 9, 12].map((bucket) => s('text', {
      class: 'tick',
      x: MARGIN.left + bucket * plotWidth / BUCKETS,
      y: HEIGHT - 8,
      'text-anchor': bucket === 0 ? 'start' : bucket === BUCKETS ? 'end' : 'middle'
    }, bucket === BUCKETS ? 'now' : `−${60 - bucket * 5}${plotWidth < 480 ? '′' : ' min'}`))
    // the busiest drawn last, on top
    const lines = series.map((one, index) => s('g', { class: `series ${colourClass(one)}`, 'data-name': one.name },
      s('polyline', { points: one.counts.map((count, bucket) => `${x(bucket)},${y(count) + shift(index)}`).join(' ') }),
      ...one.counts.map((count, bucket) => s('circle', { cx: x(bucket), cy: y(count) + shift(index), r: count === 0 ? 1.5 : 3.5 },
        s('title', {}, `${one.name}: ${plural(count, 'event')} from ${timeOfDay(new Date(start + bucket * BUCKET_MS).toISOString())}`)))))

    this.figure.replaceChildren(s('svg', {
      width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: 'img', 'aria-label': `Events per 5 minutes over the last hour. ${summary}`
    }, ...grid, ...ticks, ...lines.reverse()))
    byId('chart-legend').replaceChildren(...series.map((one) => h('li', {},
      h('span', { class: `swatch ${colourClass(one)}`, 'aria-hidden': 'true' }),
      h('strong', {}, one.name),
      ` ${plural(one.counts[BUCKETS - 1]!, 'event')} in the last 5 min · ${one.total.toLocaleString()} in the hour`)))
  }
}
