// parse-prometheus-text-format ships no types: what its README documents (prom2json's shape).
declare module 'parse-prometheus-text-format' {
  export interface Sample {
    value: string
    labels?: Record<string, string>
  }
  export interface HistogramSample {
    /** cumulative count by upper bound (`le`), as text */
    buckets: Record<string, string>
    count: string
    sum: string
    labels?: Record<string, string>
  }
  export interface MetricFamily {
    name: string
    help: string
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    metrics: Array<Sample | HistogramSample>
  }
  export default function parsePrometheusTextFormat (text: string): MetricFamily[]
}
