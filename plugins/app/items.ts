import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { ApiKeyRecord, ClientRecord, EventRecord } from '../../db/index.js'
import { isoTime } from '../../lib/iso-time.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** turns records into API items (short or full form) with absolute `uri`s */
    items: ItemPresenter
  }
}

export interface ItemPresenter {
  event: (request: FastifyRequest, event: EventRecord, full: boolean) => EventItemOut
  /** a list of events: the same as `event` for each, with the request's base URL worked out once */
  events: (request: FastifyRequest, events: EventRecord[], full: boolean) => EventItemOut[]
  client: (request: FastifyRequest, client: ClientRecord, full: boolean) => ClientItemOut
  clients: (request: FastifyRequest, clients: ClientRecord[], full: boolean) => ClientItemOut[]
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

  // The full form of an event, kept with the record it was made from: the newest events are the
  // same records from one request to the next (db/recent-events.ts), and a live event goes to
  // every stream, so each is formatted once per base URL rather than once per answer.
  const fullEvents = new WeakMap<EventRecord, { base: string, item: EventItemOut }>()
  function event (baseUrl: string, record: EventRecord, full: boolean): EventItemOut {
    if (!full) return { id: record.id, uri: `${baseUrl}/events/${record.id}` }
    const known = fullEvents.get(record)
    if (known !== undefined && known.base === baseUrl) return known.item
    const item = {
      id: record.id,
      device: record.device,
      name: record.name,
      location: record.location,
      action: record.action,
      value: record.value,
      time: isoTime(record.time),
      uri: `${baseUrl}/events/${record.id}`
    }
    fullEvents.set(record, { base: baseUrl, item })
    return item
  }
  function client (baseUrl: string, record: ClientRecord, full: boolean): ClientItemOut {
    const uri = `${baseUrl}/clients/${record.id}`
    if (!full) return { id: record.id, uri }
    return { id: record.id, device: record.device, location: record.location, lastActive: isoTime(record.lastActive), uri }
  }

  fastify.decorate('items', {
    event: (request, record, full) => event(base(request), record, full),
    events (request, records, full) {
      const baseUrl = base(request)
      return records.map((record) => event(baseUrl, record, full))
    },
    client: (request, record, full) => client(base(request), record, full),
    clients (request, records, full) {
      const baseUrl = base(request)
      return records.map((record) => client(baseUrl, record, full))
    },
    apikey (request, apikey, full) {
      const uri = `${base(request)}/apikeys/${apikey.id}`
      if (!full) return { id: apikey.id, uri }
      return {
        id: apikey.id,
        permission: apikey.permission,
        created: isoTime(apikey.created),
        revoked: apikey.revoked === null ? null : isoTime(apikey.revoked),
        uri
      }
    }
  } satisfies ItemPresenter)
}, { name: 'cred-items', dependencies: ['cred-config'] })
