import { Type, type Static, type TSchema } from '@sinclair/typebox'

/** A value that may also be null (JSON Schema type array, as OpenAPI 3.1 writes it). */
export const Nullable = <T extends TSchema>(schema: T) =>
  Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type as string, 'null'] })

/**
 * Characters cred can store and give back unchanged: anything but NUL (PostgreSQL cannot
 * store one) and UTF-16 surrogates that are not part of a pair (a lone surrogate has no
 * UTF-8 form: both databases would store U+FFFD instead, SQLite even three of them).
 * Written so that it means the same with and without the regex `u` flag.
 */
export const STORABLE_TEXT = '^(?:[^\\u0000\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$'

/**
 * Text a device sends and cred stores: at most `maxLength` characters, no NUL character and
 * no lone surrogate (see STORABLE_TEXT), so it reads back exactly as sent on either database.
 */
export const StoredText = (maxLength: number, options: { minLength?: number, description?: string, examples?: string[] } = {}) =>
  Type.String({ ...options, maxLength, pattern: STORABLE_TEXT })

/** `{status, message}`: every error, and the start of every success body. */
export const Envelope = Type.Object({
  status: Type.Integer({ description: 'the HTTP status code' }),
  message: Type.String({ description: 'a short human-readable message' })
}, { $id: 'Envelope', title: 'Envelope' })

/**
 * An error response: the envelope, with a real answer of that status as its example (written
 * out rather than as a $ref to Envelope: the OpenAPI document keeps no example beside a $ref).
 */
const errorRef = (status: number, description: string, message: string) =>
  Type.Object({ status: Type.Integer(), message: Type.String() }, { title: 'Envelope', description, examples: [{ status, message }] })

/** Error responses a route can send, by status, for its schema. */
export const errors = {
  400: errorRef(400, 'Malformed input: the message names the field or parameter', 'querystring/limit must be <= 1000'),
  401: errorRef(401, 'No valid session (`Not Authenticated`)', 'Not Authenticated'),
  403: errorRef(403, 'The session\'s API key lacks the permission (`Insufficient Permissions`); or a POST or DELETE with the ' +
    'session cookie came from a browser page of another origin (`Cross-origin request refused`: see the `cors` setting)', 'Insufficient Permissions'),
  crossOrigin: errorRef(403, 'A browser request from a page of another origin, which is not listed in the `cors` setting ' +
    '(`Cross-origin request refused`)', 'Cross-origin request refused: the page\'s origin is neither this server\'s nor listed in the cors setting'),
  413: errorRef(413, 'Request body over the configured limit', 'Request body is too large (limit 1048576 bytes)'),
  415: errorRef(415, 'Unsupported content type', 'Unsupported content type: text/plain (this route reads application/json)'),
  429: errorRef(429, 'Too many requests: see the Retry-After header', 'Too many failed authentication attempts: try again later')
} as const

/** The 401 of /auth: the API key is missing, unknown or revoked. */
export const invalidKey = errorRef(401, 'A missing, unknown or revoked API key (`Invalid API Key`)', 'Invalid API Key')

/** The 400 of a route, with one of its real answers as the example. */
export const badRequest = (message: string) => errorRef(400, 'Malformed input: the message names the field or parameter', message)

/** The 400 of a route with an id in its path. */
export const badId = badRequest('params/id must be an integer written in decimal digits')

/** The 404 of a route whose id names no item: `message` is what it answers (`Event Not Found`, …). */
export const notFound = (message: string) => errorRef(404, `Unknown id (\`${message}\`)`, message)

export const authErrors = { 401: errors[401], 403: errors[403] } as const

/** Error responses of event streams and long polls, which stay open while their session lasts. */
export const liveErrors = {
  401: errorRef(401, 'No valid session (`Not Authenticated`); a long poll also answers it when its session ends ' +
    'or its API key is revoked while it waits (a stream is closed then)', 'Not Authenticated'),
  429: errorRef(429, 'Too many event streams and waiting long polls: `maxStreamsPerSession` for the session, ' +
    'or `maxStreamsPerKey` for all sessions of its API key, on this instance', 'Too many open streams and long polls: at most 10 per session')
} as const

