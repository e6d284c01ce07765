import fp from 'fastify-plugin'
import Router, { type HTTPMethod } from 'find-my-way'

declare module 'fastify' {
  interface FastifyInstance {
    /** The methods cred answers on `url` (a path, with its query or not): none for an unknown path. */
    allowedMethods: (url: string) => string[]
  }
}

const METHODS: HTTPMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

/**
 * Which methods each of cred's paths answers, so that a known path asked with another method is
 * a 405 naming them (plugins/app/errors.ts) rather than a 404. Fastify's own router matches a
 * method and a path together and tells nothing else, so the routes are kept in a second
 * find-my-way router (Fastify's) as they are added. Catch-all paths (the dashboard's files) and
 * CORS preflights are left out: any path matches them.
 */
export default fp(async function allowedMethods (fastify) {
  const router = Router()
  fastify.addHook('onRoute', (route) => {
    if (route.url.includes('*')) return
    for (const method of [route.method].flat()) {
      if (method !== 'OPTIONS' && router.find(method as HTTPMethod, route.url) === null) router.on(method as HTTPMethod, route.url, () => {})
    }
  })
  fastify.decorate('allowedMethods', function (url: string) {
    const path = url.split('?', 1)[0]!
    return METHODS.filter((method) => router.find(method, path) !== null)
  })
}, { name: 'cred-allowed-methods' })
