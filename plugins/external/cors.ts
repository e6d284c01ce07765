import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

// Like the original by default: any origin may call with credentials, so a separately served
// web UI keeps working. `cors: [origins]` allows only those.
export default fp(async function crossOrigin (fastify, opts: { config: CredConfig }) {
  const { cors: allowed } = opts.config
  await fastify.register(cors, {
    origin: allowed === '*' ? true : allowed,
    credentials: true,
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    exposedHeaders: ['Retry-After'],
    // An OPTIONS request that is not a complete preflight (no Origin or no
    // Access-Control-Request-Method) would get a text/plain 400 "Invalid Preflight Request",
    // outside the {status, message} envelope; answer it like any preflight instead.
    strictPreflight: false
  })
}, { name: 'cred-cors' })
