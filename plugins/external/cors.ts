import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

// No cross-origin access by default: the dashboard is served from cred's own origin and needs
// none. `cors: [origins]` lets pages of those origins call cred with the session cookie (the
// original web UI served elsewhere); `'*'`, any page at all, so only when asked for in so many words.
export default fp(async function crossOrigin (fastify, opts: { config: CredConfig }) {
  const { cors: allowed } = opts.config
  if (allowed === '*') {
    fastify.log.warn("cors: '*' lets a page of ANY origin call cred with the visitor's session cookie " +
      '(any website a signed-in user opens can read events and post them, and with an admin session manage API keys): ' +
      'list the origins that need it instead')
  }
  // Nothing listed: no CORS at all, and OPTIONS is a method like any other (405 where not answered).
  if (Array.isArray(allowed) && allowed.length === 0) return
  await fastify.register(cors, {
    // A request from no listed origin gets no CORS header at all (not even Allow-Credentials),
    // and its preflight is not answered as one.
    origin: (origin: string | undefined, answer: (error: Error | null, allow: boolean | string) => void) =>
      answer(null, origin !== undefined && (allowed === '*' || allowed.includes(origin)) ? origin : false),
    credentials: true,
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    // readable by a listed origin's page: when to retry, and whether a POST was a replay (Idempotency-Key)
    exposedHeaders: ['Retry-After', 'Idempotent-Replayed'],
    // An OPTIONS request that is not a complete preflight (no Origin or no
    // Access-Control-Request-Method) would get a text/plain 400 "Invalid Preflight Request",
    // outside the {status, message} envelope; answer it like any preflight instead.
    strictPreflight: false
  })
}, { name: 'cred-cors' })
