import { Type } from '@sinclair/typebox'
import { BodySessionKey, IsoTime, Nullable, Uri, exampleTime, exampleUri, itemResponse, listResponse } from './common.js'

export const PERMISSIONS = ['read', 'write', 'admin'] as const
export type Permission = typeof PERMISSIONS[number]

export const ApiKeyItem = Type.Object({
  id: Type.Integer(),
  uri: Uri,
  permission: Type.Optional(Type.String({ enum: PERMISSIONS })),
  created: Type.Optional(IsoTime),
  revoked: Type.Optional(Nullable(Type.String({ description: 'when the key was revoked (ISO 8601 UTC), or null' }))),
  apikey: Type.Optional(Type.String({ description: 'the secret: only in the POST /apikeys response' }))
}, { title: 'ApiKey', description: 'Short form `{id, uri}`; full form adds permission, created and revoked' })

export const NewApiKeyBody = Type.Object({
  permission: Type.String({ description: 'read, write or admin', examples: ['write'] }),
  sessionKey: BodySessionKey
})

const fullKey = { id: 3, uri: exampleUri('/apikeys/3'), permission: 'write', created: exampleTime, revoked: null }

export const ApiKeyList = listResponse('apikeys', ApiKeyItem, 'API keys, newest first', { id: 3, uri: exampleUri('/apikeys/3') })
export const ApiKeyFound = itemResponse('apikey', ApiKeyItem, 'The API key, full form (never the secret)', { status: 200, message: 'OK', example: fullKey })
export const ApiKeyCreated = itemResponse('apikey', ApiKeyItem, 'The new API key, with its secret (shown only here)', {
  status: 201, message: 'Created API Key', example: { ...fullKey, apikey: 'Zx9…(the secret, 43 characters)' }
})
export const ApiKeyRevoked = itemResponse('apikey', ApiKeyItem, 'The revoked API key, full form', {
  status: 200, message: 'Revoked API Key', example: { ...fullKey, revoked: '2026-01-02T08:30:00.000Z' }
})
