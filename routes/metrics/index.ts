import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { errors } from '../../schemas/common.js'
import { MetricsText, metricsSecurity } from '../../schemas/metrics.js'

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * Prometheus metrics of this instance (plugins/app/metrics.ts), when the `metrics` setting is
 * on; with `metricsToken` set, only for `Authorization: Bearer <metricsToken>`.
 */
const metrics: FastifyPluginAsyncTypebox = async function (fastify) {
  const { config, metricsRegistry } = fastify
  if (!config.metrics) return
  const token = config.metricsToken === '' ? null : digest(config.metricsToken)

  /** onRequest, with metricsToken set */
  const requireToken = token === null
    ? null
    : async function requireToken (request: FastifyRequest) {
      const given = fastify.bearerToken(request)
      // compared as digests: equal lengths, in constant time
      if (given === undefined || !timingSafeEqual(digest(given), token)) {
        throw fastify.httpErrors.unauthorized('Not Authenticated: send Authorization: Bearer <metricsToken>')
      }
    }

  fastify.get('/', {
    schema: {
      summary: 'Prometheus metrics of this instance',
      description: 'Requests, events, authentication attempts, active clients, open streams and long polls, ' +
        'delivery lag, database calls and process metrics, every name prefixed `cred_` (see the README, "Operations"). ' +
        'With the `metricsToken` setting, it needs `Authorization: Bearer <metricsToken>`.',
      ...(token === null
        ? { response: { 200: MetricsText } }
        : { security: metricsSecurity, response: { 200: MetricsText, 401: errors[401] } })
    },
    ...(requireToken === null ? {} : { onRequest: requireToken })
  }, async function (_request, reply) {
    const text = await metricsRegistry.metrics()
    return reply.type(metricsRegistry.contentType).send(text)
  })
}

export default metrics
