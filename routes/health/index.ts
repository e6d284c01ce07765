import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Healthy = Type.Object({ status: Type.Integer(), message: Type.String() }, { description: 'Healthy', examples: [{ status: 200, message: 'OK' }] })
const Unhealthy = Type.Object({ status: Type.Integer(), message: Type.String() }, {
  description: 'Not ready: the message names what is down',
  examples: [{ status: 503, message: 'Not ready: the SQLite database is unavailable' }]
})

/**
 * For load balancers and orchestrators: no session needed, and cheap (a trivial query, no
 * table scans). `live` says the process runs; `ready` that it can serve requests.
 */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos } = fastify

  fastify.get('/live', {
    schema: {
      tags: ['health'],
      summary: 'Liveness: 200 while the process runs',
      response: { 200: Healthy }
    }
  }, async function () {
    return { status: 200, message: 'OK' }
  })

  fastify.get('/ready', {
    schema: {
      tags: ['health'],
      summary: 'Readiness: 200 only when the database answers (and, on PostgreSQL, the event listener is connected)',
      description: 'A load balancer can use it to take an instance out while its database is unreachable.',
      response: { 200: Healthy, 503: Unhealthy }
    }
  }, async function () {
    // a 503 saying what is down, in words: a message meant for the client (`expose`)
    await repos.ready().catch((err: Error) => {
      throw fastify.httpErrors.createError(503, `Not ready: ${err.message}`, { cause: err, expose: true })
    })
    return { status: 200, message: 'OK' }
  })
}

export default health
