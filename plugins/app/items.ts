import fastJson from 'fast-json-stringify'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ApiKeyRecord, ClientRecord, EventRecord } from '../../db/index.js'
import { EventItem, EventList } from '../../schemas/events.js'

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
  /**
   * The 200 answer with `events` (for the handler to return), serialized as its route's EventList
   * schema would, with each full-form event's JSON made once per record, not once per answer.
   */
  eventList: (reply: FastifyReply, events: EventItemOut[]) => EventListOut
  /** an event's full form as JSON, exactly as a stream sends it as its data, its `uri` at `origin` (scheme://host[:port]) */
  eventJson: (origin: string, event: EventRecord) => string
  client: (request: FastifyRequest, client: ClientRecord, full: boolean) => ClientItemOut
  clients: (request: FastifyRequest, clients: ClientRecord[], full: boolean) => ClientItemOut[]
  apikey: (request: FastifyRequest, apikey: ApiKeyRecord, full: boolean) => ApiKeyItemOut
}

interface EventItemOut {
  id: number,
  uri: string,
  device?: string | null,
  name?: string,
  location?: string | null,
  action?: string | null,
  value?: string | null,
  time?: string
}
interface EventListOut { status: number, message: string, events: EventItemOut[] }
interface ClientItemOut { id: number, uri: string, device?: string | null, location?: string | null, lastActive?: string }
interface ApiKeyItemOut { id: number, uri: string, permission?: ApiKeyRecord['permission'], created?: string, revoked?: string | null }

/** One event item's JSON, by the EventItem schema (as the routes' schemas serialize it). */
const eventJson = fastJson(EventItem)

/**
 * The start of an event list answer, `{"status":200,"message":"OK","events":[`, by the EventList
 * schema: it puts `events` last, so an empty list ends in `[]}` and the items go before that `]}`.
 */
const listHead = (() => {
  const empty = fastJson(EventList)({ status: 200, message: 'OK', events: [] })
  if (!empty.endsWith('[]}')) throw new Error(`an event list does not end with its events: ${empty}`)
  return Buffer.from(empty.slice(0, -2))
})()
const comma = Buffer.from(',')
const listEnd = Buffer.from(']}')
/** the answer of a poll with nothing new, the most common of all: the same bytes every time */
const emptyList = Buffer.concat([listHead, listEnd])

/** An event list answer's JSON, as the EventList schema would serialize it, from its items' JSON. */
function eventListJson (events: EventItemOut[], itemJson: (item: EventItemOut) => Buffer): Buffer {
  if (events.length === 0) return emptyList
  const parts = [listHead]
  events.forEach((item, i) => {
    if (i > 0) parts.push(comma)
    parts.push(itemJson(item))
  })
  parts.push(listEnd)
  return Buffer.concat(parts)
}

export default fp(async function items (fastify) {
  const root = fastify.mountPath
  const base = (request: FastifyRequest) => `${request.protocol}://${request.host}${root}`

  // The full form of an event, kept with the record it was made from: the newest events are the
  // same records from one request to the next (db/recent-events.ts), and a live event goes to
  // every stream, so each is formatted once per base URL rather than once per answer. Its JSON
  // is kept with it (UTF-8), so that a list answer is mostly a copy of those bytes.
  const fullEvents = new WeakMap<EventRecord, { base: string, item: EventItemOut }>()
  const fullJson = new WeakMap<EventItemOut, Buffer>()
  const itemJson = (item: EventItemOut) => fullJson.get(item) ?? Buffer.from(eventJson(item))
  // Fastify sends a Buffer from a reply serializer as it is (its type only says string)
  const serializeEventList = ((list: EventListOut) => eventListJson(list.events, itemJson)) as unknown as (list: EventListOut) => string
  function event (baseUrl: string, record: EventRecord, full: boolean): EventItemOut {
    if (!full) return { id: record.id, uri: `${baseUrl}/events/${record.id}` }
    const known = fullEvents.get(record)
    if (known !== undefined && known.base === baseUrl) return known.item
    const item = {
      id: record.id,
      uri: `${baseUrl}/events/${record.id}`,
      device: record.device,
      name: record.name,
      location: record.location,
      action: record.action,
      value: record.value,
      time: new Date(record.time).toISOString()
    }
    fullEvents.set(record, { base: baseUrl, item })
    fullJson.set(item, Buffer.from(eventJson(item)))
    return item
  }
  function client (baseUrl: string, record: ClientRecord, full: boolean): ClientItemOut {
    const uri = `${baseUrl}/clients/${record.id}`
    if (!full) return { id: record.id, uri }
    return { id: record.id, uri, device: record.device, location: record.location, lastActive: new Date(record.lastActive).toISOString() }
  }

  fastify.decorate('items', {
    event: (request, record, full) => event(base(request), record, full),
    events (request, records, full) {
      if (records.length === 0) return []
      const baseUrl = base(request)
      return records.map((record) => event(baseUrl, record, full))
    },
    eventList (reply, events) {
      reply.type('application/json; charset=utf-8').serializer(serializeEventList)
      return { status: 200, message: 'OK', events }
    },
    // JSON.stringify, as live.ts writes a stream's data (the schema's serializer orders the keys otherwise)
    eventJson: (origin, record) => JSON.stringify(event(`${origin}${root}`, record, true)),
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
        uri,
        permission: apikey.permission,
        created: new Date(apikey.created).toISOString(),
        revoked: apikey.revoked === null ? null : new Date(apikey.revoked).toISOString()
      }
    }
  } satisfies ItemPresenter)
}, { name: 'cred-items', dependencies: ['cred-config'] })
