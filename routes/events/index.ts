import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IdParams, badId, badRequest, errors, liveErrors, notFound, wantsFull, pageOf } from '../../schemas/common.js'
import {
  EventCreated, EventFound, EventList, EventStream, PostEventBody, PostEventHeaders, StreamHeaders, StreamQuery, eventListQuery
} from '../../schemas/events.js'

const events: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, items, live, metrics } = fastify
  const everyEvent = { subscriptions: null }
  const maxItems = fastify.config.maxPageSize

  fastify.get('/', {
    schema: {
      summary: 'List events, newest first',
      description: 'With `wait`, an empty answer is held until a new event arrives (long polling); the wait ' +
        'ends with 401 when the session ends or its API key is revoked.',
      querystring: eventListQuery(maxItems),
      response: { 200: EventList, 400: errors[400], ...liveErrors }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    const { query } = request
    const { full, wait } = query
    const rows = await live.poll(reply, everyEvent, wait, () => repos.events.list(pageOf(query, maxItems)))
    return items.eventList(reply, items.events(request, rows, wantsFull(full)))
  })

  fastify.get('/stream', {
    sse: { kind: 'manual' },
    schema: {
      summary: 'Stream every new event (Server-Sent Events)',
      description: 'Sends each event as it is posted. Reconnect with `Last-Event-ID: N` (EventSource does) ' +
        'or `?after=N` to first receive every event with id > N, in order, with no gap and no duplicate. ' +
        'Closed when the session ends or its API key is revoked.',
      querystring: StreamQuery,
      headers: StreamHeaders,
      response: { 200: EventStream, 400: errors[400], ...liveErrors }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    const after = request.headers['last-event-id'] ?? request.query.after ?? await repos.events.latestId()
    await live.stream(request, reply, {
      matcher: everyEvent,
      after,
      catchUp: (from, limit) => repos.events.listAfter(from, limit)
    })
  })

  fastify.post('/', {
    schema: {
      summary: 'Post an event as the calling client',
      description: 'Needs write permission. `value` may be a string, number or boolean and is stored as text. ' +
        'With an `Idempotency-Key` header a retry is safe: a repeat within 24 hours stores nothing and answers the first event again.',
      headers: PostEventHeaders,
      body: PostEventBody,
      response: { 201: EventCreated, 400: badRequest('body/event must have required property \'name\''), 413: errors[413], 415: errors[415] }
    },
    config: { permission: 'write' }
  }, async function (request, reply) {
    const client = request.client!
    const { name, location = null, action = null, value = null } = request.body.event
    const key = request.headers['idempotency-key']
    const posted = {
      clientId: client.id,
      device: client.device,
      name,
      location,
      action,
      value: value === null ? null : String(value)
    }
    // keyed by the API key, not the session: a device that signs in again and retries is the same device
    const event = await repos.events.create(posted, key === undefined ? undefined : { apikeyId: client.apikeyId, key })
    if (event.replayed === true) {
      // not a new event: nothing to deliver or count
      reply.header('idempotent-replayed', 'true')
      if (event.name !== posted.name || event.location !== posted.location || event.action !== posted.action || event.value !== posted.value) {
        request.log.warn({ event: event.id, idempotencyKey: key }, 'Idempotency-Key reused with a different event: answered with the event it stored first')
      }
    } else {
      metrics.eventPosted()
    }
    return reply.code(201).send({ status: 201, message: 'Created Event', event: items.event(request, event, false) })
  })

  fastify.get('/:id', {
    schema: {
      summary: 'One event, full form',
      params: IdParams,
      response: { 200: EventFound, 400: badId, 404: notFound('Event Not Found') }
    },
    config: { permission: 'read' }
  }, async function (request) {
    const event = await repos.events.get(request.params.id)
    if (event === undefined) throw fastify.httpErrors.notFound('Event Not Found')
    return { status: 200, message: 'OK', event: items.event(request, event, true) }
  })
}

export default events
