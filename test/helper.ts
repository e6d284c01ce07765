import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import cred from '../app.js'
import { resolveConfig } from '../config/resolve.js'
import { openDatabase, type Repositories } from '../db/index.js'
import type { Permission } from '../schemas/apikeys.js'
import type { CredConfig, SettingsInput } from '../schemas/config.js'

/** A temporary directory removed when the test ends. */
export function tempDir (t: Test, prefix = 'cred-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface TestApp {
  app: FastifyInstance
  config: CredConfig
  /** a second handle on the same database, for arranging data and checking what was stored */
  repos: Repositories
  /** creates an API key and returns its secret */
  key: (permission: Permission) => Promise<string>
  /** authenticates with a new key of `permission`; returns the client id and session key */
  session: (permission: Permission, body?: Record<string, unknown>) => Promise<{ id: number, sessionKey: string }>
  /** JSON body of a response */
  json: (res: LightMyRequestResponse) => any // eslint-disable-line @typescript-eslint/no-explicit-any -- test bodies are read dynamically
}

export type Backend = 'sqlite' | 'postgresql'

/** The backends the API suite runs against. */
export const backends: Backend[] = ['sqlite']

/** Runs `fn` as one subtest per backend: the same tests, every database. */
export function forEachBackend (t: Test, fn: (t: Test, backend: Backend) => Promise<void>): void {
  for (const backend of backends) t.test(backend, (t) => fn(t, backend))
}

/** Database settings for a fresh, empty database of `backend`, removed when the test ends. */
export async function testDatabase (t: Test, backend: Backend): Promise<SettingsInput['database']> {
  if (backend !== 'sqlite') throw new Error(`no test database for ${backend}`)
  return { type: 'sqlite3', database: join(tempDir(t), 'cred-test.db') }
}

export interface BuildOptions {
  backend?: Backend
  /** register cred under this prefix, as a host app would */
  prefix?: string
}

/** Builds the cred plugin inside a bare Fastify instance on a fresh database. */
export async function build (t: Test, settings: SettingsInput = {}, { backend = 'sqlite', prefix }: BuildOptions = {}): Promise<TestApp> {
  const input: SettingsInput = { ...settings, database: { ...await testDatabase(t, backend), ...settings.database } }
  const config = resolveConfig(input, 'test')
  const app = Fastify({ logger: false })
  await app.register(cred, { config, ...(prefix === undefined ? {} : { prefix }) })
  await app.ready()
  const repos = await openDatabase(config.database)
  t.teardown(async () => {
    await app.close()
    await repos.close()
  })
  const key = async (permission: Permission) => (await repos.apikeys.create(permission)).apikey
  const root = prefix ?? ''
  return {
    app,
    config,
    repos,
    key,
    async session (permission, body = {}) {
      const res = await app.inject({ method: 'POST', url: `${root}/auth`, payload: { apikey: await key(permission), ...body } })
      if (res.statusCode !== 201) throw new Error(`auth failed: ${res.statusCode} ${res.body}`)
      const { id, sessionKey } = res.json() as { id: number, sessionKey: string }
      return { id, sessionKey }
    },
    json: (res) => JSON.parse(res.body)
  }
}

export const bearer = (sessionKey: string) => ({ authorization: `Bearer ${sessionKey}` })
