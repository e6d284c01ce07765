import formbody from '@fastify/formbody'
import fp from 'fastify-plugin'
import qs from 'qs'

// The original web UI posts /auth form-encoded, with nested fields in bracket notation
// (subscribe[Light][location]=Hall); qs reads that into the same shape as the JSON body.
// Bodies are JSON or form-encoded; anything else (text/plain included) is 415.
export default fp(async function bodyParsers (fastify) {
  fastify.removeContentTypeParser('text/plain')
  await fastify.register(formbody, {
    parser: (body: string) => qs.parse(body, { depth: 3, parameterLimit: 1000 })
  })
}, { name: 'cred-body-parsers' })
