import { Type } from '@sinclair/typebox'
import { IsoTime, Nullable, Uri, exampleTime, exampleUri, itemResponse, listResponse } from './common.js'

/** One of a client's subscriptions: an event name, from one location or (null) any. */
export const ClientSubscription = Type.Object({
  name: Type.String({ description: 'the event name' }),
  location: Nullable(Type.String({ description: 'only events from this location; null = any location' }))
}, { title: 'Subscription' })

export const ClientItem = Type.Object({
  id: Type.Integer(),
  uri: Uri,
  device: Type.Optional(Nullable(Type.String())),
  location: Type.Optional(Nullable(Type.String())),
  lastActive: Type.Optional(Type.String({ description: 'when the client last made an authenticated request (ISO 8601 UTC)', examples: IsoTime.examples })),
  subscriptions: Type.Optional(Type.Array(ClientSubscription, { description: 'GET /clients/{id} only: what the client subscribed to in /auth' }))
}, { title: 'Client', description: 'Short form `{id, uri}`; full form adds device, location and lastActive' })

/** GET /clients also takes `viewers`: the browsers watching instead of the devices. */
export const ClientListQuery = Type.Object({
  viewers: Type.Optional(Type.Union([Type.Boolean(), Type.Integer({ minimum: 0, maximum: 1 })], {
    description: 'true or 1: list the viewers (browsers signed in with `viewer: true`, such as the dashboard) instead of the devices'
  }))
})

const fullClient = { id: 2, uri: exampleUri('/clients/2'), device: 'Thermostat', location: 'Living Room', lastActive: exampleTime }

export const ClientList = listResponse('clients', ClientItem, 'Devices (or, with viewers=true, viewers) active within pingtimeout seconds, newest first',
  { id: 2, uri: exampleUri('/clients/2') })
export const ClientFound = itemResponse('client', ClientItem, 'The client, full form', { status: 200, message: 'OK', example: fullClient })
export const ClientWithSubscriptions = itemResponse('client', ClientItem, 'The client, full form, with its subscriptions', {
  status: 200, message: 'OK', example: { ...fullClient, subscriptions: [{ name: 'Light', location: 'Living Room' }] }
})
