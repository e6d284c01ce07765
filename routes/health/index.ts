import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Healthy = Type.Object({ status: Type.Integer(), message: Type.String() }, { description: 'Healthy', examples: [{ status: 200, message: 'OK' }] })
const Ready = Type.Object({
  status: Type.Integer(),
  message: Type.String({ description: 'OK, or what is not well that does not stop this instance from serving (the MQTT broker not connected)' }),
  mqtt: Type.Optional(Type.Union([Type.Literal('standby'), Type.Literal('connecting'), Type.Literal('connected')], {
    description: 'with an MQTT bridge configured: connected, connecting (this instance bridges and the broker is not connected: it retries), ' +
      'or standby (another instance bridges)'
  }))
}, {
  description: 'Ready',
  examples: [{ status: 200, message: 'OK, but the MQTT broker at mqtt://127.0.0.1:1883 is not connected (connect ECONNREFUSED 127.0.0.1:1883): retrying', mqtt: 'connecting' }]
})
const Unhealthy = Type.Object({ status: Type.Integer(), message: Type.String() }, {
  description: 'Not ready: the message names what is down',
  examples: [{ status: 503, message: 'Not ready: the SQLite database is unavailable' }]
})

/**
 * For load balancers and orchestrators: no session needed, and cheap (a trivial query, no
 * table scans). `live` says the process runs; `ready` that it can serve requests.
 */
const health: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, mqttBridge } = fastify

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
      description: 'A load balancer can use it to take an instance out while its database is unreachable. ' +
        'An MQTT broker that is not connected does not make it 503: the body says so (`mqtt`).',
      response: { 200: Ready, 503: Unhealthy }
    }
  }, async function () {
    // a 503 saying what is down, in words: a message meant for the client (`expose`)
    await repos.ready().catch((err: Error) => {
      throw fastify.httpErrors.createError(503, `Not ready: ${err.message}`, { cause: err, expose: true })
    })
    const { state, broker, problem } = mqttBridge
    if (state === 'off') return { status: 200, message: 'OK' }
    if (state !== 'connecting') return { status: 200, message: 'OK', mqtt: state }
    return { status: 200, message: `OK, but the MQTT broker at ${broker} is not connected${problem === undefined ? '' : ` (${problem})`}: retrying`, mqtt: state }
  })
}

export default health
