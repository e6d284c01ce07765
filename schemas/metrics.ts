import { Type } from '@sinclair/typebox'

/** 200 of GET /metrics: Prometheus text exposition format, not JSON. */
export const MetricsText = {
  description: 'Prometheus text exposition format 0.0.4 (Content-Type `text/plain; version=0.0.4`)',
  content: {
    'text/plain': {
      schema: Type.String({
        examples: ['# HELP cred_events_posted_total Events posted (committed by POST /events)\n' +
          '# TYPE cred_events_posted_total counter\ncred_events_posted_total 3\n']
      })
    }
  }
}

/** OpenAPI: GET /metrics when the metricsToken setting is set. */
export const metricsSecurity: Array<Record<string, string[]>> = [{ metricsToken: [] }]
