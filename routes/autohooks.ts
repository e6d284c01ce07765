import type { FastifyInstance } from 'fastify'

/**
 * Autoload applies this to each resource folder under routes/ (`autoHooks`, `cascadeHooks`):
 * a route is documented under its folder's name, routes/events/ under the `events` tag
 * (plugins/external/swagger.ts describes the tags).
 */
export default async function resourceTag (fastify: FastifyInstance) {
  const { mountPath } = fastify
  fastify.addHook('onRoute', (route) => {
    if (route.schema === undefined || route.schema.hide === true) return
    // the folder's prefix below where cred is mounted: '/events'
    const resource = route.prefix.slice(mountPath.length).split('/')[1]
    if (resource !== undefined && resource !== '') route.schema = { tags: [resource], ...route.schema }
  })
}
