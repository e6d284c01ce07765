import { isIP } from 'node:net'
import type { TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import {
  Settings, DatabaseSettings, MqttSettings, defaultSettings,
  type CredConfig, type DatabaseKind, type SettingsInput
} from '../schemas/config.js'

/** A configuration problem, reported to the operator as one line. */
export class ConfigError extends Error {
  constructor (readonly source: string, readonly key: string | null, detail: string) {
    super(`Invalid configuration in ${source}${key === null ? '' : ` at key '${key}'`}: ${detail}`)
    this.name = 'ConfigError'
  }
}

const checkSettings = TypeCompiler.Compile(Settings)
const settingsKeys = new Set(Object.keys(Settings.properties))
const databaseKeys = new Set(Object.keys(DatabaseSettings.properties))
const mqttKeys = new Set(Object.keys(MqttSettings.properties))

/** SQLAlchemy-style names of the original ('postgresql+psycopg2', 'mysql+pymysql', 'sqlite3', ...) to our three kinds. */
export function databaseKind (type: string): DatabaseKind | null {
  const base = type.trim().toLowerCase().split('+')[0]
  if (base === 'sqlite' || base === 'sqlite3') return 'sqlite'
  if (base === 'postgresql' || base === 'postgres') return 'postgresql'
  if (base === 'mysql' || base === 'mariadb') return 'mysql'
  return null
}

function normaliseApproot (approot: string): string {
  const trimmed = approot.trim().replace(/\/{2,}/g, '/').replace(/\/+$/, '')
  if (trimmed === '') return ''
  return trimmed.startsWith('/') ? trimmed : `/${trimmed}`
}

function describeType (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`
}

/** The validation message; a union names its choices instead of TypeBox's "Expected union value". */
function expectation (error: { message: string, schema: TSchema }): string {
  const choices = (error.schema as { anyOf?: TSchema[] }).anyOf
  if (choices === undefined) return error.message
  if (choices.every((choice) => 'const' in choice)) {
    return `Expected one of ${choices.map((choice) => String(choice.const)).join(', ')}`
  }
  return `Expected ${choices.map((choice) => String(choice.type)).join(' or ')}`
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Reads `DATABASE_URL=postgres://user:pass@host:port/db` (or mysql://, mariadb://, sqlite:path) into database settings. */
export function databaseFromUrl (url: string, source: string): Partial<DatabaseSettings> & { url: string } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ConfigError(source, 'DATABASE_URL', 'not a valid URL')
  }
  const type = parsed.protocol.replace(/:$/, '')
  const kind = databaseKind(type)
  if (kind === null) {
    throw new ConfigError(source, 'DATABASE_URL', `unknown database type '${type}' (use sqlite:, postgres:// or mysql://)`)
  }
  if (kind === 'sqlite') {
    return { type, database: decodeURIComponent(parsed.pathname), url }
  }
  return {
    type,
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    host: parsed.hostname,
    port: parsed.port,
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')),
    url
  }
}

/**
 * The listed origins as a browser writes them in its `Origin` header (lower case, no default
 * port), so that they compare as plain strings; a ConfigError for an entry that is not one.
 */
