import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { badRequest, errors, invalidKey } from '../../schemas/common.js'
import { AuthInput, AuthResponse } from '../../schemas/auth.js'

const auth: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, config, metrics } = fastify
  // the original web UI posts its sign-in form here; no other route reads form bodies
  fastify.acceptFormBodies()
  // the session cookie is sent to every route of cred, and only to those
  const cookiePath = fastify.mountPath === '' ? '/' : fastify.mountPath

  /** GET /auth reads nested query fields in bracket notation, like the form-encoded POST body. */
  async function parseBracketQuery (request: FastifyRequest) {
    const search = request.url.indexOf('?')
    request.query = search === -1 ? {} : fastify.parseForm(request.url.slice(search + 1))
  }

  async function authenticate (request: FastifyRequest, reply: FastifyReply, input: AuthInput) {
    const apikey = request.apikey!
    if (Object.keys(input.subscribe ?? {}).length > config.maxSubscriptions) {
      throw fastify.httpErrors.badRequest(`subscribe: at most ${config.maxSubscriptions} event names per client`)
    }
    const subscriptions = Object.entries(input.subscribe ?? {}).map(([eventName, filter]) => ({
      eventName,
      location: typeof filter === 'object' && typeof filter.location === 'string' && filter.location !== '' ? filter.location : null
    }))
    const { id, sessionKey } = await repos.clients.create({
      device: input.device ?? null,
      location: input.location ?? null,
      apikeyId: apikey.id,
      subscriptions,
      kind: input.viewer === true ? 'viewer' : 'device'
    })
    request.log.info({ clientId: id, apikeyId: apikey.id, subscriptions: subscriptions.length }, 'client authenticated')
    metrics.authAttempt('success')
    reply.header('set-cookie', fastify.serializeCookie('sessionKey', sessionKey, {
      path: cookiePath,
      httpOnly: true,
      sameSite: 'lax',
      secure: request.protocol === 'https'
    }))
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
      summary: 'Authenticate with an API key (JSON or form-encoded body)',
      description,
      consumes: ['application/json', 'application/x-www-form-urlencoded'],
      body: AuthInput,
      response: {
        201: AuthResponse, 400: badRequest('body/device must NOT have more than 240 characters'), 401: invalidKey, 403: errors.crossOrigin, 413: errors[413], 415: errors[415], 429: errors[429]
      }
    },
    // the auth plugin checks the key (request.apikey) and refuses a page of another origin
    config: { apikey: true }
  }, async function (request, reply) {
    return authenticate(request, reply, request.body)
  })

  fastify.get('/', {
    schema: {
      summary: 'Authenticate with an API key in query parameters',
      description: description + ' Nested fields use bracket notation: `subscribe[Light][location]=Hall`.',
      querystring: AuthInput,
      response: { 201: AuthResponse, 400: badRequest('querystring/device must NOT have more than 240 characters'), 401: invalidKey, 403: errors.crossOrigin, 429: errors[429] }
    },
    // the auth plugin's key check comes after this, so it reads the key from the parsed query
    preValidation: parseBracketQuery,
    config: { apikey: true }
  }, async function (request, reply) {
    return authenticate(request, reply, request.query)
  })

  fastify.delete('/', {
    schema: {
      summary: 'End the calling session',
      description: 'The session key is refused from now on, the sessionKey cookie is cleared, and the client ' +
        'leaves the active clients. Its event streams are closed and its waiting long polls answer 401, on ' +
        'every instance, before any event posted after this answer could reach them.',
      // read is the least permission: only the cookie's cross-origin refusal is a 403 here
      response: { 204: { description: 'Session ended', type: 'null' }, 403: errors.crossOrigin }
    },
    config: { permission: 'read' }
  }, async function (request, reply) {
    await repos.clients.end(request.client!.id, Date.now())
    request.log.info({ clientId: request.client!.id }, 'session ended')
    reply.header('set-cookie', fastify.serializeCookie('sessionKey', '', { path: cookiePath, expires: new Date(0), maxAge: 0, sameSite: 'lax' }))
    return reply.code(204).send()
  })
}

export default auth
