// cred-server as a real process (dist/scripts/cred-server.js): run `npm run build` first.
import { execFile, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { bin, oneLine, portIsFree, rawRequest, request, run, sandbox, startServer } from '../process-helper.js'

// every test has its own sandbox: they may run side by side
t.jobs = 4

function write (file: string, text: string): string {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
  return file
}

/** A credrc in the working directory: listen on a free port of the loopback interface. */
const local = (extra = '') => `host: '127.0.0.1'\nport: 0\n${extra}`

t.test('no config file: the built-in defaults, port 5000, and the first-key hint', async (t) => {
  const box = sandbox(t)
  const free = await portIsFree(5000)
  if (!free) {
    // Everything but the port can still be checked: the server says what it uses, then
    // cannot listen, and ends with one line.
    const res = await run(t, 'cred-server', [], box)
    const messages = res.stdout.split('\n').filter((line) => line !== '').map((line) => (JSON.parse(line) as { msg: string }).msg)
    t.ok(messages.includes('no credrc found: using the built-in defaults'), 'logs that it uses the defaults')
    t.ok(messages.some((msg) => msg.includes('npx cred-gen --admin')), 'logs the first-key hint')
    t.equal(res.code, 1)
    oneLine(t, res.stderr, 'cannot listen on 0.0.0.0:5000')
    t.pass('listens on the default port 5000', { skip: 'port 5000 is taken on this machine: the default port could not be proven' })
    return
  }
  const server = await startServer(t, box)
  t.equal(server.port, 5000, 'the default port')
  t.equal(server.protocol, 'http')
  const logs = server.logs()
  const messages = logs.map((line) => line.msg)
  t.ok(messages.includes('no credrc found: using the built-in defaults'), 'logs that it uses the defaults')
  t.ok(messages.includes('cred is serving http://0.0.0.0:5000/ (API docs at /documentation)'), 'logs where it listens: all interfaces')
  const hint = logs.find((line) => line.msg.includes('npx cred-gen --admin'))
  t.ok(hint, 'an empty database: logs how to create the first key')
  t.equal(hint?.level, 40, 'as a warning')
  const database = logs.find((line) => typeof line.location === 'string')
  t.equal(database?.location, join(box.cwd, 'cred-server.db'), 'the SQLite file in the working directory')
  t.ok(existsSync(join(box.cwd, 'cred-server.db')))
  const res = await request(`${server.origin}/events`)
  t.equal(res.status, 401)
  t.same(res.json(), { status: 401, message: 'Not Authenticated' }, 'it is cred answering')
})

t.test('logs the config file it used, and the address it really listens on', async (t) => {
  const box = sandbox(t)
  const file = write(join(box.home, '.credrc'), local())
  const server = await startServer(t, box)
  const messages = server.logs().map((line) => line.msg)
  t.ok(messages.includes(`using config file ${file}`), 'the file it used')
  t.not(server.port, 0, 'port 0 asks for a free port: the log names the one bound')
  t.ok(messages.includes(`cred is serving http://127.0.0.1:${server.port}/ (API docs at /documentation)`))
  t.equal((await request(`${server.origin}/clients`)).status, 401)
})

t.test('--config PATH', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), "port: 'not used'\n")
  const file = write(join(box.root, 'server.yaml'), local())
  const server = await startServer(t, box, ['--config', file])
  t.ok(server.logs().some((line) => line.msg === `using config file ${file}`))

  const missing = await run(t, 'cred-server', ['--config', 'missing.yaml'], box)
  t.equal(missing.code, 1)
  t.equal(missing.stdout, '')
  oneLine(t, missing.stderr, 'cred-server: ', join(box.cwd, 'missing.yaml'), 'file not found')
})

t.test('--help, and usage errors', async (t) => {
  const box = sandbox(t)
  const help = await run(t, 'cred-server', ['--help'], box)
  t.equal(help.code, 0)
  t.equal(help.stderr, '')
  t.match(help.stdout, /^Usage: cred-server \[--config PATH\]/)
  t.match(help.stdout, /cred-gen --admin/)
  const unknown = await run(t, 'cred-server', ['--bogus', '80'], box)
  t.equal(unknown.code, 2)
  t.equal(unknown.stdout, '')
  t.equal(unknown.stderr, 'cred-server: Unknown option \'--bogus\'\nSee \'cred-server --help\'.\n',
    'one line saying what is wrong, one pointing to --help (not the whole help)')
  const level = await run(t, 'cred-server', ['--log-level', 'verbose'], box)
  t.equal(level.code, 2)
  t.equal(level.stderr, 'cred-server: --log-level must be one of fatal, error, warn, info, debug, trace, silent\nSee \'cred-server --help\'.\n')
  const port = await run(t, 'cred-server', ['--port', '70000'], box)
  t.equal(port.code, 2)
  t.equal(port.stderr, 'cred-server: --port must be a port number from 0 to 65535, not \'70000\'\nSee \'cred-server --help\'.\n')
  t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'no database created')
  const version = await run(t, 'cred-server', ['--version'], box)
  t.equal(version.code, 0)
  const { version: expected } = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  t.equal(version.stdout, `cred-server ${expected}\n`, '--version prints the package version')
})

