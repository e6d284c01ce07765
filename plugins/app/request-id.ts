import fp from 'fastify-plugin'

// Every answer names its request id (taken from an incoming X-Request-Id, or made), so a device
// author can quote it and an operator find the matching log lines.
export default fp(async function requestId (fastify) {
  // callback style: no promise per request on this hot path
  fastify.addHook('onRequest', function (request, reply, done) {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'cred-request-id' })
