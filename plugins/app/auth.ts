import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { ApiKeyRecord, SessionRecord } from '../../db/index.js'
import type { Permission } from '../../schemas/apikeys.js'
import { authErrors, sessionSecurity } from '../../schemas/common.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route needs a session whose API key has this permission, or a higher one. The auth
     * plugin checks it and sets `request.client`; the OpenAPI document names the session
     * schemes and the 401 and 403 answers.
     */
    permission?: Permission
    /**
     * The route signs in with an API key (/auth): the auth plugin checks the key before any
     * other field and sets `request.apikey`, and refuses a request from a page of another origin.
     */
    apikey?: boolean
  }
  interface FastifyInstance {
    /** the token of the request's `Authorization: Bearer <token>` header */
    bearerToken: (request: FastifyRequest) => string | undefined
  }
  interface FastifyRequest {
    /** the calling client, on a route with a `permission` */
    client: SessionRecord | null
    /** the API key signing in, on a route with `apikey` */
    apikey: ApiKeyRecord | null
  }
}

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

const rank: Record<Permission, number> = { read: 1, write: 2, admin: 3 }

/** A client's "last active" time is written at most this often, so reads stay reads. */
export const TOUCH_INTERVAL_MS = 1000

/** Addresses blocked by the failed-auth limit are swept out of memory once there are more than this. */
const MAX_BLOCKED = 10_000

const bearer = /^Bearer\s+(\S+)\s*$/i

function bearerToken (request: FastifyRequest): string | undefined {
  return bearer.exec(request.headers.authorization ?? '')?.[1]
}

function cookieKey (request: FastifyRequest): string | undefined {
  const cookies = request.headers.cookie
  const cookie = cookies === undefined ? undefined : request.server.parseCookie(cookies).sessionKey
  return cookie === '' ? undefined : cookie
}

function bodyKey (request: FastifyRequest): string | undefined {
  const body = request.body
  return typeof body === 'object' && body !== null && 'sessionKey' in body && typeof body.sessionKey === 'string' ? body.sessionKey : undefined
}

/** Methods a page of another site could use to make a change with the visitor's cookie. */
const changesState = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** The origin a browser names when a page of cred's own sends the request: protocol and Host (X-Forwarded-* with trustProxy). */
function ownOrigin (request: FastifyRequest): string | undefined {
  try {
    return new URL(`${request.protocol}://${request.host}`).origin
  } catch {
    return undefined
  }
}

/** A route's own hooks of one kind (none, one or a list), followed by `hook`. */
function followedBy<T> (hooks: T | T[] | undefined, hook: T): T[] {
  return hooks === undefined ? [hook] : [...(Array.isArray(hooks) ? hooks : [hooks]), hook]
}

/**
 * Who may call what. A route states what it needs in its `config` (`permission`, or `apikey`
 * for /auth) and this plugin adds the one check that enforces it, and documents it.
 */