t.test('--port and --host, else PORT and HOST, else credrc', async (t) => {
  const box = sandbox(t)
  const free = async () => {
    const probe = createNetServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const { port } = probe.address() as AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    return port
  }
  const [inFile, inEnv, inFlag] = [await free(), await free(), await free()]
  write(join(box.cwd, 'credrc'), `host: '0.0.0.0'\nport: ${inFile}\n`)
  const fromEnv = await startServer(t, { ...box, env: { ...box.env, PORT: String(inEnv), HOST: '127.0.0.1' } })
  t.equal(fromEnv.port, inEnv, 'PORT overrides the port setting')
  t.ok(fromEnv.logs().some((line) => line.msg === `cred is serving http://127.0.0.1:${inEnv}/ (API docs at /documentation)`), 'HOST overrides the host setting')
  fromEnv.child.kill('SIGTERM')
  await fromEnv.exited
  const fromFlags = await startServer(t, { ...box, env: { ...box.env, PORT: String(inEnv), HOST: '0.0.0.0' } }, ['--port', String(inFlag), '--host', '127.0.0.1'])
  t.equal(fromFlags.port, inFlag, '--port overrides PORT')
  t.ok(fromFlags.logs().some((line) => line.msg === `cred is serving http://127.0.0.1:${inFlag}/ (API docs at /documentation)`), '--host overrides HOST')
  const res = await request(`${fromFlags.origin}/health/live`)
  t.equal(res.status, 200)
  const badEnv = await run(t, 'cred-server', [], { ...box, env: { ...box.env, PORT: 'eighty' } })
  t.equal(badEnv.code, 1)
  oneLine(t, badEnv.stderr, 'PORT', "expected a port number from 0 to 65535, got 'eighty'")
})

t.test('a port in use: one line naming what sets the port, and no database created', async (t) => {
  const box = sandbox(t)
  const taken = createNetServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => taken.close(resolve)))
  const { port } = taken.address() as AddressInfo
  const file = write(join(box.cwd, 'credrc'), `host: '127.0.0.1'\nport: ${port}\n`)
  const res = await run(t, 'cred-server', [], box)
  t.equal(res.code, 1)
  oneLine(t, res.stderr, `cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE); choose another with --port, PORT or the port setting (now from port in ${file})`)
  t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'the database is not created before the port is known to be free')
})

t.test('the bin runs with the V8 memory settings of `npm start`', async (t) => {
  const root = join(import.meta.dirname, '..', '..')
  const file = join(root, 'dist', 'scripts', 'cred-server.js')
  const shebang = readFileSync(file, 'utf8').split('\n', 1)[0]!
  const options = /^#!\/usr\/bin\/env -S node (.+)$/.exec(shebang)?.[1]
  t.ok(options?.includes('--max-semi-space-size='), 'the shebang sets the young generation\'s size')
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start
  t.equal(start, `node ${options} dist/scripts/cred-server.js`, 'npm start uses the same options')
  // run as a program (env -S splits the options): it starts like `node cred-server.js` does
  const help = execFileSync(file, ['--help'], { encoding: 'utf8' })
  t.match(help, /^Usage: cred-server \[--config PATH\]/)
})

