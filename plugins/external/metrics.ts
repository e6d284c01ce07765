import fp from 'fastify-plugin'
import { Registry, collectDefaultMetrics } from 'prom-client'
import type { CredConfig } from '../../schemas/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** this instance's Prometheus registry (prom-client), served by GET /metrics */
    metricsRegistry: Registry
  }
}

let processMetrics: Registry | undefined

/**
 * The process metrics (cred_process_resident_memory_bytes, cred_nodejs_eventloop_lag_seconds,
 * cred_nodejs_gc_duration_seconds, ...). They describe the process, not an instance, and
 * their collectors (an event-loop delay monitor, a GC observer) can never be stopped: so
 * they are started once per process, in a registry of their own (never prom-client's global
 * one), and their metrics are added to each instance's registry.
 */
function processRegistry (): Registry {
  if (processMetrics === undefined) {
    processMetrics = new Registry()
    collectDefaultMetrics({ register: processMetrics, prefix: 'cred_' })
  }
  return processMetrics
}

/**
 * A Prometheus registry per instance, so two instances in one process (tests, embedded
 * copies) never count into each other. cred's own metrics are in plugins/app/metrics.ts.
 */
export default fp(async function prometheus (fastify, opts: { config: CredConfig }) {
  const registry = new Registry()
  if (opts.config.metrics) {
    const shared = processRegistry()
    for (const { name } of shared.getMetricsAsArray()) registry.registerMetric(shared.getSingleMetric(name)!)
  }
  fastify.decorate('metricsRegistry', registry)
}, { name: 'cred-prometheus' })
