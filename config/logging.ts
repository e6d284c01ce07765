import pretty from 'pino-pretty'
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LogController, type FastifyBaseLogger, type FastifyReply, type FastifyRequest, type FastifyServerOptions, type LogLevel as LevelWithSilent } from 'fastify'

/**
 * Query parameters that carry secrets (GET /auth?apikey=…), by their decoded name in any case,
 * with or without a bracket suffix: the query parsers decode names, so `api%6Bey` is `apikey`.
 */
const secretName = /^(?:apikey|sessionkey)(?:\[|$)/i

function decodedName (name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '))
  } catch {
    return name // not decodable: no parser reads it as a secret's name either
  }
}

/** The request's URL as it may be logged: the values of secret query parameters never reach a log line. */
export function loggableUrl (url: string): string {
  const search = url.indexOf('?')
  if (search === -1) return url
  const hash = url.indexOf('#', search)
  const query = url.slice(search + 1, hash === -1 ? undefined : hash)
  const redacted = query.split('&').map((pair) => {
    const equals = pair.indexOf('=')
    if (equals === -1) return pair
    const name = pair.slice(0, equals)
    return secretName.test(decodedName(name)) ? `${name}=[redacted]` : pair
  }).join('&')
  return url.slice(0, search + 1) + redacted + (hash === -1 ? '' : url.slice(hash))
}

/** An incoming X-Request-Id is kept when it looks like an id; otherwise a new UUID is made. */
export function requestId (request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && /^[\w.:-]{1,128}$/.test(incoming) ? incoming : randomUUID()
}

type LogLevel = Exclude<LevelWithSilent, 'silent'>
type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>
/** a pino logger: `isLevelEnabled` answers for its children too, which have its level */
type PinoLike = FastifyBaseLogger & { isLevelEnabled: (level: string) => boolean }

/**
 * A request's logger (`request.log`): the pino child with the request id bound is made only when
 * the request logs a line at a level that is on. At the usual levels most requests log nothing,
 * and pino's child copies its options and serializes the bindings through the redaction paths
 * (what that costs: docs/performance.md).
 */
class RequestLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | undefined

  constructor (private readonly parent: PinoLike, private readonly bindings: Bindings) {}

  private get logger (): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings))
  }

  get level (): string { return (this.made ?? this.parent).level }
  set level (level: string) { this.logger.level = level }

  private write (level: LogLevel, args: unknown[]): void {
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return
    ;(this.logger[level] as (...args: unknown[]) => void)(...args)
  }

  // methods on the prototype, not arrow-function fields: nothing more is made per request
  fatal (...args: unknown[]): void { this.write('fatal', args) }
  error (...args: unknown[]): void { this.write('error', args) }
  warn (...args: unknown[]): void { this.write('warn', args) }
  info (...args: unknown[]): void { this.write('info', args) }
  debug (...args: unknown[]): void { this.write('debug', args) }
  trace (...args: unknown[]): void { this.write('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options)
  }
}

/** Whether `object` has a key of its own (without making an array of them, as Object.keys would). */
function hasOwnKeys (object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return true
  return false
}

/**
 * Fastify's `childLoggerFactory` for cred: a `RequestLogger`, unless the route has options of
 * its own for its logger (a `logLevel` or serializers), or the logger is not pino's.
 */
export function requestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  if (hasOwnKeys(options) || typeof (logger as Partial<PinoLike>).isLevelEnabled !== 'function') return logger.child(bindings, options)
  return new RequestLogger(logger as PinoLike, bindings)
}

/** A request answered later than this is logged at info (streams and long polls excepted: they wait on purpose). */
export const SLOW_REQUEST_MS = 1000

/** Streams and long polls take as long as they take: their time says nothing about the server. */
function waitsOnPurpose (request: FastifyRequest, reply: FastifyReply): boolean {
  const type = reply.getHeader('content-type')
  if (typeof type === 'string' && type.startsWith('text/event-stream')) return true
  const query = request.query as { wait?: unknown } | undefined
  return typeof query === 'object' && query !== null && Number(query.wait) > 0
}

/**
 * Fastify's request lines ("incoming request", "request completed") at debug instead of info:
 * written for every request, they cost a large share of a cheap request's time. At info an
 * operator still sees what needs a look: a request that failed (5xx, with the error handler's
 * own line) or took longer than SLOW_REQUEST_MS, with its time.
 */
export class CredLogController extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const responseTime = reply.elapsedTime
    if (error !== null && error !== undefined) {
      reply.log.error({ res: reply, err: error, responseTime }, 'request errored')
    } else if (reply.statusCode >= 500 || (responseTime >= SLOW_REQUEST_MS && !waitsOnPurpose(request, reply))) {
      reply.log.info({ req: request, res: reply, responseTime }, 'request completed')
    } else {
      reply.log.debug({ res: reply, responseTime }, 'request completed')
    }
  }
}

/** JSON lines (for log collectors), or readable lines (for a person at a terminal). */
export type LogFormat = 'json' | 'pretty'

/**
 * Lines for a person: time, level (coloured), message, and the request id, with the other
 * fields of a line below it. Written synchronously, like the JSON lines: nothing is lost on exit.
 */
function readableLines (): NodeJS.WritableStream {
  // (colours only on a terminal: pino-pretty's own default)
  return pretty({ translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', sync: true })
}

/**
 * Options for the Fastify server cred runs in: pino JSON logs at `level`, a request id on
 * every line of a request (taken from X-Request-Id when the caller sends one), request lines
 * at debug (CredLogController), and never an API key, session key or cookie in any line. cred-server uses them; a host app may too.
 */
export function serverLogging (level: string, format: LogFormat = 'json'): Pick<FastifyServerOptions, 'logger' | 'genReqId' | 'requestIdHeader' | 'childLoggerFactory' | 'logController'> {
  return {
    logger: {
      level,
      ...(format === 'pretty' ? { stream: readableLines() } : {}),
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
    genReqId: requestId,
    childLoggerFactory: requestLogger,
    logController: new CredLogController()
  }
}
