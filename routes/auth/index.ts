import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errors, sessionSecurity } from '../../schemas/common.js'
import { AuthInput, AuthResponse } from '../../schemas/auth.js'
import type { ApiKeyRecord } from '../../db/index.js'

const auth: FastifyPluginAsyncTypebox = async function (fastify) {
  const { repos, config, metrics } = fastify
  // the original web UI posts its sign-in form here; no other route reads form bodies
  fastify.acceptFormBodies()
  const apikeyOf = new WeakMap<FastifyRequest, ApiKeyRecord>()
  // the session cookie is sent to every route of cred, and only to those
  const cookiePath = fastify.mountPath === '' ? '/' : fastify.mountPath

  // Failed attempts are counted per client IP (request.ip: the real client behind a proxy
  // with trustProxy); past authRateLimit a minute, that IP's failures are 429 until the window
  // ends. A right key is always admitted: looking it up is one indexed query, and a block on a
  // shared address (NAT, a proxy) must not lock its other devices out.
  const countFailure = fastify.createRateLimit()
  const blockedUntil = new Map<string, number>()
  function refuseIfBlocked (request: FastifyRequest, reply: FastifyReply) {
    const until = blockedUntil.get(request.ip)
    if (until === undefined) return
    const now = Date.now()
    if (until <= now) {
      blockedUntil.delete(request.ip)
      return
    }
    reply.header('retry-after', Math.ceil((until - now) / 1000))
    metrics.authAttempt('rate_limited')
    throw fastify.httpErrors.tooManyRequests('Too many failed authentication attempts: try again later')
  }

  /** A failed attempt: counted, then 429 if its address is blocked, else 401 Invalid API Key. */
  async function refuseKey (request: FastifyRequest, reply: FastifyReply): Promise<never> {
    refuseIfBlocked(request, reply)
    const limit = await countFailure(request)
    if (!limit.isAllowed && limit.isExceeded) {
      if (blockedUntil.size > 10_000) {
        const now = Date.now()
        for (const [ip, until] of blockedUntil) if (until <= now) blockedUntil.delete(ip)
      }
      blockedUntil.set(request.ip, Date.now() + limit.ttl)
      request.log.warn({ ip: request.ip }, 'authentication refused: too many invalid API keys from this address')
      refuseIfBlocked(request, reply)
    }
    request.log.info('authentication refused: invalid API key')
    metrics.authAttempt('invalid_key')
    throw fastify.httpErrors.unauthorized('Invalid API Key')
  }

  /** The API key is checked before any other field: a bad key is always 401 Invalid API Key (or 429). */
  async function requireApiKey (request: FastifyRequest, reply: FastifyReply) {
    const input = (request.method === 'GET' ? request.query : request.body) as { apikey?: unknown } | null
    const apikey = typeof input === 'object' && input !== null ? input.apikey : undefined
    const found = typeof apikey === 'string' && apikey !== '' ? await repos.apikeys.findByKey(apikey) : undefined
    if (found === undefined) return refuseKey(request, reply)
    apikeyOf.set(request, found)
  }

  /** GET /auth reads nested query fields in bracket notation, like the form-encoded POST body. */
  async function parseBracketQuery (request: FastifyRequest) {
    const search = request.url.indexOf('?')
    request.query = search === -1 ? {} : fastify.parseForm(request.url.slice(search + 1))
  }

  async function authenticate (request: FastifyRequest, reply: FastifyReply, input: AuthInput) {
    const apikey = apikeyOf.get(request)!
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
      subscriptions
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
      tags: ['auth'],
      summary: 'Authenticate with an API key (JSON or form-encoded body)',
      description,
      consumes: ['application/json', 'application/x-www-form-urlencoded'],
      body: AuthInput,
      response: {
        201: AuthResponse, 400: errors[400], 401: errors[401], 403: errors.crossOrigin, 413: errors[413], 415: errors[415], 429: errors[429]
      }
    },
    // a page of another site must not sign the visitor's browser in with a key of its choosing
    onRequest: fastify.refuseForeignPage,
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
      response: { 201: AuthResponse, 400: errors[400], 401: errors[401], 403: errors.crossOrigin, 429: errors[429] }
    },
    // a link on another site must not sign the visitor's browser in with the key in it
    onRequest: fastify.refuseForeignPage,
    preValidation: [parseBracketQuery, requireApiKey]
  }, async function (request, reply) {
    return authenticate(request, reply, request.query)
  })

  fastify.delete('/', {
    schema: {
      tags: ['auth'],
      security: sessionSecurity,
      summary: 'End the calling session',
      description: 'The session key is refused from now on, the sessionKey cookie is cleared, and the client ' +
        'leaves the active clients. Its event streams are closed and its waiting long polls answer 401, on ' +
        'every instance, before any event posted after this answer could reach them.',
      response: {
        204: { description: 'Session ended', type: 'null' },
        401: errors[401],
        403: errors.crossOrigin
      }
    },
    preValidation: fastify.authorize('read')
  }, async function (request, reply) {
    await repos.clients.end(request.client!.id, Date.now())
    request.log.info({ clientId: request.client!.id }, 'session ended')
    reply.header('set-cookie', fastify.serializeCookie('sessionKey', '', { path: cookiePath, expires: new Date(0), maxAge: 0, sameSite: 'lax' }))
    return reply.code(204).send()
  })
}

export default auth
