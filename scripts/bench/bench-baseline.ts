// The baseline of `npm run bench`: a bare Fastify app serving cred's response shapes from
// memory (no authentication, no database, no validation), started as its own node process
// on dist/ like cred-server. Usage: node bench-baseline.js FIXTURES.json
// It listens on a port the system picks and prints `listening <port>`.
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { keepTickObjectShape } from '../../lib/tick-shape.js'

interface Fixtures {
  events: unknown
  subscribed: unknown
  clients: unknown
  created: { status: number, message: string, event: Record<string, unknown> }
}

// as cred-server does (through the plugin): the same process set-up, without which a process's
// speed is a matter of luck (see lib/tick-shape.ts)
keepTickObjectShape()

const fixtures = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Fixtures

const app = Fastify({ logger: false })
let nextId = 1
app.get('/events', async () => fixtures.events)
app.get('/clients', async () => fixtures.clients)
app.get('/clients/:id/subscribedevents', async () => fixtures.subscribed)
app.post('/events', async (_request, reply) => {
  const id = nextId++
  return reply.code(201).send({ ...fixtures.created, event: { ...fixtures.created.event, id } })
})

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address !== null ? address.port : 0}\n`)
const stop = () => { app.close().finally(() => process.exit(0)) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
