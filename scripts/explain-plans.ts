// One-off check that the list queries stay on indexes when the events table is large.
// Seeds a scratch SQLite file and a scratch PostgreSQL database with N events (default
// 1,000,000) in bulk, then prints, as Markdown, the plans of the statements the
// repositories really run (their SQL comes from sqliteQueries / postgresQueries in db/sqlite and
// db/postgres, most of them the shared statements of db/statements.ts).
// The results are recorded in docs/query-plans.md.
//
//   npx tsx scripts/explain-plans.ts [--events N] [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--keep]
//
// --postgres names a database to connect to for CREATE DATABASE; the scratch database
// (cred_explain_<random>) is dropped at the end unless --keep is given, the SQLite file is removed.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { fillPlaceholders } from 'drizzle-orm'
import { drizzle as drizzlePg } from 'drizzle-orm/postgres-js'
import { drizzle as drizzleSqlite } from 'drizzle-orm/better-sqlite3'
import postgres from 'postgres'
import { openPostgres, postgresDialect, postgresQueries } from '../db/postgres/index.js'
import type { ListFilter } from '../db/repositories.js'
import { openSqlite, sqliteDialect, sqliteQueries } from '../db/sqlite/index.js'
import { listRead, type ListStatements, type SqlDialect } from '../db/statements.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    keep: { type: 'boolean', default: false }
  }
})
const eventCount = Number(args.events)
const clientCount = 1000
const out = (line = '') => process.stdout.write(`${line}\n`)

// Seed data, the same for both dialects: 1000 clients, each subscribed to three of 50 event
// names, one of them only from one location; every name has N/50 events over 20 locations.
// Client 1 subscribes to Light (anywhere), Door (in Room 1: half of the Doors) and Alarm.
// Client 2 subscribes to Light in Nowhere, Door in Room 2 and Fire: none of which ever happens.
const seedEvents = (series: string) => `
  insert into events (client_id, device, name, location, action, value, time)
  select 1 + n % ${clientCount}, 'Device ' || (n % ${clientCount}),
         case n % 50 when 0 then 'Light' when 1 then 'Door' when 2 then 'Alarm' else 'Name' || (n % 50) end,
         'Room ' || (n % 20), 'Set', '' || n, 1700000000000 + n * 1000
  from ${series}`
const seedClients = (series: string) => `
  insert into clients (device, location, session_hash, apikey_id, created, last_active)
  select 'Device ' || n, 'Room ' || (n % 20), 'hash-' || n, 1, 1700000000000, 1700000000000 from ${series}`
const seedSubscriptions = (series: string) => `
  insert into subscriptions (client_id, event_name, location)
  select n, 'Light', case when n = 2 then 'Nowhere' end from ${series}
  union all select n, 'Door', case when n = 1 then 'Room 1' else 'Room ' || (n % 20) end from ${series}
  union all select n, case when n = 1 then 'Alarm' when n = 2 then 'Fire' else 'Name' || (3 + n % 47) end, null from ${series}`

type Statement = { toSQL: () => { sql: string, params: unknown[] } }

interface Case {
  title: string
  list: 'eventsSubscribed' | 'eventList' | 'eventsByClient'
  clientId?: number
  /** the route's filter, with the default maxPageSize */
  filter: (newest: number) => ListFilter
}

/** The statement a case runs (the newest-first or the oldest-first one, see listPage) and its values. */
function statementOf (queries: Record<Case['list'], ListStatements<Statement>>, c: Case, dialect: SqlDialect, newest: number) {
  const read = listRead(dialect.noLimit, { ...c.filter(newest), maxItems: 1000 })
  return { query: read.pick(queries[c.list]), values: { clientId: c.clientId, ...read.values } }
}

// The id bound of the "after" polls: the newest ~1000 events (~50 of them match client 1).
const recent = 1000
const cases: Case[] = [
  {
    title: 'GET /clients/1/subscribedevents?after=<newest - 1000> (a device polling for what is new)',
    list: 'eventsSubscribed',
    clientId: 1,
    filter: (newest) => ({ after: newest - recent })
  },
  {
    title: 'GET /clients/1/subscribedevents?limit=1 (a device\'s first poll)',
    list: 'eventsSubscribed',
    clientId: 1,
    filter: () => ({ limit: 1 })
  },
  {
    title: 'GET /clients/1/subscribedevents?after=<newest / 2> (a device back after a long time away)',
    list: 'eventsSubscribed',
    clientId: 1,
    filter: (newest) => ({ after: Math.floor(newest / 2) })
  },
  {
    title: 'GET /clients/2/subscribedevents?limit=1 (first poll, subscriptions that match nothing)',
    list: 'eventsSubscribed',
    clientId: 2,
    filter: () => ({ limit: 1 })
  },
  {
    title: 'GET /events?limit=50',
    list: 'eventList',
    filter: () => ({ limit: 50 })
  },
  {
    title: 'GET /events?after=<newest - 1000>',
    list: 'eventList',
    filter: (newest) => ({ after: newest - recent })
  },
  {
    title: 'GET /events?before=<newest / 2>&limit=50&offset=50 (paging back)',
    list: 'eventList',
    filter: (newest) => ({ before: Math.floor(newest / 2), limit: 50, offset: 50 })
  },
  {
    title: 'GET /clients/7/events?limit=50',
    list: 'eventsByClient',
    clientId: 7,
    filter: () => ({ limit: 50 })
  }
]