t.test('a bad config exits 1 with one line naming the file and the key', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ['unknown key', 'SSL: False\nsll: True\n', "'sll'", 'unknown setting'],
    ['wrong type', local('scheduler: yes please\n'), "'scheduler'", 'boolean'],
    ['broken YAML', "approot: '/cred\nport: 5000\n", "'approot'", 'unreadable YAML'],
    ['unknown database type', local("type: 'mongodb'\n"), "'database.type'", "unknown database type 'mongodb'"],
    ['SSL True without files', local('SSL: True\n'), "'sslcert'", 'SSL is True'],
    ['SSL certificate file missing', local('SSL: True\nsslcert: nocert.pem\nsslkey: nokey.pem\n'), "'sslcert'", 'nocert.pem'],
    ['cors entry that is not an origin', local("cors: ['https://ui.example/app']\n"), "'cors'", "'https://ui.example/app' is not an origin"],
    ['trustProxy entry that is not an address', local("trustProxy: 'my-proxy'\n"), "'trustProxy'", "'my-proxy' is not an IP address"]
  ]
  t.jobs = 4
  for (const [name, text, key, detail] of cases) {
    t.test(name, async (t) => {
      const box = sandbox(t)
      const file = write(join(box.cwd, 'credrc'), text)
      const res = await run(t, 'cred-server', [], box)
      t.equal(res.code, 1)
      t.equal(res.stdout, '', 'nothing logged: it stops before starting')
      oneLine(t, res.stderr, `cred-server: Invalid configuration in ${file} at key ${key}`, detail)
      t.notOk(existsSync(join(box.cwd, 'cred-server.db')), 'no database created')
    })
  }
})

/** A self-signed certificate and its key, cert.pem and key.pem in `dir`. */
function selfSigned (dir: string): void {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '2',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
  ], { stdio: 'ignore' })
}

t.test('SSL: True serves HTTPS with the certificate and key files', async (t) => {
  const box = sandbox(t)
  selfSigned(box.cwd)
  write(join(box.cwd, 'credrc'), local("SSL: True\nsslcert: 'cert.pem'\nsslkey: 'key.pem'\n"))
  const server = await startServer(t, box)
  t.equal(server.protocol, 'https')
  t.ok(server.logs().some((line) => line.msg === `cred is serving https://127.0.0.1:${server.port}/ (API docs at /documentation)`))
  const res = await request(`https://127.0.0.1:${server.port}/events`)
  t.equal(res.peerCommonName, 'localhost', 'the certificate generated for the test')
  t.equal(res.status, 401)
  t.same(res.json(), { status: 401, message: 'Not Authenticated' })
  await t.rejects(request(`http://127.0.0.1:${server.port}/events`), 'plain HTTP is not served')
})

t.test('SSL files that are no PEM certificate and key: exit 1, one line, no OpenSSL stack trace', async (t) => {
  const box = sandbox(t)
  selfSigned(box.cwd)
  write(join(box.cwd, 'junk.pem'), 'not a certificate\n')
  const cases: Array<[string, string, string]> = [
    ['junk.pem', 'key.pem', "'sslcert'"],
    ['cert.pem', 'junk.pem', "'sslkey'"],
    ['cert.pem', 'cert.pem', "'sslkey'"]
  ]
  for (const [cert, key, blamed] of cases) {
    const file = write(join(box.cwd, 'credrc'), local(`SSL: True\nsslcert: '${cert}'\nsslkey: '${key}'\n`))
    const res = await run(t, 'cred-server', [], box)
    t.equal(res.code, 1, `sslcert ${cert}, sslkey ${key}`)
    oneLine(t, res.stderr, `Invalid configuration in ${file} at key ${blamed}`)
  }
})

t.test("approot 'cred' serves the API under /cred, with envelopes outside it too", async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local("approot: 'cred/'\n"))
  const server = await startServer(t, box)
  t.ok(server.logs().some((line) => line.msg === `cred is serving http://127.0.0.1:${server.port}/cred/ (API docs at /cred/documentation)`))
  const inside = await request(`${server.origin}/cred/events`)
  t.equal(inside.status, 401)
  t.same(inside.json(), { status: 401, message: 'Not Authenticated' })
  const outside = await request(`${server.origin}/events`)
  t.equal(outside.status, 404)
  t.same(outside.json(), { status: 404, message: 'Not Found' })
  const docs = await request(`${server.origin}/cred/documentation/json`)
  t.equal(docs.status, 200, 'the OpenAPI document under the approot')
  const post = await request(`${server.origin}/auth`, { method: 'POST', body: { apikey: 'x' } })
  t.same([post.status, post.json()], [404, { status: 404, message: 'Not Found' }], 'POST outside the approot')
  const undecodable = await request(`${server.origin}/cred/events/%zz`)
  t.equal(undecodable.status, 400)
  t.match(undecodable.json(), { status: 400, message: /Malformed URL/ }, 'errors of the router itself are in the envelope too')
  // outside the approot, errors are worded as inside it: the same error handler answers them
  const malformed = (path: string) => rawRequest(server.port, `POST ${path} HTTP/1.1\r\nHost: localhost\r\n` +
    'Content-Type: application/json\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{')
  const [inCred, elsewhere] = [await malformed('/cred/auth'), await malformed('/auth')]
  t.match(JSON.parse(inCred.body), { status: 400, message: /^Malformed JSON body: / }, 'a malformed JSON body under the approot')
  t.same([elsewhere.status, JSON.parse(elsewhere.body)], [400, JSON.parse(inCred.body)], 'and outside it')
})

