import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { IdParams, badId, errors, listQuery, liveErrors, notFound, wantsFull, pageOf } from '../../schemas/common.js'
import { ClientFound, ClientList, ClientListQuery, ClientWithSubscriptions } from '../../schemas/clients.js'
import { EventList, EventStream, StreamHeaders, StreamQuery, eventListQuery } from '../../schemas/events.js'

const clients: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, items, live } = fastify
  const maxItems = fastify.config.maxPageSize

  const findClient = async (id: number) => {
    const client = await repos.clients.get(id)
    if (client === undefined) throw fastify.httpErrors.notFound('Client Not Found')
    return client
  }
  /**
   * The id of the client a route names: the caller's own (the common case) needs no query, and
   * is given back as it is, not in a promise.
   */
  const clientIdOf = (request: FastifyRequest<{ Params: { id: number } }>): number | Promise<number> => {
    const id = request.params.id
    return request.client?.id === id ? id : findClient(id).then((client) => client.id)
  }

  fastify.get('/', {
    schema: {
      summary: 'List the clients active within pingtimeout seconds, newest first',
      description: 'The devices; with `viewers=true`, instead the viewers: browsers signed in with `viewer: true` (the dashboard).',
      querystring: Type.Composite([listQuery(maxItems), ClientListQuery]),
      response: { 200: ClientList, 400: errors[400] }
    },
    config: { permission: 'read' }
  }, async function (request) {
    const { query } = request
    const { full } = query
    const since = Date.now() - fastify.config.pingtimeout * 1000
    const rows = await repos.clients.listActive(since, pageOf(query, maxItems), wantsFull(query.viewers) ? 'viewer' : 'device')
    return { status: 200, message: 'OK', clients: items.clients(request, rows, wantsFull(full)) }
  })

  fastify.get('/me', {
    schema: {
      summary: 'The calling client, full form',
      response: { 200: ClientFound }
    },
    config: { permission: 'read' }
  }, async function (request) {
    return { status: 200, message: 'OK', client: items.client(request, request.client!, true) }
  })

  fastify.get('/:id', {
    schema: {
      summary: 'One client, full form, with its subscriptions',
      params: IdParams,
      response: { 200: ClientWithSubscriptions, 400: badId, 404: notFound('Client Not Found') }
    },
    config: { permission: 'read' }
  }, async function (request) {
    const client = await findClient(request.params.id)
    const subscriptions = (await repos.clients.subscriptions(client.id))
      .map(({ eventName, location }) => ({ name: eventName, location }))
      .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    return { status: 200, message: 'OK', client: { ...items.client(request, client, true), subscriptions } }
  })

  fastify.get('/:id/events', {
    schema: {
      summary: 'Events posted by a client, newest first',
      description: 'With `wait`, an empty answer is held until that client posts an event (long polling); the ' +
        'wait ends with 401 when the session ends or its API key is revoked.',
      params: IdParams,
      querystring: eventListQuery(maxItems),
      response: { 200: EventList, 400: errors[400], ...liveErrors, 404: notFound('Client Not Found') }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    const clientId = await clientIdOf(request)
    const { query } = request
    const { full, wait } = query
    const matcher = { subscriptions: null, clientId }
    const rows = await live.poll(reply, matcher, wait, () => repos.events.listByClient(clientId, pageOf(query, maxItems)))
    return items.eventList(reply, items.events(request, rows, wantsFull(full)))
  })

  fastify.get('/:id/subscribedevents', {
    schema: {
      summary: 'Events matching a client\'s subscriptions, newest first',
      description: 'Poll with `?full=true&after=<highest id seen>` to get what is newer: at most `maxPageSize` ' +
        'events at a time, those right after the cursor (newest first within the page), so that polling again with ' +
        'the highest id received gets every event exactly once. Add `wait` to hold an empty answer until a matching ' +
        'event arrives (long polling); the wait ends with 401 when the session ends or its API key is revoked. ' +
        'Any session may read any client\'s subscribed events.',
      params: IdParams,
      querystring: eventListQuery(maxItems),
      response: { 200: EventList, 400: errors[400], ...liveErrors, 404: notFound('Client Not Found') }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    const clientId = await clientIdOf(request)
    const { query } = request
    const { full, wait } = query
    const matcher = wait === undefined ? null : live.matcherFor(await repos.clients.subscriptions(clientId))
    const read = () => repos.events.listSubscribed(clientId, pageOf(query, maxItems))
    const rows = matcher === null ? await read() : await live.poll(reply, matcher, wait, read)
    return items.eventList(reply, items.events(request, rows, wantsFull(full)))
  })

  fastify.get('/:id/subscribedevents/stream', {
    sse: { kind: 'manual' },
    schema: {
      summary: 'Stream the events matching a client\'s subscriptions (Server-Sent Events)',
      description: 'Any session may stream any client\'s subscribed events, as it may read them with ' +
        '`GET /clients/{id}/subscribedevents`. Reconnect with `Last-Event-ID: N` (EventSource does) or ' +
        '`?after=N` to first receive every matching event with id > N, in order, with no gap and no ' +
        'duplicate. Closed when the session ends or its API key is revoked.',
      params: IdParams,
      querystring: StreamQuery,
      headers: StreamHeaders,
      response: { 200: EventStream, 400: errors[400], ...liveErrors, 404: notFound('Client Not Found') }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    const client = await findClient(request.params.id)
    const matcher = live.matcherFor(await repos.clients.subscriptions(client.id))
    const after = request.headers['last-event-id'] ?? request.query.after ?? await repos.events.latestId()
    await live.stream(request, reply, {
      matcher,
      after,
      catchUp: (from, limit) => repos.events.listAfter(from, limit, client.id)
    })
  })
}

export default clients
