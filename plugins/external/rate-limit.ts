import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

// Counts failed /auth attempts per client IP (the auth plugin uses fastify.createRateLimit());
// no route is limited by default, so successful requests are never slowed.
export default fp(async function authRateLimit (fastify, opts: { config: CredConfig }) {
  await fastify.register(rateLimit, { global: false, max: opts.config.authRateLimit, timeWindow: 60_000 })
}, { name: 'cred-rate-limit' })