t.test('requests Node refuses before cred sees them are answered in the envelope, and the connection closes', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local())
  const server = await startServer(t, box)
  const cases: Array<[string, string, number, RegExp]> = [
    ['a 20 kB header', `GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'x'.repeat(20_000)}\r\n\r\n`, 431,
      /^Request Header Fields Too Large: the request's headers are larger than the server accepts$/],
    ['a malformed request line', 'GET/events\r\n\r\n', 400, /^Malformed HTTP request: /],
    ['a malformed header', 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n', 400, /^Malformed HTTP request: Invalid header/],
    ['Content-Length and Transfer-Encoding both', 'POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400,
      /^Malformed HTTP request: /],
    ['an HTTP/1.1 request without Host', 'GET /events HTTP/1.1\r\n\r\n', 400, /^Bad Request: an HTTP\/1\.1 request needs a Host header$/],
    ['an Expect other than 100-continue', 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 200-ok\r\n\r\n', 417, /^Expectation Failed/],
    ['CONNECT', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 501, /not a proxy/]
  ]
  for (const [name, text, status, message] of cases) {
    const res = await rawRequest(server.port, text)
    t.equal(res.status, status, `${name}: ${res.statusLine}`)
    t.match(res.headers['content-type'], /^application\/json/, `${name}: JSON`)
    t.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body), `${name}: Content-Length`)
    t.equal(res.headers.connection, 'close', `${name}: Connection: close`)
    const body = JSON.parse(res.body) as { status: number, message: string }
    t.same(Object.keys(body), ['status', 'message'], `${name}: the envelope`)
    t.equal(body.status, status)
    t.match(body.message, message)
    t.ok(res.closed, `${name}: the server closes the connection`)
  }
  t.equal((await request(`${server.origin}/events`)).status, 401, 'and serves on')
})

t.test('trustProxy: behind the proxy it names, the failed-auth limit is per real client', async (t) => {
  const failures = (port: number, client: string) => rawRequest(port, 'POST /auth HTTP/1.1\r\nHost: cred.example\r\n' +
    `X-Forwarded-For: ${client}\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{"apikey":"no"}`)
  const statuses = async (port: number, client: string, times: number) => {
    const seen = []
    for (let i = 0; i < times; i++) seen.push((await failures(port, client)).status)
    return seen
  }
  const trusting = sandbox(t)
  write(join(trusting.cwd, 'credrc'), local("trustProxy: '127.0.0.1'\nauthRateLimit: 2\n"))
  const behind = await startServer(t, trusting)
  t.same(await statuses(behind.port, '192.0.2.1', 3), [401, 401, 429], 'one client behind the proxy is blocked')
  t.same(await statuses(behind.port, '192.0.2.2', 1), [401], 'another is not')
  // (the log line may come in after the answer)
  let refusal
  for (let waited = 0; refusal === undefined && waited < 10_000; waited += 50) {
    refusal = behind.logs().find((line) => line.msg === 'authentication refused: too many invalid API keys from this address')
    if (refusal === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.match(refusal, { ip: '192.0.2.1' }, 'the log names the real client')

  const direct = sandbox(t)
  write(join(direct.cwd, 'credrc'), local('authRateLimit: 2\n'))
  const plain = await startServer(t, direct)
  t.same(await statuses(plain.port, '192.0.2.1', 3), [401, 401, 429])
  t.same(await statuses(plain.port, '192.0.2.2', 1), [429], 'by default X-Forwarded-For is ignored: every client is the proxy')
})

t.test('SIGTERM closes the server and exits 0', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local())
  const server = await startServer(t, box)
  t.equal((await request(`${server.origin}/events`)).status, 401)
  server.child.kill('SIGTERM')
  const { code, signal } = await server.exited
  t.equal(code, 0)
  t.equal(signal, null)
  t.ok(server.logs().some((line) => line.msg === 'SIGTERM received: closing'))
  t.equal(server.stderr(), '')
})

