import { Type } from '@sinclair/typebox'
import { BodySessionKey, IsoTime, Nullable, Uri, itemResponse, listResponse } from './common.js'

export const PERMISSIONS = ['read', 'write', 'admin'] as const
export type Permission = typeof PERMISSIONS[number]

export const ApiKeyItem = Type.Object({
  id: Type.Integer(),
  permission: Type.Optional(Type.String({ enum: PERMISSIONS })),
  created: Type.Optional(IsoTime),
  revoked: Type.Optional(Nullable(Type.String({ description: 'when the key was revoked (ISO 8601 UTC), or null' }))),
  apikey: Type.Optional(Type.String({ description: 'the secret: only in the POST /apikeys response' })),
  uri: Uri
}, { title: 'ApiKey', description: 'Short form `{id, uri}`; full form adds permission, created and revoked' })

export const NewApiKeyBody = Type.Object({
  permission: Type.String({ description: 'read, write or admin', examples: ['write'] }),
  sessionKey: BodySessionKey
})

export const ApiKeyList = listResponse('apikeys', ApiKeyItem, 'API keys, newest first')
export const ApiKeyFound = itemResponse('apikey', ApiKeyItem, 'The API key, full form (never the secret)')
export const ApiKeyCreated = itemResponse('apikey', ApiKeyItem, 'The new API key, with its secret (shown only here)')
export const ApiKeyRevoked = itemResponse('apikey', ApiKeyItem, 'The revoked API key, full form')
