// A body over bodyLimit gets its 413 even when the client sends the whole body before reading.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import t from 'tap'
import { LINGER_BYTES, LINGER_MS } from '../../../plugins/app/lingering-close.js'
import { build } from '../../helper.js'
import { sandbox, startServer } from '../../process-helper.js'

async function listening (t: Parameters<typeof build>[0]) {
  const { app } = await build(t, { bodyLimit: 1024 * 1024 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (typeof address !== 'object' || address === null) throw new Error('not listening')
  return address.port
}

// Python's urllib sends `Connection: close` and the whole body before it reads the answer: the
// way many device scripts post. Without the lingering close it saw a broken pipe, not the 413,
// in about half of the attempts.
const python = `
import json, sys, urllib.error, urllib.request
body = b'{"event":{"name":"' + b'x' * (8 * 1024 * 1024) + b'"}}'
for _ in range(20):
    request = urllib.request.Request(sys.argv[1], data=body, headers={'Content-Type': 'application/json'}, method='POST')
    try:
        urllib.request.urlopen(request)
        print('stored')
    except urllib.error.HTTPError as answer:
        print(answer.code, json.dumps(json.loads(answer.read())))
    except Exception as err:
        print('failed', type(err).__name__, err)
`

t.test('a client that sends an 8 MB body before reading gets the 413, every time (cred-server)', async (t) => {
  const box = sandbox(t)
  writeFileSync(`${box.cwd}/credrc`, "host: '127.0.0.1'\nport: 0\n")
  const { port } = await startServer(t, box)
  const output = await new Promise<string>((resolve, reject) => {
    execFile('python3', ['-c', python, `http://127.0.0.1:${port}/events`], { timeout: 60_000 }, (err, stdout) => err === null ? resolve(stdout) : reject(err))
  })
  const lines = output.trim().split('\n')
  t.equal(lines.length, 20)
  for (const line of lines) t.equal(line, '413 {"status": 413, "message": "Request body is too large (limit 1048576 bytes)"}')
})

t.test('the rest of a refused body is read only up to a bound: a client sending more is cut off', async (t) => {
  const port = await listening(t)
  const declared = LINGER_BYTES * 4
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  let received = ''
  socket.on('data', (chunk) => { received += chunk.toString('latin1') })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  socket.write(`POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n`)
  const chunk = Buffer.alloc(64 * 1024, 0x61)
  let sent = 0
  while (!socket.destroyed && sent < declared) {
    const flushed = socket.write(chunk)
    sent += chunk.length
    if (!flushed) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed])
  }
  await closed
  t.ok(sent < declared, `the server closed the connection after ${sent} of ${declared} bytes`)
  t.ok(sent > LINGER_BYTES, 'but not before reading the bound')
  t.match(received, /^HTTP\/1\.1 413 /, 'the answer was a 413')
  t.match(received, /\{"status":413,"message":"Request body is too large \(limit 1048576 bytes\)"\}$/)
})

t.test('answers to bodies within the limit, and 413s to injected requests, are as before', async (t) => {
  const { app, session } = await build(t, { bodyLimit: 1024 * 1024 })
  const writer = await session('write')
  const small = await app.inject({ method: 'POST', url: '/events', headers: { authorization: `Bearer ${writer.sessionKey}` }, payload: { event: { name: 'Light' } } })
  t.equal(small.statusCode, 201)
  const large = await app.inject({ method: 'POST', url: '/events', headers: { 'content-type': 'application/json' }, payload: `{"event":{"name":"${'x'.repeat(2 * 1024 * 1024)}"}}` })
  t.equal(large.statusCode, 413)
  t.same(large.json(), { status: 413, message: 'Request body is too large (limit 1048576 bytes)' })
})

t.test('a client that stops sending the rest of a refused body is cut off after a while', async (t) => {
  const port = await listening(t)
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  let received = ''
  socket.on('data', (chunk) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
  socket.write(`POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024}\r\n\r\n`)
  socket.write(Buffer.alloc(2 * 1024 * 1024, 0x61))
  const stalled = Date.now()
  const at = await closed
  t.ok(at - stalled >= LINGER_MS - 1000, `kept open while it might still send (${at - stalled} ms)`)
  t.ok(at - stalled < LINGER_MS + 3000, 'then closed')
  t.match(received, /^HTTP\/1\.1 413 /)
})
