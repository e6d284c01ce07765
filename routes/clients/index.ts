import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IdParams, ListQuery, authErrors, errors, sessionSecurity, wantsFull } from '../../schemas/common.js'
import { ClientFound, ClientList } from '../../schemas/clients.js'
import { EventList } from '../../schemas/events.js'

const clients: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, items } = fastify

  const findClient = async (id: number) => {
    const client = await repos.clients.get(id)
    if (client === undefined) throw fastify.httpErrors.notFound('Client Not Found')
    return client
  }

  fastify.get('/', {
    schema: {
      tags: ['clients'],
      security: sessionSecurity,
      summary: 'List the clients active within pingtimeout seconds, newest first',
      querystring: ListQuery,
      response: { 200: ClientList, 400: errors[400], ...authErrors }
    },
    preValidation: fastify.authorize('read')
  }, async function (request) {
    const { full, ...filter } = request.query
    const since = Date.now() - fastify.config.pingtimeout * 1000
    const rows = await repos.clients.listActive(since, filter)
    return { status: 200, message: 'OK', clients: rows.map((row) => items.client(request, row, wantsFull(full))) }
  })

  fastify.get('/me', {
    schema: {
      tags: ['clients'],
      security: sessionSecurity,
      summary: 'The calling client, full form',
      response: { 200: ClientFound, ...authErrors }
    },
    preValidation: fastify.authorize('read')
  }, async function (request) {
    return { status: 200, message: 'OK', client: items.client(request, request.client!, true) }
  })

  fastify.get('/:id', {
    schema: {
      tags: ['clients'],
      security: sessionSecurity,
      summary: 'One client, full form',
      params: IdParams,
      response: { 200: ClientFound, 400: errors[400], ...authErrors, 404: errors[404] }
    },
    preValidation: fastify.authorize('read')
  }, async function (request) {
    const client = await findClient(request.params.id)
    return { status: 200, message: 'OK', client: items.client(request, client, true) }
  })

  fastify.get('/:id/events', {
    schema: {
      tags: ['clients'],
      security: sessionSecurity,
      summary: 'Events posted by a client, newest first',
      params: IdParams,
      querystring: ListQuery,
      response: { 200: EventList, 400: errors[400], ...authErrors, 404: errors[404] }
    },
    preValidation: fastify.authorize('read')
  }, async function (request) {
    const client = await findClient(request.params.id)
    const { full, ...filter } = request.query
    const rows = await repos.events.listByClient(client.id, filter)
    return { status: 200, message: 'OK', events: rows.map((row) => items.event(request, row, wantsFull(full))) }
  })

  fastify.get('/:id/subscribedevents', {
    schema: {
      tags: ['clients'],
      security: sessionSecurity,
      summary: 'Events matching a client\'s subscriptions, newest first',
      description: 'Poll with `?full=true&after=<highest id seen>` to get everything newer.',
      params: IdParams,
      querystring: ListQuery,
      response: { 200: EventList, 400: errors[400], ...authErrors, 404: errors[404] }
    },
    preValidation: fastify.authorize('read')
  }, async function (request) {
    const client = await findClient(request.params.id)
    const { full, ...filter } = request.query
    const rows = await repos.events.listSubscribed(client.id, filter)
    return { status: 200, message: 'OK', events: rows.map((row) => items.event(request, row, wantsFull(full))) }
  })
}

export default clients