function sqlOf (query: Statement, values: Record<string, unknown>) {
  const { sql, params } = query.toSQL()
  return { sql, params: fillPlaceholders(params, values) }
}

async function explainSqlite () {
  const dir = mkdtempSync(join(tmpdir(), 'cred-explain-'))
  try {
    const file = join(dir, 'explain.db')
    await (openSqlite(file)).close()
    const sqlite = new Database(file)
    const series = (count: number) => `with recursive g(n) as (select 1 union all select n + 1 from g where n < ${count})`
    let started = performance.now()
    sqlite.exec('insert into apikeys (key_hash, permission, created) values (\'hash\', \'read\', 1700000000000)')
    sqlite.exec(`${series(clientCount)} ${seedClients('g')}`)
    sqlite.exec(`${series(clientCount)} ${seedSubscriptions('g')}`)
    sqlite.exec(`${series(eventCount)} ${seedEvents('g')}`)
    sqlite.exec('analyze')
    const { version } = sqlite.prepare('select sqlite_version() as version').get() as { version: string }
    out(`## SQLite ${version}`)
    out()
    out(`Seeded ${eventCount.toLocaleString('en')} events in ${((performance.now() - started) / 1000).toFixed(1)} s, then \`ANALYZE\`.`)
    out()
    const queries = sqliteQueries(drizzleSqlite({ client: sqlite }))
    const newest = (sqlite.prepare('select max(id) as id from events').get() as { id: number }).id
    for (const c of cases) {
      const { query, values } = statementOf(queries, c, sqliteDialect, newest)
      const { sql, params } = sqlOf(query, values)
      const plan = sqlite.prepare(`explain query plan ${sql}`).all(...params) as Array<{ id: number, parent: number, detail: string }>
      started = performance.now()
      const rows = sqlite.prepare(sql).all(...params).length
      const ms = performance.now() - started
      out(`### ${c.title}`)
      out()
      out('```sql')
      out(sql)
      out('```')
      out()
      out(`params: \`${JSON.stringify(params)}\` — ${rows} rows in ${ms.toFixed(1)} ms`)
      out()
      out('```')
      const depth = new Map<number, number>([[0, -1]])
      for (const step of plan) {
        const level = (depth.get(step.parent) ?? -1) + 1
        depth.set(step.id, level)
        out(`${'  '.repeat(level)}${step.detail}`)
      }
      out('```')
      out()
    }
    sqlite.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function explainPostgres () {
  const admin = postgres(args.postgres, { max: 1, onnotice: () => {} })
  const name = `cred_explain_${randomBytes(4).toString('hex')}`
  await admin.unsafe(`create database "${name}"`)
  const url = new URL(args.postgres)
  url.pathname = `/${name}`
  try {
    await (await openPostgres({
      type: 'postgresql', kind: 'postgresql', url: url.toString(), user: '', password: '', host: '', port: '', database: '', poolSize: 1, pollInterval: 100, serverPublicKey: ''
    })).close()
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} })
    try {
      const series = `generate_series(1, ${clientCount}) as g(n)`
      const started = performance.now()
      await sql.unsafe('insert into apikeys (key_hash, permission, created) values (\'hash\', \'read\', 1700000000000)')
      await sql.unsafe(seedClients(series))
      await sql.unsafe(seedSubscriptions(series))
      await sql.unsafe(seedEvents(`generate_series(1, ${eventCount}) as g(n)`))
      await sql.unsafe('vacuum analyze')
      const [{ version }] = await sql<[{ version: string }]>`select current_setting('server_version') as version`
      out(`## PostgreSQL ${version}`)
      out()
      out(`Seeded ${eventCount.toLocaleString('en')} events in ${((performance.now() - started) / 1000).toFixed(1)} s, then \`VACUUM ANALYZE\`.`)
      out()
      const queries = postgresQueries(drizzlePg({ client: sql }))
      const [{ newest }] = await sql<[{ newest: number }]>`select max(id) as newest from events`
      for (const c of cases) {
        const { query, values } = statementOf(queries, c, postgresDialect, newest)
        const { sql: text, params } = sqlOf(query, values)
        out(`### ${c.title}`)
        out()
        out('```sql')
        out(text)
        out('```')
        out()
        out(`params: \`${JSON.stringify(params)}\``)
        out()
        // The server's connections set plan_cache_mode = force_custom_plan, so every
        // execution is planned with its values, as this EXPLAIN with parameters is.
        const plan = await sql.unsafe(`explain (analyze, costs off) ${text}`, params as postgres.ParameterOrJSON<never>[])
        out('```')
        for (const row of plan) out(String(row['QUERY PLAN']))
        out('```')
        out()
      }
    } finally {
      await sql.end()
    }
  } finally {
    if (args.keep) process.stderr.write(`kept the PostgreSQL database ${name}\n`)
    else await admin.unsafe(`drop database if exists "${name}" with (force)`)
    await admin.end()
  }
}

await explainPostgres()
await explainSqlite()
