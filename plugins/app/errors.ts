import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import type { ConnectionError, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Envelope, STORABLE_TEXT } from '../../schemas/common.js'

const FORM = 'application/x-www-form-urlencoded'

/** Client errors whose Fastify message is reworded for device authors. */
function clientMessage (error: FastifyError, request: FastifyRequest): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `Request body is too large (limit ${request.routeOptions.bodyLimit} bytes)`
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return `Malformed JSON body: ${error.message}`
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': {
      // Fastify's message names neither what was sent nor what the route reads (POST /auth
      // registers the form parser in its own context, so its instance has it)
      const sent = request.headers['content-type']
      const reads = request.server.hasContentTypeParser(FORM) ? `application/json or ${FORM}` : 'application/json'
      return `Unsupported content type: ${sent === undefined || sent === '' ? 'none sent' : shorten(sent)} (this route reads ${reads})`
    }
    default:
      if (error instanceof SyntaxError) return `Malformed JSON body: ${error.message}`
      return error.message
  }
}

/** `text` cut to `max` characters, for quoting what a client sent in a message. */
export const shorten = (text: string, max = 200) => text.length > max ? `${text.slice(0, max)}…` : text

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

/** Status and message for a request Node's HTTP parser refused (`clientErrorHandler`). */
function connectionFault (error: ConnectionError & { reason?: unknown }): { status: number, message: string } {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, message: 'Request Header Fields Too Large: the request\'s headers are larger than the server accepts' }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, message: 'Content Too Large: the body\'s chunk extensions are larger than the server accepts' }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, message: 'Request Timeout: the request did not arrive in time' }
    default: {
      // llhttp's reason, e.g. "Invalid method encountered"
      const reason = typeof error.reason === 'string' && error.reason !== '' ? `: ${shorten(error.reason)}` : ''
      return { status: 400, message: `Malformed HTTP request${reason}` }
    }
  }
}

/** A whole HTTP/1.1 answer in the envelope, for a connection that closes after it. */
function rawAnswer (status: number, message: string): string {
  const body = JSON.stringify({ status, message })
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}

/**
 * The `clientErrorHandler` option of the Fastify server cred runs in, beside `frameworkErrors`.
 * Node answers a request its parser cannot read (a malformed request line, headers over its
 * size limit, a request not complete within its timeouts) before Fastify sees it; this answers
 * it in the envelope, as JSON, and closes the connection.
 */
export function clientErrorHandler (this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  // a connection reset, or one already gone: there is no one to answer
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  // answered already: the parser refuses what the client still sends (read, and dropped)
  if (socket.writableEnded) return
  const { status, message } = connectionFault(error)
  this.log.debug({ err: error, status }, 'malformed request answered')
  // As Node does: no answer into a response already being written on this connection.
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy(error)
    return
  }
  socket.end(rawAnswer(status, message))
  // The connection closes once the client has read the answer and closed its side. Until then
  // what it still sends is read and dropped: closing with unread data would reset the
  // connection, and the client could lose the answer. A client that keeps it open has a second.
  const linger = setTimeout(() => socket.destroy(), 1000).unref()
  socket.once('close', () => clearTimeout(linger))
}

/**
 * Requests Node's HTTP server answers by itself, with no body, where no Fastify option reaches:
 * an HTTP/1.1 request without a Host header (400), an `Expect` other than `100-continue`
 * (417) and CONNECT (no answer at all). This answers them in the envelope, on the server of
 * `app`; the first needs the server created with `requireHostHeader: false` (Node's 400
 * comes first otherwise), which lets such requests reach the hook added here.
 */
export function nodeAnswersInEnvelope (app: FastifyInstance): void {
  app.addHook('onRequest', function requireHost (request, reply, done) {
    if (request.headers.host !== undefined || request.raw.httpVersion !== '1.1') return done()
    void reply.code(400).header('connection', 'close').send({ status: 400, message: 'Bad Request: an HTTP/1.1 request needs a Host header' })
  })
  app.server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const body = JSON.stringify({ status: 417, message: 'Expectation Failed: the only Expect this server meets is 100-continue' })
    response.writeHead(417, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body)
  })
  app.server.on('connect', (_request: IncomingMessage, socket: Duplex) => {
    socket.end(rawAnswer(501, 'Not Implemented: CONNECT (this server is not a proxy)'))
  })
}

