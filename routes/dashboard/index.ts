import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import helmet from '@fastify/helmet'
import fastifyStatic from '@fastify/static'
import type { FastifyPluginAsync } from 'fastify'

// The page is the root URL (under approot or the host's prefix), not /dashboard: that folder
// serves its scripts and styles. The page refers to them, and to the API, by relative URLs.
export const prefixOverride = ''

/**
 * The front end as `npm run build` leaves it (dashboard/ compiled and copied to dist/dashboard):
 * beside the compiled routes when running from dist/, under dist/ when the .ts sources run (tests).
 */
const built = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/dashboard/' : '../../dashboard/', import.meta.url))

/** The live dashboard (the `dashboard` setting): a sign-in page, then clients, events, a chart and API keys. */
const dashboard: FastifyPluginAsync = async function (fastify) {
  if (!fastify.config.dashboard) return
  const indexFile = join(built, 'index.html')
  if (!existsSync(indexFile)) {
    throw new Error(`The dashboard is not built (${indexFile} is missing): run \`npm run build\`, or set dashboard: False`)
  }
  // the page tells its scripts the largest list they may ask for
  const page = Buffer.from(readFileSync(indexFile, 'utf8')
    .replace(/(<meta name="cred-max-page-size" content=")\d+(")/, `$1${fastify.config.maxPageSize}$2`))

  // Security headers on these pages only (this plugin is its own context): the JSON API does not need them.
  await fastify.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        // the page's own files only: no CDN, no external fonts, works offline
        'default-src': ["'self'"],
        'style-src': ["'self'"],
        'font-src': ["'self'"],
        // served over plain HTTP too: do not make browsers ask for https
        'upgrade-insecure-requests': null
      }
    }
  })
  // one route per built file (wildcard: false), none documented: unknown names get cred's 404
  await fastify.register(fastifyStatic, { root: join(built, 'assets'), prefix: '/dashboard/', wildcard: false, index: false })

  fastify.get('/', { schema: { hide: true } }, async function (request, reply) {
    // `/cred` and `/cred/` both come here; relative URLs resolve right only from `/cred/`
    const search = request.url.indexOf('?')
    const path = search === -1 ? request.url : request.url.slice(0, search)
    if (!path.endsWith('/')) {
      const location = `${path}/${search === -1 ? '' : request.url.slice(search)}`
      return reply.code(302).header('location', location).send({ status: 302, message: `Found: the dashboard is at ${path}/` })
    }
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(page)
  })
}

export default dashboard
