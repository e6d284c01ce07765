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

const fullClient = { id: 2, uri: exampleUri('/clients/2'), device: 'Thermostat', location: 'Living Room', lastActive: exampleTime }

export const ClientList = listResponse('clients', ClientItem, 'Clients active within pingtimeout seconds, newest first',
  { id: 2, uri: exampleUri('/clients/2') })
export const ClientFound = itemResponse('client', ClientItem, 'The client, full form', { status: 200, message: 'OK', example: fullClient })
export const ClientWithSubscriptions = itemResponse('client', ClientItem, 'The client, full form, with its subscriptions', {
  status: 200, message: 'OK', example: { ...fullClient, subscriptions: [{ name: 'Light', location: 'Living Room' }] }
})
