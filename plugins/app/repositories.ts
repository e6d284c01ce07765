import fp from 'fastify-plugin'
import { openDatabase, type Repositories } from '../../db/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** the data layer: apikeys, clients and events repositories */
    repos: Repositories
  }
}

export default fp(async function repositories (fastify, opts: { embedded?: boolean }) {
  // every repository call timed in one place (cred_db_query_duration_seconds), when metrics are on
  const repos = fastify.metrics.timed(await openDatabase(fastify.config.database))
  fastify.decorate('repos', repos)
  fastify.addHook('onClose', async () => {
    await repos.close()
  })
  fastify.log.info({ database: repos.name, location: repos.location }, `database ready: ${repos.name} at ${repos.location}`)
  for (const warning of repos.warnings ?? []) fastify.log.warn(warning)
  if (await repos.apikeys.count() === 0) {
    fastify.log.warn(opts.embedded === true
      ? 'no API keys exist yet: create the first one with createApiKey(config, \'admin\') from \'cred-server\', given the config you register cred with'
      : 'no API keys exist yet: create the first one with `npx cred-gen --admin` (same config as the server)')
  }
}, { name: 'cred-repositories', dependencies: ['cred-config', 'cred-metrics'] })
