import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { ApiKeyRecord, ClientRecord, EventRecord } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** turns records into API items (short or full form) with absolute `uri`s */
    items: ItemPresenter
  }
}

export interface ItemPresenter {
  event: (request: FastifyRequest, event: EventRecord, full: boolean) => EventItemOut
  client: (request: FastifyRequest, client: ClientRecord, full: boolean) => ClientItemOut
  apikey: (request: FastifyRequest, apikey: ApiKeyRecord, full: boolean) => ApiKeyItemOut
}

interface EventItemOut {
  id: number, uri: string, device?: string | null, name?: string, location?: string | null,
  action?: string | null, value?: string | null, time?: string
}
interface ClientItemOut { id: number, uri: string, device?: string | null, location?: string | null, lastActive?: string }
interface ApiKeyItemOut { id: number, uri: string, permission?: ApiKeyRecord['permission'], created?: string, revoked?: string | null }

export default fp(async function items (fastify) {
  const root = fastify.mountPath
  const base = (request: FastifyRequest) => `${request.protocol}://${request.host}${root}`

  fastify.decorate('items', {
    event (request, event, full) {
      const uri = `${base(request)}/events/${event.id}`
      if (!full) return { id: event.id, uri }
      return {
        id: event.id,
        device: event.device,
        name: event.name,
        location: event.location,
        action: event.action,
        value: event.value,
        time: new Date(event.time).toISOString(),
        uri
      }
    },
    client (request, client, full) {
      const uri = `${base(request)}/clients/${client.id}`
      if (!full) return { id: client.id, uri }
      return { id: client.id, device: client.device, location: client.location, lastActive: new Date(client.lastActive).toISOString(), uri }
    },
    apikey (request, apikey, full) {
      const uri = `${base(request)}/apikeys/${apikey.id}`
      if (!full) return { id: apikey.id, uri }
      return {
        id: apikey.id,
        permission: apikey.permission,
        created: new Date(apikey.created).toISOString(),
        revoked: apikey.revoked === null ? null : new Date(apikey.revoked).toISOString(),
        uri
      }
    }
  } satisfies ItemPresenter)
}, { name: 'cred-items', dependencies: ['cred-config'] })
