import { fastifySSE } from '@fastify/sse'
import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

// Server-Sent Events for the /stream routes; heartbeat comments keep idle streams open through
// proxies. (The package's named export is the bare plugin: wrapped here so its route hook
// reaches cred's routes, and only cred's.)
export default fp(async function serverSentEvents (fastify, opts: { config: CredConfig }) {
  await fastify.register(fp(fastifySSE, { name: '@fastify/sse' }), { heartbeatInterval: opts.config.streamHeartbeat * 1000 })
}, { name: 'cred-sse' })