interface SchemaPart { type?: unknown, minimum?: unknown, maximum?: unknown, anyOf?: SchemaPart[] }
interface ValidationFault { keyword: string, instancePath: string, params: Record<string, unknown>, parentSchema?: SchemaPart }

/** What a value of one branch of a union must be, in words. */
function describe (schema: SchemaPart): string {
  if (schema.type === 'boolean') return 'true or false'
  if (schema.type === 'integer' && schema.minimum === 0 && schema.maximum === 1) return '1 or 0'
  if (schema.type === 'integer') return 'an integer'
  if (schema.type === 'string') return 'text'
  return `of type ${String(schema.type)}`
}

/**
 * A validation error's message, in words where Ajv's would confuse: one line for a value that
 * matches no branch of a union (Ajv reports every branch, then the union), and what a field may
 * not contain instead of the regular expression it failed.
 */
function validationMessage (error: FastifyError): string {
  const faults = (error.validation ?? []) as ValidationFault[]
  const where = (fault: ValidationFault) => `${error.validationContext ?? 'input'}${fault.instancePath}`
  const union = faults.find((fault) => fault.keyword === 'anyOf')
  if (union?.parentSchema?.anyOf !== undefined) {
    const [first, ...rest] = union.parentSchema.anyOf.map(describe)
    return `${where(union)} must be ${first}${rest.length > 0 ? ` (or ${rest.join(', or ')})` : ''}`
  }
  const storable = faults.find((fault) => fault.keyword === 'pattern' && fault.params.pattern === STORABLE_TEXT)
  if (storable !== undefined) {
    return `${where(storable)} must not contain a NUL character (U+0000) or an unpaired UTF-16 surrogate: send valid Unicode text`
  }
  return error.message
}

/**
 * cred's error handler, the one error path: everything thrown becomes `{status, message}`,
 * never HTML or a stack trace. A validation error is a 400 naming the field; an error's
 * `statusCode` is its status, anything else a 500. Server faults are logged with their stack
 * and answered with a generic message: in cred a 503 is the database being unavailable
 * (DatabaseUnavailableError), whose details (host, port, the driver's words) are for the log.
 */
export function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.validation !== undefined) {
    return reply.code(400).send({ status: 400, message: validationMessage(error) })
  }
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (status >= 500) {
    request.log.error({ err: error }, 'request failed')
    // a message meant for the client (http-errors' `expose`, as /health/ready sets it) is kept
    const message = (error as { expose?: unknown }).expose === true
      ? error.message
      : status === 503 ? 'Service Unavailable: the database cannot be reached' : 'Internal Server Error'
    return reply.code(status).send({ status, message })
  }
  return reply.code(status).send({ status, message: clientMessage(error, request) })
}

/** 404 for an unknown path; 405 with `Allow` for a known path asked with another method. */
export function notFoundHandler (request: FastifyRequest, reply: FastifyReply) {
  // (outside cred's prefix, in cred-server, no path is cred's)
  const allowed = request.server.hasDecorator('allowedMethods') ? request.server.allowedMethods(request.url) : []
  if (allowed.length > 0) {
    return reply.code(405).header('allow', allowed.join(', '))
      .send({ status: 405, message: `Method Not Allowed: ${request.method} is not answered here; use ${allowed.join(', ')}` })
  }
  return reply.code(404).send({ status: 404, message: 'Not Found' })
}

/** cred's handlers for its routes; the standalone server uses them outside approot too. */
export default fp(async function errors (fastify) {
  fastify.addSchema(Envelope)
  fastify.setErrorHandler(errorHandler)
  fastify.setNotFoundHandler(notFoundHandler)
}, { name: 'cred-errors' })
