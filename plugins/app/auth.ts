import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { Permission } from '../../schemas/apikeys.js'
import type { SessionRecord } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** A preValidation hook that requires a session whose key has `permission`. */
    authorize: (permission: Permission) => (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
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

/** The session key, from (in order) the Authorization header, the cookie, or a JSON body field. */
function sessionKeyOf (request: FastifyRequest): string | undefined {
  const match = bearer.exec(request.headers.authorization ?? '')
  if (match?.[1] !== undefined) return match[1]
  const cookies = request.headers.cookie
  const cookie = cookies === undefined ? undefined : request.server.parseCookie(cookies).sessionKey
  if (cookie !== undefined && cookie !== '') return cookie
  const body = request.body
  if (typeof body === 'object' && body !== null && 'sessionKey' in body && typeof body.sessionKey === 'string') {
    return body.sessionKey
  }
  return undefined
}

export default fp(async function auth (fastify) {
  fastify.decorateRequest('client', null)
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
      const key = sessionKeyOf(request)
      if (key === undefined) return done(fastify.httpErrors.unauthorized('Not Authenticated'))
      const cached = fastify.repos.clients.cachedSession(key)
      const now = Date.now()
      if (cached !== undefined && now - cached.lastActive < TOUCH_INTERVAL_MS) return done(admit(request, cached, now))
      lookUp(request, key).then(() => done(), done)
    }
  })
}, { name: 'cred-auth', dependencies: ['cred-config', 'cred-repositories', 'cred-cookie'] })
