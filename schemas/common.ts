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
  status: Type.Integer({ description: 'the HTTP status code', examples: [404] }),
  message: Type.String({ description: 'a short human-readable message', examples: ['Event Not Found'] })
}, { $id: 'Envelope', title: 'Envelope' })

const errorRef = (description: string) => Type.Ref('Envelope', { description })

/** Error responses a route can send, by status, for its schema. */
export const errors = {
  400: errorRef('Malformed input: the message names the field or parameter'),
  401: errorRef('No valid session (`Not Authenticated`)'),
  403: errorRef('The session\'s API key lacks the permission (`Insufficient Permissions`); or a POST or DELETE with the ' +
    'session cookie came from a browser page of another origin (`Cross-origin request refused`: see the `cors` setting)'),
  crossOrigin: errorRef('A browser request from a page of another origin, which is not listed in the `cors` setting ' +
    '(`Cross-origin request refused`)'),
  404: errorRef('Unknown id'),
  413: errorRef('Request body over the configured limit'),
  415: errorRef('Unsupported content type'),
  429: errorRef('Too many requests: see the Retry-After header')
} as const

export const authErrors = { 401: errors[401], 403: errors[403] } as const

/** Error responses of event streams and long polls, which stay open while their session lasts. */
export const liveErrors = {
  401: errorRef('No valid session (`Not Authenticated`); a long poll also answers it when its session ends ' +
    'or its API key is revoked while it waits (a stream is closed then)'),
  429: errorRef('Too many event streams and waiting long polls: `maxStreamsPerSession` for the session, ' +
    'or `maxStreamsPerKey` for all sessions of its API key, on this instance')
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

/** `full=true` and `full=1` both ask for full items. */
export const wantsFull = (full: ListQuery['full']): boolean => full === true || full === 1

/** `{status, message, <key>: [...] }` */
export const listResponse = <T extends TSchema>(key: string, item: T, description: string) =>
  Type.Object({
    status: Type.Integer(),
    message: Type.String(),
    [key]: Type.Array(item)
  }, { description })

/** `{status, message, <key>: {...} }` */
export const itemResponse = <T extends TSchema>(key: string, item: T, description: string) =>
  Type.Object({
    status: Type.Integer(),
    message: Type.String(),
    [key]: item
  }, { description })

export const Uri = Type.String({ description: 'absolute URL of the item', examples: ['http://localhost:5000/events/17'] })
export const IsoTime = Type.String({ description: 'ISO 8601 UTC time', examples: ['2026-01-01T12:00:00.000Z'] })

/** An optional session key in a JSON body (the third place a session is looked for). */
export const BodySessionKey = Type.Optional(Type.String({ description: 'session key, when not sent as a header or cookie' }))
