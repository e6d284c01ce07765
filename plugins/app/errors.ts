import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { Envelope } from '../../schemas/common.js'

/** Client errors whose Fastify message is reworded for device authors. */
function clientMessage (error: FastifyError, bodyLimit: number): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `Request body is too large (limit ${bodyLimit} bytes)`
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return `Malformed JSON body: ${error.message}`
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `Unsupported content type: ${error.message.replace(/^Unsupported Media Type:?\s*/i, '') || 'none'}`
    default:
      if (error instanceof SyntaxError) return `Malformed JSON body: ${error.message}`
      return error.message
  }
}

const shorten = (text: string, max = 200) => text.length > max ? `${text.slice(0, max)}…` : text

/**
 * The `frameworkErrors` option of the Fastify server cred runs in (`Fastify({ frameworkErrors })`,
 * as scripts/cred-server.ts should create it). Fastify's router answers some requests before any
 * plugin, hook or error handler sees them, in its own `{error, code, message, statusCode}` body:
 * a path that cannot be percent-decoded (`/events/%zz`, 400) and a path parameter longer than
 * `maxParamLength` (`/events/` + 101 digits, 414). A plugin cannot change that; this answers
 * them in the envelope too.
 */
export function frameworkErrors (error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500
  const message = error.code === 'FST_ERR_BAD_URL'
    ? `Malformed URL: ${shorten(error.message)}`
    : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? 'URI Too Long: a path parameter is longer than the server accepts'
      : status === 500 ? 'Internal Server Error' : shorten(error.message)
  void reply.code(status).send({ status, message })
}

/**
 * The one error path: everything thrown becomes `{status, message}`, never HTML or a stack
 * trace. Server faults are logged with their stack and answered with a generic message.
 */
export default fp(async function errors (fastify) {
  fastify.addSchema(Envelope)

  fastify.setErrorHandler(function (error: FastifyError, request, reply) {
    if (error.validation !== undefined) {
      return reply.code(400).send({ status: 400, message: error.message })
    }
    const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600
      ? error.statusCode
      : error.name === 'DatabaseUnavailableError' ? 503 : 500
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed')
      const message = status === 503 ? 'Service Unavailable: the database cannot be reached' : 'Internal Server Error'
      return reply.code(status).send({ status, message })
    }
    return reply.code(status).send({ status, message: clientMessage(error, fastify.config.bodyLimit) })
  })

  fastify.setNotFoundHandler(function (_request, reply) {
    return reply.code(404).send({ status: 404, message: 'Not Found' })
  })
}, { name: 'cred-errors', dependencies: ['cred-config'] })
