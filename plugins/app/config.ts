import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the validated settings this instance runs with */
    config: CredConfig
    /** where cred is mounted: '' at the root, else approot or the host app's prefix */
    mountPath: string
  }
}

export default fp(async function config (fastify, opts: { config: CredConfig }) {
  fastify.decorate('config', opts.config)
  fastify.decorate('mountPath', fastify.prefix)
  // Every route's body limit comes from the settings, also when embedded in a host app.
  fastify.addHook('onRoute', (route) => {
    route.bodyLimit ??= opts.config.bodyLimit
  })
}, { name: 'cred-config' })
