import { Type } from '@sinclair/typebox'
import { Nullable, Uri, itemResponse, listResponse } from './common.js'

export const ClientItem = Type.Object({
  id: Type.Integer(),
  device: Type.Optional(Nullable(Type.String())),
  location: Type.Optional(Nullable(Type.String())),
  uri: Uri
}, { title: 'Client', description: 'Short form `{id, uri}`; full form adds device and location' })

export const ClientList = listResponse('clients', ClientItem, 'Clients active within pingtimeout seconds, newest first')
export const ClientFound = itemResponse('client', ClientItem, 'The client, full form')