function corsOrigins (cors: Settings['cors'], source: string): Settings['cors'] {
  if (cors === '*') return cors
  const origins = cors.map((entry) => {
    const hint = entry.trim() === '*' ? " (to allow any origin, write cors: '*', not in a list)" : ''
    const problem = new ConfigError(source, 'cors', `'${entry}' is not an origin: write scheme://host[:port] (http or https), without a path${hint}`)
    if (!/^https?:\/\/[^/?#@\\\s]+$/i.test(entry)) throw problem
    try {
      return new URL(entry).origin
    } catch {
      throw problem
    }
  })
  return [...new Set(origins)]
}

/** Names @fastify/proxy-addr (Fastify's trustProxy) reads as ranges of addresses. */
const namedRanges = new Set(['loopback', 'linklocal', 'uniquelocal'])

/** Whether `entry` is a proxy address Fastify accepts: an IP address, address/prefix length, or a named range. */
function isProxyAddress (entry: string): boolean {
  if (namedRanges.has(entry)) return true
  const slash = entry.lastIndexOf('/')
  const version = isIP(slash === -1 ? entry : entry.slice(0, slash))
  if (version === 0) return false
  if (slash === -1) return true
  const prefix = entry.slice(slash + 1)
  return /^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (version === 4 ? 32 : 128)
}

/**
 * Fastify's `trustProxy`, checked here so that a mistake is one line naming the key, not an
 * exception from Fastify at start-up.
 */
function trustedProxies (trustProxy: Settings['trustProxy'], source: string): Settings['trustProxy'] {
  if (typeof trustProxy === 'boolean') return trustProxy
  // Fastify splits a string at commas; '' trusts no proxy, as False does
  const entries = typeof trustProxy === 'string' ? (trustProxy.trim() === '' ? [] : trustProxy.split(',').map((entry) => entry.trim())) : trustProxy
  const bad = entries.find((entry) => !isProxyAddress(entry))
  if (bad !== undefined) {
    throw new ConfigError(source, 'trustProxy', `'${bad}' is not an IP address, a CIDR range (address/prefix length) or one of loopback, linklocal, uniquelocal`)
  }
  return trustProxy
}

/** The settings of section `name` (e.g. `database:`), each key checked against `keys`. */
function section (given: Record<string, unknown>, name: string, keys: Set<string>, source: string): Record<string, unknown> {
  const value = given[name] ?? {}
  if (!isPlainObject(value)) throw new ConfigError(source, name, `expected a mapping, got ${describeType(value)}`)
  for (const key of Object.keys(value)) {
    if (!keys.has(key)) throw new ConfigError(source, `${name}.${key}`, 'unknown setting')
  }
  return value
}

/** What the types cannot say of the `mqtt:` settings. */
function checkMqtt ({ url, ca, topicPrefix, publicUrl }: Settings['mqtt'], source: string): void {
  if (url !== '') {
    let protocol: string
    try {
      protocol = new URL(url).protocol
    } catch {
      throw new ConfigError(source, 'mqtt.url', `'${url}' is not a URL: write mqtt://host[:port] or mqtts://host[:port]`)
    }
    if (protocol !== 'mqtt:' && protocol !== 'mqtts:') {
      throw new ConfigError(source, 'mqtt.url', `'${url}' is not an MQTT broker's URL: write mqtt://host[:port] or mqtts://host[:port]`)
    }
    if (ca !== '' && protocol !== 'mqtts:') throw new ConfigError(source, 'mqtt.ca', 'a CA file is only used with an mqtts:// url')
  }
  // a wildcard or an empty level in the prefix would subscribe cred to topics that are not its own
  if (topicPrefix.split('/').some((level) => level === '' || level.includes('+') || level.includes('#'))) {
    throw new ConfigError(source, 'mqtt.topicPrefix', `'${topicPrefix}' must be topic levels separated by '/', none empty, without '+' or '#'`)
  }
  if (publicUrl !== '' && !/^https?:\/\/[^/?#@\\\s]+$/i.test(publicUrl)) {
    throw new ConfigError(source, 'mqtt.publicUrl', `'${publicUrl}' is not scheme://host[:port] (http or https, without a path)`)
  }
}

/**
 * Merges `input` over the defaults and validates the result.
 * `source` names where the settings came from, for error messages.
 */
export function resolveConfig (input: SettingsInput | undefined, source: string, databaseUrl?: string): CredConfig {
  const given: Record<string, unknown> = isPlainObject(input) ? input : {}
  for (const key of Object.keys(given)) {
    if (!settingsKeys.has(key)) throw new ConfigError(source, key, 'unknown setting')
  }
  const givenDatabase = section(given, 'database', databaseKeys, source)
  const givenMqtt = section(given, 'mqtt', mqttKeys, source)
  let url: string | undefined
  let fromUrl: Partial<DatabaseSettings> = {}
  if (databaseUrl !== undefined && databaseUrl !== '') {
    const { url: fullUrl, ...rest } = databaseFromUrl(databaseUrl, 'environment')
    url = fullUrl
    fromUrl = rest
  }
  const merged = {
    ...defaultSettings,
    ...given,
    database: { ...defaultSettings.database, ...givenDatabase, ...fromUrl },
    mqtt: { ...defaultSettings.mqtt, ...givenMqtt }
  }
  // a port written as a quoted number is still a port
  if (typeof merged.port === 'string' && /^\d+$/.test(merged.port)) merged.port = Number(merged.port)

  if (typeof merged.trustProxy === 'number') {
    // Fastify's own docs mention one; it ignores it, as it cannot tell a proxy from a client that sends X-Forwarded-For itself
    throw new ConfigError(source, 'trustProxy', 'a number of proxy hops is not supported: list the proxies\' addresses, or write True')
  }
  const error = checkSettings.Errors(merged).First()
  if (error !== undefined) {
    const key = error.path.replace(/^\//, '').replaceAll('/', '.')
    const value = key.split('.').reduce<unknown>((obj, part) => isPlainObject(obj) ? obj[part] : undefined, merged)
    throw new ConfigError(source, key || null, `${expectation(error)}, got ${describeType(value)}`)
  }
  const settings = merged as Settings
  const kind = databaseKind(settings.database.type)
  if (kind === null) {
    throw new ConfigError(source, 'database.type',
      `unknown database type '${settings.database.type}' (use 'sqlite3', 'postgresql' or 'mysql')`)
  }
  if (kind !== 'sqlite' && !Object.hasOwn(givenDatabase, 'database') && !Object.hasOwn(fromUrl, 'database')) {
    // the default name is SQLite's file name, never a server's database worth connecting to
    throw new ConfigError(source, 'database.database', `name the ${kind === 'mysql' ? 'MariaDB / MySQL' : 'PostgreSQL'} database to use`)
  }
  if (settings.database.serverPublicKey !== '' && kind !== 'mysql') {
    throw new ConfigError(source, 'database.serverPublicKey', "a server's public key is only used with MySQL (type 'mysql')")
  }
  if (settings.requestTimeout < settings.headersTimeout) {
    throw new ConfigError(source, 'requestTimeout', `must be at least headersTimeout (${settings.headersTimeout}), got ${settings.requestTimeout}`)
  }
  if (settings.SSL) {
    if (settings.sslcert === '') throw new ConfigError(source, 'sslcert', 'SSL is True but no certificate file is set')
    if (settings.sslkey === '') throw new ConfigError(source, 'sslkey', 'SSL is True but no key file is set')
  }
  checkMqtt(settings.mqtt, source)
  return {
    ...settings,
    cors: corsOrigins(settings.cors, source),
    trustProxy: trustedProxies(settings.trustProxy, source),
    approot: normaliseApproot(settings.approot),
    database: { ...settings.database, kind, ...(url === undefined ? {} : { url }) }
  }
}
