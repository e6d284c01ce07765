import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import AutoLoad from '@fastify/autoload'
import type { FastifyPluginAsync } from 'fastify'
import { resolveConfig } from './config/resolve.js'
import { openDatabase } from './db/index.js'
import type { Permission } from './schemas/apikeys.js'
import type { CredConfig, SettingsInput } from './schemas/config.js'

export { ConfigError, resolveConfig } from './config/resolve.js'
export { loadConfig } from './config/load.js'
export { clientErrorHandler, errorHandler, frameworkErrors, nodeAnswersInEnvelope, notFoundHandler } from './plugins/app/errors.js'
export { serverLogging } from './config/logging.js'
export type { CredConfig, SettingsInput } from './schemas/config.js'
export type { Permission } from './schemas/apikeys.js'

export interface CredOptions {
  /**
   * Settings, as in credrc (nested layout): anything left out takes its default, except
   * `metrics` and `dashboard`, which are off here unless given (a host app decides whether it
   * exposes /metrics, and whether a web page is served at its prefix). An already resolved
   * config (from `loadConfig`, as cred-server passes it) is used as it is: there both have
   * credrc's default, on.
   */
  config?: SettingsInput | CredConfig
}

const here = dirname(fileURLToPath(import.meta.url))

function isResolved (config: CredOptions['config']): config is CredConfig {
  return config?.database !== undefined && Object.hasOwn(config.database, 'kind')
}

/** Settings that are off when cred is embedded, unless the host names them. */
const offWhenEmbedded = ['metrics', 'dashboard'] as const

/** Settings given to the plugin, with the embedded defaults (off) of those it does not name. */
function embedded (config: SettingsInput | undefined): SettingsInput {
  // anything but a mapping is read as no settings, as resolveConfig does
  const given = typeof config === 'object' && config !== null && !Array.isArray(config) ? config : {}
  const defaults = Object.fromEntries(offWhenEmbedded.filter((key) => !Object.hasOwn(given, key)).map((key) => [key, false]))
  return { ...defaults, ...given }
}

/**
 * The whole cred service as one Fastify plugin. The standalone server registers it with
 * `prefix: approot`; a host application registers it under any prefix it likes.
 * It is encapsulated: its error handler, parsers and decorators stay inside.
 */
const cred: FastifyPluginAsync<CredOptions> = async function cred (fastify, opts) {
  const standalone = isResolved(opts.config)
  const config = standalone ? opts.config : resolveConfig(embedded(opts.config), 'plugin options')
  // embedded: the first-key hint names createApiKey, not cred-gen (which reads a credrc, not the host's settings)
  const options = { config, embedded: !standalone }
  await fastify.register(AutoLoad, { dir: join(here, 'plugins', 'external'), options })
  await fastify.register(AutoLoad, { dir: join(here, 'plugins', 'app'), options })
  // a resource folder's autohooks.ts applies to its routes, and routes/autohooks.ts to every folder's
  await fastify.register(AutoLoad, { dir: join(here, 'routes'), autoHooks: true, cascadeHooks: true, options })
}

export default cred

/**
 * Creates an API key in the database `config` names (the settings you register cred with, or
 * a config from `loadConfig`), and returns it: the only copy of its secret. For an app that
 * embeds cred, this is the way to its first admin key, as `cred-gen --admin` is for cred-server.
 */
export async function createApiKey (config: SettingsInput | CredConfig, permission: Permission): Promise<{ id: number, apikey: string, permission: Permission }> {
  const { database } = isResolved(config) ? config : resolveConfig(config, 'createApiKey')
  const repos = await openDatabase(database)
  try {
    const created = await repos.apikeys.create(permission)
    return { id: created.id, apikey: created.apikey, permission: created.permission }
  } finally {
    await repos.close()
  }
}
