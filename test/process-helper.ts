// Real processes for the CLI tests, on the benchmarks' harness (scripts/bench/harness.ts): the
// built bins (dist/, from `npm run build`) run in a sandbox of temporary directories, so no
// credrc of the machine running the tests is found, and end with the test.
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import type { Test } from 'tap'
import { runBin, startServer as start, type Bin, type Ran, type ServerProcess } from '../scripts/bench/harness.js'

export { bin, type Bin, type LogLine, type ServerProcess } from '../scripts/bench/harness.js'

/** A temporary directory (real path, no symlinks) removed when the test ends. */
export function tempDir (t: Test, prefix = 'cred-proc-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface Sandbox {
  root: string
  /** the working directory of the processes */
  cwd: string
  home: string
  /** $XDG_DATA_HOME */
  dataHome: string
  /** the first and second entries of $XDG_DATA_DIRS */
  dataDirs: [string, string]
  /** the environment of the processes: HOME and XDG dirs in the sandbox, no DATABASE_URL */
  env: NodeJS.ProcessEnv
}

/** Fresh, empty working directory, home and XDG data directories. */
export function sandbox (t: Test): Sandbox {
  const root = tempDir(t)
  const cwd = join(root, 'work')
  const home = join(root, 'home')
  const dataHome = join(root, 'data-home')
  const dataDirs: [string, string] = [join(root, 'data-dir-1'), join(root, 'data-dir-2')]
  for (const dir of [cwd, home, dataHome, ...dataDirs]) mkdirSync(dir)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: home,
    USERPROFILE: home,
    XDG_DATA_HOME: dataHome,
    XDG_DATA_DIRS: dataDirs.join(':')
  }
  delete env.DATABASE_URL
  return { root, cwd, home, dataHome, dataDirs, env }
}

export type RunResult = Ran

/** Runs a bin to its end, in the sandbox. */
export function run (t: Test, name: Bin, args: string[], box: Sandbox): Promise<RunResult> {
  const { child, done } = runBin(name, args, { cwd: box.cwd, env: box.env })
  t.teardown(() => { child.kill('SIGKILL') })
  return done
}

/** Runs a benchmark script to its end (in no sandbox: it makes its own). */
export function runBench (t: Test, name: 'bench' | 'live' | 'soak', args: string[]): Promise<RunResult> {
  const { child, done } = runBin(`bench/${name}`, args)
  // SIGTERM: the script stops the servers it started and drops its databases (a SIGKILL would
  // leave them behind); SIGKILL only if it has not ended 10 s later
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await done.catch(() => {})
    clearTimeout(timer)
  })
  return done
}

/**
 * Starts cred-server in the sandbox and waits for its "cred is serving" line; rejects with
 * its output if it ends first. The process is killed when the test ends, if still running.
 */
export function startServer (t: Test, box: Sandbox, args: string[] = []): Promise<ServerProcess> {
  const server = start({ args, cwd: box.cwd, env: box.env })
  t.teardown(async () => {
    const started = await server.catch(() => null)
    if (started !== null && started.child.exitCode === null && started.child.signalCode === null) {
      started.child.kill('SIGKILL')
      await started.exited
    }
  })
  return server
}

export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: string
  json: () => any
  /** the certificate's subject CN, for HTTPS */
  peerCommonName?: string
}

/** One HTTP(S) request without keep-alive; self-signed certificates are accepted. */
export function request (url: string, { method = 'GET', body }: { method?: string, body?: unknown } = {}): Promise<Response> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const send = url.startsWith('https:') ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method,
      agent: false,
      rejectUnauthorized: false,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    }, (res) => {
      const socket = res.socket as Partial<TLSSocket>
      const peerCommonName = typeof socket.getPeerCertificate === 'function' ? String(socket.getPeerCertificate().subject?.CN) : undefined
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: text,
        json: () => JSON.parse(text),
        ...(peerCommonName === undefined ? {} : { peerCommonName })
      }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

export interface RawResponse {
  /** the status line, e.g. `HTTP/1.1 431 Request Header Fields Too Large` */
  statusLine: string
  status: number
  /** header names in lower case */
  headers: Record<string, string>
  body: string
  /** whether the server closed the connection after the answer */
  closed: boolean
}

/**
 * Sends `text` as it is over a new TCP connection to 127.0.0.1:`port` (without closing the
 * sending side, as a device would not) and reads the answer until the server closes the
 * connection, or `ms` pass.
 */
export function rawRequest (port: number, text: string, ms = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let received = ''
    const done = (closed: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      const split = received.indexOf('\r\n\r\n')
      const [statusLine = '', ...lines] = (split === -1 ? received : received.slice(0, split)).split('\r\n')
      const headers = Object.fromEntries(lines.map((line) => {
        const colon = line.indexOf(':')
        return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
      }))
      resolve({ statusLine, status: Number(statusLine.split(' ')[1]), headers, body: split === -1 ? '' : received.slice(split + 4), closed })
    }
    const timer = setTimeout(() => done(false), ms)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('end', () => done(true))
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
  })
}

/** Whether `port` can be bound on all IPv4 interfaces right now (as cred-server binds '*'). */
export function portIsFree (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen({ port, host: '0.0.0.0', exclusive: true }, () => probe.close(() => resolve(true)))
  })
}

/** A one-line error on stderr: the expected text, nothing that looks like a stack trace. */
export function oneLine (t: Test, stderr: string, ...expected: string[]): void {
  const lines = stderr.replace(/\n$/, '').split('\n')
  t.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`)
  t.notMatch(stderr, /^\s+at /m, 'no stack trace')
  for (const text of expected) t.ok(stderr.includes(text), `stderr names ${JSON.stringify(text)}: ${stderr}`)
}
