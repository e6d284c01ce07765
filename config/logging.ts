import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyRequest, FastifyServerOptions } from 'fastify'

/** Query parameters that carry secrets (GET /auth?apikey=…): their values never reach a log line. */
const secretInQuery = /([?&](?:apikey|sessionkey)=)[^&#]*/gi

/** The request's URL as it may be logged. */
export const loggableUrl = (url: string): string => url.replace(secretInQuery, '$1[redacted]')

/** An incoming X-Request-Id is kept when it looks like an id; otherwise a new UUID is made. */
export function requestId (request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : randomUUID()
}

/**
 * Options for the Fastify server cred runs in: pino JSON logs at `level`, a request id on
 * every line of a request (taken from X-Request-Id when the caller sends one), and never an
 * API key, session key or cookie in any line. cred-server uses them; a host app may too.
 */
export function serverLogging (level: string): Pick<FastifyServerOptions, 'logger' | 'genReqId' | 'requestIdHeader'> {
  return {
    logger: {
      level,
      redact: {
        paths: [
          'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
          'apikey', 'sessionKey', '*.apikey', '*.sessionKey'
        ],
        censor: '[redacted]'
      },
      serializers: {
        req (request: FastifyRequest) {
          return {
            method: request.method,
            url: loggableUrl(request.url),
            host: request.host,
            remoteAddress: request.ip,
            remotePort: request.socket?.remotePort
          }
        }
      }
    },
    requestIdHeader: false,
    // logged as `reqId`, Fastify's default label
    genReqId: requestId
  }
}
