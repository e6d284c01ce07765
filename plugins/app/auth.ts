import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Permission } from '../../schemas/apikeys.js'
import type { SessionRecord } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** A preValidation hook that requires a session whose key has `permission`. */
    authorize: (permission: Permission) => (request: FastifyRequest, reply: FastifyReply) => Promise<void>
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
    // preValidation: the body is parsed (a JSON sessionKey can be read) but not yet validated,
    // so a caller without a session learns that first, before any field errors.
    return async function requireSession (request: FastifyRequest) {
      const key = sessionKeyOf(request)
      const session = key === undefined ? undefined : await fastify.repos.clients.findBySession(key)
      if (session === undefined) throw fastify.httpErrors.unauthorized('Not Authenticated')
      const now = Date.now()
      if (idleLimit > 0 && now - session.lastActive > idleLimit) {
        throw fastify.httpErrors.unauthorized('Not Authenticated')
      }
      if (now - session.lastActive >= TOUCH_INTERVAL_MS) {
        await fastify.repos.clients.touch(session.id, now)
        session.lastActive = now
      }
      if (rank[session.permission] < rank[permission]) throw fastify.httpErrors.forbidden('Insufficient Permissions')
      request.client = session
    }
  })
}, { name: 'cred-auth', dependencies: ['cred-config', 'cred-repositories', 'cred-cookie'] })