export default fp(async function auth (fastify) {
  fastify.decorateRequest('client', null)
  fastify.decorateRequest('apikey', null)
  fastify.decorate('bearerToken', bearerToken)
  const { config, repos, metrics } = fastify
  const { cors } = config

  /**
   * Whether a browser sent `request` from a page whose origin is neither cred's own nor listed
   * in `cors` (with `'*'`, every origin is): its `Origin`, or without one (a navigation, an image)
   * `Sec-Fetch-Site`, where `same-site` is a page of another port or subdomain of the same host.
   * Devices, curl and scripts send neither, and are never refused.
   */
  function fromForeignPage (request: FastifyRequest): boolean {
    if (cors === '*') return false
    const origin = request.headers.origin
    if (origin === undefined) {
      const site = request.headers['sec-fetch-site']
      return site === 'cross-site' || site === 'same-site'
    }
    return origin !== ownOrigin(request) && !cors.includes(origin)
  }

  function foreignPageRefused (request: FastifyRequest): Error {
    request.log.info({ origin: request.headers.origin, secFetchSite: request.headers['sec-fetch-site'], serverOrigin: ownOrigin(request) },
      'cross-origin request refused')
    return fastify.httpErrors.forbidden('Cross-origin request refused: the page\'s origin is neither this server\'s nor listed in the cors setting')
  }

  // --- sessions: routes with a `permission` ---

  // sessionTimeout: a session unused for longer is refused (0 = sessions never expire)
  const idleLimit = config.sessionTimeout * 1000
  const unused = (session: SessionRecord, now: number) => idleLimit > 0 && now - session.lastActive > idleLimit

  /** The preValidation hook of the routes that need `permission`. */
  function sessionGuard (permission: Permission): Hook {
    /** Admits the session's client to the route at `now`: undefined, or the 401 or 403 to answer. */
    function admit (request: FastifyRequest, session: SessionRecord | undefined, now: number): Error | undefined {
      if (session === undefined || unused(session, now)) return fastify.httpErrors.unauthorized('Not Authenticated')
      if (rank[session.permission] < rank[permission]) return fastify.httpErrors.forbidden('Insufficient Permissions')
      request.client = session
      return undefined
    }
    /** The session from the database (or the session cache), its "last active" time written if due. */
    async function lookUp (request: FastifyRequest, key: string): Promise<void> {
      const session = await repos.clients.findBySession(key)
      const now = Date.now()
      if (session !== undefined && !unused(session, now) && now - session.lastActive >= TOUCH_INTERVAL_MS) {
        await repos.clients.touch(session.id, now)
        session.lastActive = now
      }
      const refused = admit(request, session, now)
      if (refused !== undefined) throw refused
    }
    // preValidation: the body is parsed (a JSON sessionKey can be read) but not yet validated,
    // so a caller without a session learns that first, before any field errors.
    // Callback style: a session used in the last second with no "last active" write due (most
    // requests of a device that polls) is admitted without a promise or a turn of the
    // microtask queue.
    return function requireSession (request, _reply, done) {
      // the session key is taken from (in order) the Authorization header, the cookie, or a JSON body field
      let key = bearerToken(request)
      if (key === undefined) {
        key = cookieKey(request)
        // the cookie is the one credential a browser adds by itself, to a page of any site's request
        if (key !== undefined && changesState.has(request.method) && fromForeignPage(request)) return done(foreignPageRefused(request))
        key ??= bodyKey(request)
      }
      if (key === undefined) return done(fastify.httpErrors.unauthorized('Not Authenticated'))
      const cached = repos.clients.cachedSession(key)
      const now = Date.now()
      if (cached !== undefined && now - cached.lastActive < TOUCH_INTERVAL_MS) return done(admit(request, cached, now))
      lookUp(request, key).then(() => done(), done)
    }
  }
  const sessionGuards: Record<Permission, Hook> = { read: sessionGuard('read'), write: sessionGuard('write'), admin: sessionGuard('admin') }

  // --- API keys: routes with `apikey` (/auth) ---

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
      if (blockedUntil.size > MAX_BLOCKED) {
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

  /** preValidation: the API key is checked before any other field, so a bad key is always 401 Invalid API Key (or 429). */
  async function requireApiKey (request: FastifyRequest, reply: FastifyReply) {
    const input = (request.method === 'GET' ? request.query : request.body) as { apikey?: unknown } | null
    const apikey = typeof input === 'object' && input !== null ? input.apikey : undefined
    const found = typeof apikey === 'string' && apikey !== '' ? await repos.apikeys.findByKey(apikey) : undefined
    if (found === undefined) return refuseKey(request, reply)
    request.apikey = found
  }

  /** onRequest of /auth: a page of another site must not sign the visitor's browser in with a key of its choosing. */
  function refuseForeignPage (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(fromForeignPage(request) ? foreignPageRefused(request) : undefined)
  }

  // Each route's needs become its hooks once, when it is added: a route without any pays nothing.
  fastify.addHook('onRoute', (route) => {
    const { permission, apikey } = route.config ?? {}
    if (permission !== undefined) {
      route.preValidation = followedBy(route.preValidation, sessionGuards[permission])
      // a route's own 401 or 403 (a long poll's, /auth's) is worded for it, and stays
      const response = route.schema?.response as Record<string, unknown> | undefined
      route.schema = { ...route.schema, security: sessionSecurity, response: { ...authErrors, ...response } }
    }
    if (apikey === true) {
      route.onRequest = followedBy(route.onRequest, refuseForeignPage)
      route.preValidation = followedBy(route.preValidation, requireApiKey)
    }
  })
}, { name: 'cred-auth', dependencies: ['cred-config', 'cred-repositories', 'cred-metrics', 'cred-cookie', 'cred-rate-limit'] })
