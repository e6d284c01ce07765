import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import qs from 'qs'
import { errors } from '../../schemas/common.js'
import { AuthInput, AuthResponse } from '../../schemas/auth.js'
import type { ApiKeyRecord } from '../../db/index.js'

const auth: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, config } = fastify
  const apikeyOf = new WeakMap<FastifyRequest, ApiKeyRecord>()

  /** The API key is checked before any other field: a bad key is always 401 Invalid API Key. */
  async function requireApiKey (request: FastifyRequest) {
    const input = (request.method === 'GET' ? request.query : request.body) as { apikey?: unknown } | null
    const apikey = typeof input === 'object' && input !== null ? input.apikey : undefined
    const found = typeof apikey === 'string' && apikey !== '' ? await repos.apikeys.findByKey(apikey) : undefined
    if (found === undefined) {
      request.log.info('authentication refused: invalid API key')
      throw fastify.httpErrors.unauthorized('Invalid API Key')
    }
    apikeyOf.set(request, found)
  }

  /** GET /auth reads nested query fields in bracket notation, like the form-encoded POST body. */
  async function parseBracketQuery (request: FastifyRequest) {
    const search = request.url.indexOf('?')
    request.query = search === -1 ? {} : qs.parse(request.url.slice(search + 1), { depth: 3, parameterLimit: 1000 })
  }

  async function authenticate (request: FastifyRequest, reply: FastifyReply, input: AuthInput) {
    const apikey = apikeyOf.get(request)!
    const subscriptions = Object.entries(input.subscribe ?? {}).map(([eventName, filter]) => ({
      eventName,
      location: typeof filter === 'object' && typeof filter.location === 'string' && filter.location !== '' ? filter.location : null
    }))
    const { id, sessionKey } = await repos.clients.create({
      device: input.device ?? null,
      location: input.location ?? null,
      apikeyId: apikey.id,
      subscriptions
    })
    request.log.info({ clientId: id, apikeyId: apikey.id, subscriptions: subscriptions.length }, 'client authenticated')
    reply.setCookie('sessionKey', sessionKey, {
      path: fastify.mountPath === '' ? '/' : fastify.mountPath,
      httpOnly: true,
      sameSite: 'lax',
      secure: request.protocol === 'https'
    })
    const scheduled = config.scheduler
      ? { assigned: true, slot: ((id - 1) % config.schedulerPeriod) + 1, period: config.schedulerPeriod }
      : { assigned: false, slot: null, period: null }
    return reply.code(201).send({
      status: 201,
      message: 'Authenticated',
      id,
      sessionKey,
      scheduled,
      PINGTimeout: config.pingtimeout
    })
  }

  const description = 'Creates a new client with the given device, location and subscriptions, and a session for it. ' +
    'The session key is returned and also set as the HttpOnly `sessionKey` cookie. ' +
    'With `scheduler: True`, clients are spread over polling slots 1..schedulerPeriod.'

  fastify.post('/', {
    schema: {
      tags: ['auth'],
      summary: 'Authenticate with an API key (JSON or form-encoded body)',
      description,
      body: AuthInput,
      response: { 201: AuthResponse, 400: errors[400], 401: errors[401], 413: errors[413], 415: errors[415] }
    },
    preValidation: requireApiKey
  }, async function (request, reply) {
    return authenticate(request, reply, request.body)
  })

  fastify.get('/', {
    schema: {
      tags: ['auth'],
      summary: 'Authenticate with an API key in query parameters',
      description: description + ' Nested fields use bracket notation: `subscribe[Light][location]=Hall`.',
      querystring: AuthInput,
      response: { 201: AuthResponse, 400: errors[400], 401: errors[401] }
    },
    preValidation: [parseBracketQuery, requireApiKey]
  }, async function (request, reply) {
    return authenticate(request, reply, request.query)
  })
}

export default auth
