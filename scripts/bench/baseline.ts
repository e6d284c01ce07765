// The benchmarks' baselines, each its own node process on dist/; it listens on a port the
// system picks and prints `listening <port>`.
//
//   baseline.js http FIXTURES.json   a bare Fastify app answering cred's workloads with cred's own
//                                    answers from memory: no authentication, database or validation
//   baseline.js http FIXTURES.json --sqlite FILE | --postgres URL | --mariadb URL --client-id N
//                                    the same, but POST /events makes cred's durable write with the
//                                    least code: the same events table, the same group commit, one
//                                    multi-row insert per group: SQLite in WAL mode with synchronous =
//                                    FULL, PostgreSQL with synchronous_commit = on, MariaDB's InnoDB
//                                    with the server's innodb_flush_log_at_trx_commit (1 by default)
//   baseline.js sse                  a raw node:http SSE broadcast: GET /stream[?name=N] holds a stream
//                                    (of the events named N); POST /events sends the posted event to
//                                    each, written once
import { readFileSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import mysql from 'mysql2/promise'
import postgres from 'postgres'
import { afterPendingIo, groupCommit } from '../../db/batch.js'
import { keepTickObjectShape } from '../../lib/tick-shape.js'

interface Posted { name: string, location?: string, action?: string, value?: string }

// the process set-up cred-server makes, so that both run alike
keepTickObjectShape()

const { positionals: [mode, fixturesFile], values } = parseArgs({
  allowPositionals: true,
  options: { sqlite: { type: 'string' }, postgres: { type: 'string' }, mariadb: { type: 'string' }, 'client-id': { type: 'string', default: '1' } }
})
const clientId = Number(values['client-id'])
const row = (event: Posted, time: number) => [clientId, 'bench poster', event.name, event.location ?? null, event.action ?? null, event.value ?? null, time]
const columns = 'client_id, device, name, location, action, value, time'

const placeholders = (events: Posted[]) => events.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')

/** The ids of a group of events, durable when resolved; null: none is written. */
async function durableWrite (): Promise<((events: Posted[]) => Promise<number[]> | number[]) | null> {
  if (values.sqlite !== undefined) {
    const db = new Database(values.sqlite)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    db.pragma('foreign_keys = ON')
    const inserts = new Map<number, Database.Statement>()
    return (events) => {
      let insert = inserts.get(events.length)
      if (insert === undefined) inserts.set(events.length, insert = db.prepare(`insert into events (${columns}) values ${placeholders(events)} returning id`).pluck())
      const time = Date.now()
      return (insert.all(events.flatMap((event) => row(event, time))) as number[]).sort((a, b) => a - b)
    }
  }
  if (values.postgres !== undefined) {
    const sql = postgres(values.postgres, { max: 1, connection: { synchronous_commit: 'on' } })
    return async (events) => {
      const time = Date.now()
      const rows = events.map((event) => Object.fromEntries(columns.split(', ').map((column, i) => [column, row(event, time)[i]])))
      return (await sql<Array<{ id: number }>>`insert into events ${sql(rows)} returning id`).map((inserted) => inserted.id).sort((a, b) => a - b)
    }
  }
  if (values.mariadb !== undefined) {
    const connection = await mysql.createConnection({ uri: values.mariadb })
    const [settings] = await connection.query<mysql.RowDataPacket[]>('select @@auto_increment_increment as increment')
    const increment = Number(settings[0]!.increment)
    // as db/mysql/event-inserts.ts: one insert's rows are numbered consecutively from its first id
    return async (events) => {
      const time = Date.now()
      const [result] = await connection.query<mysql.ResultSetHeader>(`insert into events (${columns}) values ${placeholders(events)}`, events.flatMap((event) => row(event, time)))
      return events.map((_, i) => result.insertId + i * increment)
    }
  }
  return null
}

async function http (): Promise<number> {
  const fixtures = JSON.parse(readFileSync(fixturesFile!, 'utf8')) as Record<'events' | 'subscribed' | 'clients', unknown> & { created: { event: object } }
  const write = await durableWrite()
  const insert = write === null ? null : groupCommit(write, { gather: afterPendingIo })
  let nextId = 1
  const app = Fastify({ logger: false })
  app.get('/events', async () => fixtures.events)
  app.get('/clients', async () => fixtures.clients)
  app.get('/clients/:id/subscribedevents', async () => fixtures.subscribed)
  app.post<{ Body: { event: Posted } }>('/events', async (request, reply) => {
    const id = insert === null ? nextId++ : await insert(request.body.event)
    return reply.code(201).send({ ...fixtures.created, event: { ...fixtures.created.event, id } })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

async function sse (): Promise<number> {
  const streams = new Map<string | null, Set<ServerResponse>>()
  let nextId = 1
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://localhost')
    if (req.method === 'GET' && url.pathname === '/stream') {
      const name = url.searchParams.get('name')
      if (!streams.has(name)) streams.set(name, new Set())
      streams.get(name)!.add(res)
      res.once('close', () => streams.get(name)!.delete(res))
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).write(': connected\n\n')
      return
    }
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
      const event = (JSON.parse(body) as { event: Posted }).event
      const id = nextId++
      const item = { id, uri: `http://127.0.0.1/events/${id}`, device: 'bench poster', ...event, time: new Date().toISOString() }
      const message = `id: ${id}\nevent: event\ndata: ${JSON.stringify(item)}\n\n`
      for (const stream of streams.get(event.name) ?? []) stream.write(message)
      for (const stream of streams.get(null) ?? []) stream.write(message)
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ event: { id } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

process.stdout.write(`listening ${mode === 'sse' ? await sse() : await http()}\n`)
process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))
