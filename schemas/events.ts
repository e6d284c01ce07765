import { Type, type Static } from '@sinclair/typebox'
import { BodySessionKey, IsoTime, Nullable, StoredText, Uri, exampleTime, exampleUri, itemResponse, listQuery, listResponse } from './common.js'

export const NAME_MAX = 240
export const VALUE_MAX = 4096

const ShortText = (description: string) => StoredText(NAME_MAX, { description })

/**
 * An event. The short form (lists without `full=true`) has only `id` and `uri`;
 * the full form has every field.
 */
export const EventItem = Type.Object({
  id: Type.Integer(),
  uri: Uri,
  device: Type.Optional(Nullable(Type.String({ description: 'device name of the client that posted it' }))),
  name: Type.Optional(Type.String()),
  location: Type.Optional(Nullable(Type.String())),
  action: Type.Optional(Nullable(Type.String())),
  value: Type.Optional(Nullable(Type.String({ description: 'always text: a posted number 21.5 reads back "21.5"' }))),
  time: Type.Optional(IsoTime)
}, { title: 'Event', description: 'Short form `{id, uri}`; full form adds device, name, location, action, value and time' })

export const NewEvent = Type.Object({
  name: StoredText(NAME_MAX, { minLength: 1, description: 'event name, e.g. Light' }),
  location: Type.Optional(Nullable(ShortText('where it happened, e.g. Living Room'))),
  action: Type.Optional(Nullable(ShortText('what happened, e.g. Toggled'))),
  value: Type.Optional(Type.Unsafe<string | number | boolean | null>({
    type: ['string', 'number', 'boolean', 'null'],
    maxLength: VALUE_MAX,
    pattern: StoredText(VALUE_MAX).pattern,
    description: 'stored and returned as text'
  }))
}, { examples: [{ name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On' }] })
export type NewEvent = Static<typeof NewEvent>

export const PostEventBody = Type.Object({
  event: NewEvent,
  sessionKey: BodySessionKey
})

/** The longest Idempotency-Key accepted. */
export const IDEMPOTENCY_KEY_MAX = 255

export const PostEventHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({
    minLength: 1,
    maxLength: IDEMPOTENCY_KEY_MAX,
    // printable ASCII (HTTP drops spaces at either end)
    pattern: '^[\\x20-\\x7E]+$',
    description: 'makes retrying safe: a repeat with the same key from the same API key (any of its sessions) within 24 hours ' +
      'of the first stores nothing and answers the event the first post stored (201, the same id and uri, ' +
      '`Idempotent-Replayed: true`), even when its event differs; a new key stores a new event. ' +
      `1 to ${IDEMPOTENCY_KEY_MAX} printable ASCII characters, e.g. a UUID.`
  }))
})

const shortEvent = { id: 17, uri: exampleUri('/events/17') }
const fullEvent = {
  id: 17, uri: exampleUri('/events/17'), device: 'Light Switch', name: 'Light', location: 'Living Room', action: 'Toggled', value: 'On', time: exampleTime
}

export const EventList = listResponse('events', EventItem, 'Events, newest first', shortEvent)
// `headers` documents the response header in the OpenAPI document (@fastify/swagger reads it)
export const EventCreated = Object.assign(itemResponse('event', Type.Object({ id: Type.Integer(), uri: Uri }),
  'The new event, or, for a repeated Idempotency-Key, the event the first post stored',
  { status: 201, message: 'Created Event', example: shortEvent }), {
  headers: {
    'idempotent-replayed': {
      type: 'string',
      enum: ['true'],
      description: 'present when the answer repeats the event an earlier post with the same Idempotency-Key stored: nothing new was stored'
    }
  }
})
export const EventFound = itemResponse('event', EventItem, 'The event, full form', { status: 200, message: 'OK', example: fullEvent })

export const MAX_WAIT_SECONDS = 60

/** The event lists also take `wait`: long polling. */
export const eventListQuery = (maxPageSize: number) => Type.Composite([listQuery(maxPageSize), Type.Object({
  wait: Type.Optional(Type.Number({
    minimum: 0,
    maximum: MAX_WAIT_SECONDS,
    description: 'long polling: when nothing matches yet, hold the request up to this many seconds ' +
      'until a matching event arrives (then answer with it) or the time runs out (then an empty list). ' +
      'A waiting poll counts toward the same limits as streams (429), and answers 401 if its session ends ' +
      'or its API key is revoked meanwhile'
  }))
})])

export const StreamQuery = Type.Object({
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'first send every matching event with a higher id (as Last-Event-ID)' }))
})

export const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.Integer({ minimum: 0, description: 'sent by EventSource on reconnect: resume after this event id' }))
})

/** 200 of a stream route: Server-Sent Events, not JSON. */
export const EventStream = {
  description: 'Server-Sent Events: each matching event (full form) as a message with `id:` = event id and ' +
    '`event: event`, oldest first, after first catching up from the database; `:` comment lines are heartbeats. ' +
    'The server closes the stream when its session ends (DELETE /auth) or its API key is revoked, on every instance.',
  content: {
    'text/event-stream': {
      schema: Type.String({ examples: ['id: 17\nevent: event\ndata: {"id":17,"uri":"http://localhost:5000/events/17","device":"Switch","name":"Light","location":"Hall","action":"Toggled","value":"On","time":"2026-01-01T12:00:00.000Z"}\n\n'] })
    }
  }
}
