import { Type, type Static } from '@sinclair/typebox'
import { NAME_MAX } from './events.js'
import { Nullable, StoredText } from './common.js'

const Subscription = Type.Union([
  Type.Object({
    location: Type.Optional(Nullable(StoredText(NAME_MAX, { description: 'only events from this location' })))
  }, {
    // A filter with another key is refused, not read as "any location": a typo (`locaton`) would
    // silently widen the subscription, and so would the form field subscribe[a%5D%5Bb]=, which
    // reads as subscribe[a][b]= (qs decodes %5B/%5D before it splits the name).
    propertyNames: { const: 'location' }
  }),
  Type.Literal('', { description: 'form encoding of an empty filter' })
])

/**
 * Every key of `subscribe`. Type.Record's default key pattern is `^(.*)$`, and `.` does not match
 * a line break: the filter of an event name with CR or LF in it was not validated at all (a
 * `null` filter was a 500, any other value was stored as "any location").
 */
const EventNameKey = Type.String({ pattern: '^[\\s\\S]*$' })

export const AuthInput = Type.Object({
  apikey: Type.Optional(Type.String({ description: 'the API key (required; 401 Invalid API Key when missing or unknown)' })),
  device: Type.Optional(Nullable(StoredText(NAME_MAX, { examples: ['Thermostat'] }))),
  location: Type.Optional(Nullable(StoredText(NAME_MAX, { examples: ['Living Room'] }))),
  subscribe: Type.Optional(Type.Record(EventNameKey, Subscription, {
    propertyNames: StoredText(NAME_MAX, { minLength: 1 }),
    description: 'event name → optional location filter; `{}` means that event from any location',
    examples: [{ Light: { location: 'Living Room' }, Alarm: {} }]
  })),
  viewer: Type.Optional(Type.Boolean({
    description: 'true for a person\'s browser signing in to watch, as the dashboard does: the client is a viewer, ' +
      'listed by `GET /clients?viewers=true` apart from the devices of `GET /clients`'
  }))
})
export type AuthInput = Static<typeof AuthInput>

export const AuthResponse = Type.Object({
  status: Type.Integer(),
  message: Type.String(),
  id: Type.Integer({ description: 'the new client id' }),
  sessionKey: Type.String({ description: '64 hex characters; also set as the sessionKey cookie' }),
  scheduled: Type.Object({
    assigned: Type.Boolean(),
    slot: Nullable(Type.Integer({ description: 'polling slot, 1..period' })),
    period: Nullable(Type.Integer({ description: 'schedulerPeriod' }))
  }),
  PINGTimeout: Type.Integer({ description: 'seconds of silence after which the client is no longer active' })
}, {
  description: 'A new client and session',
  examples: [{
    status: 201,
    message: 'Authenticated',
    id: 145,
    sessionKey: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    scheduled: { assigned: false, slot: null, period: null },
    PINGTimeout: 240
  }]
})
