import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { IdParams, badId, badRequest, errors, listQuery, notFound, wantsFull, pageOf } from '../../schemas/common.js'
import { ApiKeyCreated, ApiKeyFound, ApiKeyList, ApiKeyRevoked, NewApiKeyBody, PERMISSIONS, type Permission } from '../../schemas/apikeys.js'

const isPermission = (value: string): value is Permission => (PERMISSIONS as readonly string[]).includes(value)

const apikeys: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, items } = fastify
  const maxItems = fastify.config.maxPageSize

  fastify.get('/', {
    schema: {
      summary: 'List API keys, newest first (admin)',
      querystring: listQuery(maxItems),
      response: { 200: ApiKeyList, 400: errors[400] }
    },
    config: { permission: 'admin' }
  }, async function (request) {
    const { query } = request
    const { full } = query
    const rows = await repos.apikeys.list(pageOf(query, maxItems))
    return { status: 200, message: 'OK', apikeys: rows.map((row) => items.apikey(request, row, wantsFull(full))) }
  })

  fastify.post('/', {
    schema: {
      summary: 'Create an API key (admin)',
      description: 'The response is the only place the new key\'s secret ever appears.',
      body: NewApiKeyBody,
      response: { 201: ApiKeyCreated, 400: badRequest('Invalid Permissions'), 413: errors[413], 415: errors[415] }
    },
    config: { permission: 'admin' }
  }, async function (request, reply) {
    const { permission } = request.body
    if (!isPermission(permission)) throw fastify.httpErrors.badRequest('Invalid Permissions')
    const created = await repos.apikeys.create(permission)
    request.log.info({ apikeyId: created.id, permission }, 'API key created')
    return reply.code(201).send({
      status: 201,
      message: 'Created API Key',
      apikey: { ...items.apikey(request, created, true), apikey: created.apikey }
    })
  })

  fastify.get('/:id', {
    schema: {
      summary: 'One API key, full form (admin)',
      params: IdParams,
      response: { 200: ApiKeyFound, 400: badId, 404: notFound('API Key Not Found') }
    },
    config: { permission: 'admin' }
  }, async function (request) {
    const apikey = await repos.apikeys.get(request.params.id)
    if (apikey === undefined) throw fastify.httpErrors.notFound('API Key Not Found')
    return { status: 200, message: 'OK', apikey: items.apikey(request, apikey, true) }
  })

  fastify.delete('/:id', {
    schema: {
      summary: 'Revoke an API key (admin)',
      description: 'From now on /auth refuses the key and every session made with it gets 401, on every ' +
        'instance: their event streams are closed and their waiting long polls answer 401, before any event ' +
        'posted after this answer could reach them. Revoking a revoked key changes nothing. The last ' +
        'unrevoked admin key cannot be revoked.',
      params: IdParams,
      response: { 200: ApiKeyRevoked, 400: badId, 404: notFound('API Key Not Found') }
    },
    config: { permission: 'admin' }
  }, async function (request) {
    const result = await repos.apikeys.revoke(request.params.id, Date.now())
    if (result.outcome === 'not-found') throw fastify.httpErrors.notFound('API Key Not Found')
    if (result.outcome === 'last-admin') {
      throw fastify.httpErrors.badRequest('Cannot revoke the last admin key: create another admin key first')
    }
    request.log.info({ apikeyId: result.apikey.id }, 'API key revoked')
    return { status: 200, message: 'Revoked API Key', apikey: items.apikey(request, result.apikey, true) }
  })
}

export default apikeys