/** OpenAPI: the routes that need a session accept it as a bearer token or as the cookie. */
export const sessionSecurity: Array<Record<string, string[]>> = [{ bearerSession: [] }, { cookieSession: [] }]

/** An item id: any non-negative decimal integer is looked up (`0` is an unknown id, a 404, as in the original). */
export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 0, description: 'the item id, in decimal digits' })
})

const Count = (description: string) => Type.Integer({ minimum: 0, description })

/**
 * Query parameters accepted by every list route. `limit` is at most `maxPageSize` (a larger one
 * is a 400 naming the maximum, not silently cut: a caller asking for more learns it gets less),
 * and a list without `limit` holds at most that many items (see `listPage` in db/repositories.ts).
 */
export const listQuery = (maxPageSize: number) => Type.Object({
  full: Type.Optional(Type.Union([Type.Boolean(), Type.Integer({ minimum: 0, maximum: 1 })], {
    description: 'full items instead of `{id, uri}`: true or 1, false or 0'
  })),
  before: Type.Optional(Count('only ids lower than this')),
  after: Type.Optional(Count('only ids higher than this. Without `limit`, the page is the (at most ' +
    `${maxPageSize}) items right after it, still newest first: a client that polls with the highest id it got ` +
    'as its next `after` receives every item exactly once')),
  limit: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: maxPageSize,
    description: `at most this many items; at most ${maxPageSize} (the server's maxPageSize): a larger limit is a 400. ` +
      `Without it, a list holds at most ${maxPageSize} items (the newest, or with \`after\` those right after it)`
  })),
  offset: Type.Optional(Count('skip this many items first'))
})
export type ListQuery = Static<ReturnType<typeof listQuery>>

/**
 * The page a list query asks for, as the repositories read it: always the same five
 * properties, so the list code that reads them sees one object shape (docs/performance.md).
 */
export const pageOf = (query: ListQuery, maxItems: number) =>
  ({ before: query.before, after: query.after, limit: query.limit, offset: query.offset, maxItems })

/** `full=true` and `full=1` both ask for full items. */
export const wantsFull = (full: ListQuery['full']): boolean => full === true || full === 1

/** `{status, message, <key>: [...] }`, with `example`, a real answer, in the OpenAPI document. */
export const listResponse = <T extends TSchema>(key: string, item: T, description: string, example: Record<string, unknown>) =>
  Type.Object({
    status: Type.Integer(),
    message: Type.String(),
    [key]: Type.Array(item)
  }, { description, examples: [{ status: 200, message: 'OK', [key]: [example] }] })

/** `{status, message, <key>: {...} }`, with a real answer (`status`, `message`, `example`) in the OpenAPI document. */
export const itemResponse = <T extends TSchema>(key: string, item: T, description: string,
  answer: { status: number, message: string, example: Record<string, unknown> }) =>
    Type.Object({
      status: Type.Integer(),
      message: Type.String(),
      [key]: item
    }, { description, examples: [{ status: answer.status, message: answer.message, [key]: answer.example }] })

/** The item examples of the OpenAPI document, as the server writes them (default port, no approot). */
export const exampleUri = (path: string) => `http://localhost:5000${path}`
export const exampleTime = '2026-01-01T12:00:00.000Z'

export const Uri = Type.String({ description: 'absolute URL of the item', examples: ['http://localhost:5000/events/17'] })
export const IsoTime = Type.String({ description: 'ISO 8601 UTC time', examples: ['2026-01-01T12:00:00.000Z'] })

/** An optional session key in a JSON body (the third place a session is looked for). */
export const BodySessionKey = Type.Optional(Type.String({ description: 'session key, when not sent as a header or cookie' }))
