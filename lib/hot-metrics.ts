import type { Registry } from 'prom-client'

// Counters and histograms for the per-request paths, registered in a prom-client Registry,
// which writes the exposition text as for its own metrics. prom-client's own labelled
// metrics hash the label values on every inc() and observe(), even through labels()
// children (what that costs: docs/performance.md). Here a series is looked up once
// (per route, status or query) and then counting is adding to plain numbers.

type Labels<L extends string> = Record<L, string>

/** What a Registry reads from a metric (prom-client's typings name the type an enum; at run time it is this text). */
interface Exposed {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  values: Array<{ labels: Record<string, string | number>, value: number, metricName?: string }>
}

abstract class HotMetric<L extends string, S> {
  readonly aggregator = 'sum' as const
  protected readonly series = new Map<string, { labels: Labels<L>, series: S }>()

  constructor (readonly name: string, readonly help: string, registers: Registry[]) {
    // the registry only calls get() (and reset()); its typings ask for prom-client's own class
    for (const registry of registers) registry.registerMetric(this as never)
  }

  abstract readonly type: Exposed['type']
  protected abstract create (): S

  /** The series with these label values, made on first use: keep it and use it on the hot path. */
  labels (labels: Labels<L>): S {
    const key = JSON.stringify(Object.entries(labels).sort())
    let found = this.series.get(key)
    if (found === undefined) this.series.set(key, found = { labels, series: this.create() })
    return found.series
  }

  /** prom-client's Registry#resetMetrics calls this */
  reset (): void {
    this.series.clear()
  }
}

export class HotCounterSeries {
  value = 0
  inc (by = 1): void {
    this.value += by
  }
}

export class HotCounter<L extends string = never> extends HotMetric<L, HotCounterSeries> {
  readonly type = 'counter' as const
  protected create (): HotCounterSeries {
    return new HotCounterSeries()
  }

  async get (): Promise<Exposed> {
    const values = [...this.series.values()].map(({ labels, series }) => ({ labels, value: series.value }))
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

export class HotHistogramSeries {
  /** observations per bucket (not cumulative); the last one is +Inf */
  readonly counts: Float64Array
  sum = 0
  count = 0
  constructor (private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    let i = 0
    while (i < this.bounds.length && value > this.bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

export class HotHistogram<L extends string = never> extends HotMetric<L, HotHistogramSeries> {
  readonly type = 'histogram' as const
  private readonly bounds: readonly number[]

  constructor (name: string, help: string, buckets: number[], registers: Registry[]) {
    super(name, help, registers)
    this.bounds = [...buckets].sort((a, b) => a - b)
  }

  protected create (): HotHistogramSeries {
    return new HotHistogramSeries(this.bounds)
  }

  async get (): Promise<Exposed> {
    const values: Exposed['values'] = []
    for (const { labels, series } of this.series.values()) {
      let cumulative = 0
      this.bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: series.count })
      values.push({ metricName: `${this.name}_sum`, labels, value: series.sum })
      values.push({ metricName: `${this.name}_count`, labels, value: series.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
