import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { cosmiconfigSync, type LoaderSync } from 'cosmiconfig'
import { isMap, isNode, isScalar, LineCounter, parseDocument, type Document } from 'yaml'
import type { CredConfig, SettingsInput } from '../schemas/config.js'
import { ConfigError, resolveConfig } from './resolve.js'

/** Keys the original's flat layout places after `type:`, which belong to the database. */
const flatDatabaseKeys = new Set(['type', 'user', 'password', 'host', 'port', 'database', 'poolSize', 'pollInterval', 'serverPublicKey'])

/**
 * Parses a credrc file. Both layouts load: the nested one (a `database:` mapping) and the
 * original README's flat one, where `host` and `port` appear twice — first the server's,
 * then, after `type:`, the database's. Pairs are read in order with duplicate keys allowed.
 */
export function parseCredrc (text: string, source: string): SettingsInput {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { uniqueKeys: false, prettyErrors: false, lineCounter })
  const problem = doc.errors[0]
  if (problem !== undefined) {
    const { line, col } = lineCounter.linePos(problem.pos[0])
    throw new ConfigError(source, keyAt(doc, problem.pos[0]),
      `unreadable YAML at line ${line}, column ${col}: ${problem.message.split('\n')[0]}`)
  }
  if (doc.contents === null) return {}
  if (!isMap(doc.contents)) throw new ConfigError(source, null, 'expected a mapping of settings at the top level')

  const top: Record<string, unknown> = {}
  const database: Record<string, unknown> = {}
  let inFlatDatabase = false
  for (const pair of doc.contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
    const value: unknown = pair.value === null ? null : (pair.value as { toJSON: () => unknown }).toJSON()
    if (key === 'database' && typeof value === 'object') {
      // `database:` with nothing after it is neither a section nor a database name
      if (value === null) throw new ConfigError(source, 'database', 'expected a mapping of database settings (or a database name), got nothing')
      assign(top, key, value, source)
      continue
    }
    if (key === 'type') inFlatDatabase = true
    const isDatabaseKey = inFlatDatabase ? flatDatabaseKeys.has(key) : ['type', 'user', 'password', 'database', 'poolSize', 'pollInterval', 'serverPublicKey'].includes(key)
    if (isDatabaseKey) assign(database, key, value, source, 'database.')
    else assign(top, key, value, source)
  }
  if (Object.keys(database).length > 0) {
    if (typeof top.database === 'object') {
      throw new ConfigError(source, 'database', 'both a database: section and flat database keys are given')
    }
    top.database = database
  }
  return top as SettingsInput
}

/** The top-level key whose entry holds `offset` (the last one starting before it), so a YAML error can name it. */
function keyAt (doc: Document.Parsed, offset: number): string | null {
  if (!isMap(doc.contents)) return null
  let key: string | null = null
  for (const pair of doc.contents.items) {
    const start = isNode(pair.key) ? pair.key.range?.[0] : undefined
    if (start === undefined || start >= offset) break
    key = isScalar(pair.key) ? String(pair.key.value) : null
  }
  return key
}

function assign (target: Record<string, unknown>, key: string, value: unknown, source: string, prefix = ''): void {
  if (Object.hasOwn(target, key)) throw new ConfigError(source, prefix + key, 'given twice')
  target[key] = value
}

const loadYaml: LoaderSync = (filepath, content) => parseCredrc(content, filepath)
const loaders = { noExt: loadYaml, '.yaml': loadYaml, '.yml': loadYaml }

export interface ConfigSearchEnv {
  cwd?: string
  env?: NodeJS.ProcessEnv
  platform?: NodeJS.Platform
}

/** The four places of the credrc search, in order, each a directory and the names tried there. */
export function searchPlaces ({ cwd = process.cwd(), env = process.env, platform = process.platform }: ConfigSearchEnv = {}): Array<{ dir: string, names: string[] }> {
  const home = env.HOME ?? homedir()
  const userData = platform === 'darwin'
    ? join(home, 'Library', 'Application Support')
    : (env.XDG_DATA_HOME !== undefined && env.XDG_DATA_HOME !== '' ? env.XDG_DATA_HOME : join(home, '.local', 'share'))
  const systemData = (env.XDG_DATA_DIRS ?? '').split(':').find((dir) => dir !== '') ?? '/usr/local/share'
  return [
    { dir: cwd, names: ['credrc', 'credrc.yaml', 'credrc.yml'] },
    { dir: home, names: ['.credrc'] },
    { dir: join(userData, 'cred-server'), names: ['credrc'] },
    { dir: join(systemData, 'cred-server'), names: ['credrc'] }
  ]
}

export interface LoadedConfig {
  config: CredConfig
  /** the file the settings came from, or null for the built-in defaults */
  file: string | null
}

/** Resolves the configuration exactly as cred-server and cred-gen do. */
export function loadConfig (configPath?: string, searchEnv: ConfigSearchEnv = {}): LoadedConfig {
  const env = searchEnv.env ?? process.env
  const databaseUrl = env.DATABASE_URL
  if (configPath !== undefined) {
    const file = resolve(searchEnv.cwd ?? process.cwd(), configPath)
    if (!existsSync(file)) throw new ConfigError(file, null, 'file not found')
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(file, null, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
    }
    return { config: resolveConfig(parseCredrc(text, file), file, databaseUrl), file }
  }
  for (const place of searchPlaces(searchEnv)) {
    const explorer = cosmiconfigSync('cred-server', {
      searchPlaces: place.names,
      searchStrategy: 'none',
      loaders,
      // an empty credrc is still the file found first: it means "all defaults"
      ignoreEmptySearchPlaces: false,
      cache: false
    })
    const found = explorer.search(place.dir)
    if (found !== null) {
      return { config: resolveConfig(found.config as SettingsInput | undefined, found.filepath, databaseUrl), file: found.filepath }
    }
  }
  return { config: resolveConfig({}, 'built-in defaults', databaseUrl), file: null }
}
