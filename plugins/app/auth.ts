import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Permission } from '../../schemas/apikeys.js'
import type { SessionRecord } from '../../db/index.js'

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A preValidation hook that requires a session whose key has `permission`. A POST, PUT,
     * PATCH or DELETE whose session comes from the cookie is refused (403) when a browser sent
     * it from a page of a foreign origin (see `fromForeignPage`).
     */
    authorize: (permission: Permission) => Hook
    /** A hook that refuses (403) a request a browser sent from a page of a foreign origin: /auth, which sets the cookie. */
    refuseForeignPage: Hook
  }
  interface FastifyRequest {
    /** the calling client, set by `authorize` */
    client: SessionRecord | null
  }
}

const rank: Record<Permission, number> = { read: 1, write: 2, admin: 3 }

/** A client's "last active" time is written at most this often, so reads stay reads. */
export const TOUCH_INTERVAL_MS = 1000

const bearer = /^Bearer\s+(\S+)\s*$/i

// The session key is taken from (in order) the Authorization header, the cookie, or a JSON body field.
function bearerKey (request: FastifyRequest): string | undefined {
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

export default fp(async function auth (fastify) {
  fastify.decorateRequest('client', null)
  const { cors } = fastify.config

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

  fastify.decorate('refuseForeignPage', function refuseForeignPage (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    done(fromForeignPage(request) ? foreignPageRefused(request) : undefined)
  })

  // sessionTimeout: a session unused for longer is refused (0 = sessions never expire)
  const idleLimit = fastify.config.sessionTimeout * 1000

  fastify.decorate('authorize', function authorize (permission: Permission) {
    const unused = (session: SessionRecord, now: number) => idleLimit > 0 && now - session.lastActive > idleLimit
    /** Admits the session's client to the route at `now`: undefined, or the 401 or 403 to answer. */
    function admit (request: FastifyRequest, session: SessionRecord | undefined, now: number): Error | undefined {
      if (session === undefined || unused(session, now)) return fastify.httpErrors.unauthorized('Not Authenticated')
      if (rank[session.permission] < rank[permission]) return fastify.httpErrors.forbidden('Insufficient Permissions')
      request.client = session
      return undefined
    }
    /** The session from the database (or the session cache), its "last active" time written if due. */
    async function lookUp (request: FastifyRequest, key: string): Promise<void> {
      const session = await fastify.repos.clients.findBySession(key)
      const now = Date.now()
      if (session !== undefined && !unused(session, now) && now - session.lastActive >= TOUCH_INTERVAL_MS) {
        await fastify.repos.clients.touch(session.id, now)
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
    return function requireSession (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
      let key = bearerKey(request)
      if (key === undefined) {
        key = cookieKey(request)
        // the cookie is the one credential a browser adds by itself, to a page of any site's request
        if (key !== undefined && changesState.has(request.method) && fromForeignPage(request)) return done(foreignPageRefused(request))
        key ??= bodyKey(request)
      }
      if (key === undefined) return done(fastify.httpErrors.unauthorized('Not Authenticated'))
      const cached = fastify.repos.clients.cachedSession(key)
      const now = Date.now()
      if (cached !== undefined && now - cached.lastActive < TOUCH_INTERVAL_MS) return done(admit(request, cached, now))
      lookUp(request, key).then(() => done(), done)
    }
  })
}, { name: 'cred-auth', dependencies: ['cred-config', 'cred-repositories', 'cred-cookie'] })