t.test('a client too slow to send its headers, or its whole request, is cut off (headersTimeout, requestTimeout)', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local('headersTimeout: 1\nrequestTimeout: 3\n'))
  const server = await startServer(t, box)
  /** Opens a connection, lets `act` write on it, and resolves with what came back and when it closed. */
  const slowClient = (act: (socket: Socket) => void) => new Promise<{ ms: number, answer: string }>((resolve) => {
    const started = Date.now()
    const socket = connect(server.port, '127.0.0.1')
    let answer = ''
    socket.on('data', (chunk) => { answer += chunk.toString() })
    socket.on('error', () => {})
    socket.once('close', () => resolve({ ms: Date.now() - started, answer }))
    socket.once('connect', () => act(socket))
  })
  const dribble = (socket: Socket, byte: string) => {
    const timer = setInterval(() => { if (socket.destroyed) clearInterval(timer); else socket.write(byte) }, 100)
  }
  const [silent, headers, body] = await Promise.all([
    slowClient(() => {}),
    slowClient((socket) => {
      socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ')
      dribble(socket, 'a')
    }),
    slowClient((socket) => {
      socket.write('POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n')
      dribble(socket, ' ')
    })
  ])
  for (const [name, result, limit] of [['silent', silent, 1000], ['dribbled headers', headers, 1000], ['dribbled body', body, 3000]] as const) {
    t.ok(result.ms >= limit - 100 && result.ms < limit + 2500, `${name}: closed after ${result.ms} ms (limit ${limit} ms, checked every second)`)
    t.match(result.answer, /^HTTP\/1\.1 408 /, `${name}: answered 408`)
    t.match(result.answer, /\r\n\r\n\{"status":408,"message":"[^"]+"\}$/, `${name}: in the envelope`)
  }
  const res = await request(`${server.origin}/health/live`)
  t.equal(res.status, 200, 'a normal client is served meanwhile')
})

t.test('the real client\'s polling loop (Python, urllib) gets every event once, in order, though more arrive than maxPageSize', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local('maxPageSize: 5\n'))
  const generated = await run(t, 'cred-gen', ['--write', '--json'], box)
  t.equal(generated.code, 0, generated.stderr)
  const { apikey } = JSON.parse(generated.stdout) as { apikey: string }
  const server = await startServer(t, box)
  const script = join(import.meta.dirname, 'poll-like-the-client.py')
  const { stdout } = await promisify(execFile)('python3', [script, server.origin, apikey], { cwd: box.cwd, env: box.env })
  const { posted, pages } = JSON.parse(stdout) as { posted: number[], pages: number[][] }
  t.equal(pages[0]!.length, 1, 'the first poll: the newest event')
  for (const page of pages.slice(1)) {
    t.ok(page.length <= 5, `at most maxPageSize events an answer: ${page.join(', ')}`)
    t.same(page, [...page].sort((a, b) => b - a), 'newest first')
  }
  t.ok(pages.some((page) => page.length === 5), 'answers were cut at maxPageSize')
  t.same(pages.flatMap((page) => [...page].reverse()), posted, 'every Light event it posted, each once, in order')
  t.ok(posted.length > 15, `more events than three pages: ${posted.length}`)
})

t.test('--log-format pretty: readable lines for a person, the first-key hint among them; json otherwise', async (t) => {
  const box = sandbox(t)
  write(join(box.cwd, 'credrc'), local())
  const pretty = spawn(process.execPath, [bin('cred-server'), '--log-format', 'pretty'], { cwd: box.cwd, env: box.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { pretty.kill('SIGKILL') })
  let out = ''
  await new Promise<void>((resolve, reject) => {
    pretty.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      if (out.includes('cred is serving')) resolve()
    })
    pretty.once('exit', () => reject(new Error(`ended: ${out}`)))
  })
  pretty.kill('SIGTERM')
  t.notMatch(out, /^\{/m, 'no JSON line')
  t.match(out, /^\[\d\d:\d\d:\d\d\] WARN: no API keys exist yet: create the first one with `npx cred-gen --admin`/m, 'the hint, as a warning')
  t.match(out, /^\[\d\d:\d\d:\d\d\] INFO: cred is serving http:\/\/127\.0\.0\.1:\d+\//m)
  const bad = await run(t, 'cred-server', ['--log-format', 'xml'], box)
  t.equal(bad.code, 2)
  t.equal(bad.stderr, 'cred-server: --log-format must be json or pretty, not \'xml\'\nSee \'cred-server --help\'.\n')
})
