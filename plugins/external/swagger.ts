import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import helmet from '@fastify/helmet'
import fp from 'fastify-plugin'

/** OpenAPI 3.1 document at /documentation/json, generated from the route schemas; Swagger UI at /documentation. */
export default fp(async function openApi (fastify) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'cred',
        description: 'Connected Reactive Electronic Devices: devices post events and receive the events they subscribed to. ' +
          'Authenticate with POST /auth, then send the session key as a Bearer token, the sessionKey cookie, or a sessionKey JSON field.',
        version: '0.1.0'
      },
      tags: [
        { name: 'auth', description: 'Sessions from API keys' },
        { name: 'events', description: 'Posting and reading events' },
        { name: 'clients', description: 'Connected clients and their events' },
        { name: 'apikeys', description: 'API keys (admin)' },
        { name: 'health', description: 'Liveness and readiness, for load balancers' },
        { name: 'metrics', description: 'Prometheus metrics, for monitoring' }
      ],
      components: {
        securitySchemes: {
          bearerSession: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <sessionKey>' },
          cookieSession: { type: 'apiKey', in: 'cookie', name: 'sessionKey', description: 'the cookie set by /auth' },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <metricsToken>, for GET /metrics when that setting is set' }
        }
      }
    },
    // '/events/' and '/events' are the same route: document it without the trailing slash
    transform: ({ schema, url }) => ({ schema, url: url.length > 1 ? url.replace(/\/$/, '') : url }),
    refResolver: {
      // shared schemas are named after their $id in the document's components
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  })
  // The docs pages get the security headers of @fastify/helmet; the JSON API does not need them.
  // (A child context, so helmet's hooks cover only Swagger UI's routes.)
  await fastify.register(async function documentationPages (docs) {
    await docs.register(helmet, {
      contentSecurityPolicy: {
        directives: {
          // Swagger UI's own files only: no CDN, works offline
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'", "'unsafe-inline'"],
          'img-src': ["'self'", 'data:'],
          // served over plain HTTP too: do not make browsers ask for https
          'upgrade-insecure-requests': null
        }
      }
    })
    await docs.register(swaggerUi, { routePrefix: '/documentation' })
  })
}, { name: 'cred-swagger' })
