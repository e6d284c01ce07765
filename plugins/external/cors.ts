import cors, { type FastifyCorsOptions } from '@fastify/cors'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { CredConfig } from '../../schemas/config.js'

type OnRequest = (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

/**
 * @fastify/cors works out its headers in one onRequest hook, for every request: about 2 us
 * each (it rebuilds its options per request) plus three headers to send. A request without an
 * Origin header is not a cross-origin one (devices send none), so its hook runs only for
 * requests with one, and for OPTIONS (preflights); the others only get `Vary: Origin`, as it
 * would give them: the answer depends on Origin, which caches must know.
 */
function originOnly (hook: OnRequest): OnRequest {
  return function (request, reply, done) {
    if (request.headers.origin !== undefined || request.raw.method === 'OPTIONS') {
      hook.call(this, request, reply, done)
      return
    }
    reply.header('vary', 'Origin')
    done()
  }
}

/** @fastify/cors, registered on `fastify` with its onRequest hook wrapped in `originOnly`. */
async function registerCors (fastify: FastifyInstance, options: FastifyCorsOptions): Promise<void> {
  let wrapped = 0
  const facade = Object.create(fastify, {
    addHook: {
      value (name: string, hook: OnRequest) {
        if (name !== 'onRequest') throw new Error(`@fastify/cors added a ${name} hook, where cred expects one onRequest hook`)
        wrapped++
        return fastify.addHook('onRequest', originOnly(hook))
      }
    }
  }) as FastifyInstance
  await new Promise<void>((resolve, reject) => {
    cors(facade, options, (err?: Error) => { if (err === undefined || err === null) resolve(); else reject(err) })
  })
  if (wrapped !== 1) throw new Error(`@fastify/cors added ${wrapped} onRequest hooks, where cred expects one`)
}

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
  await registerCors(fastify, {
    origin: allowed === '*' ? true : allowed,
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
