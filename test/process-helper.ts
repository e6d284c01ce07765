// Real processes for the CLI tests: the built bins (dist/, from `npm run build`) run in a
// sandbox of temporary directories, so no credrc of the machine running the tests is found.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { TLSSocket } from 'node:tls'
import type { Test } from 'tap'

export type Bin = 'cred-server' | 'cred-gen'

/** Path of a built bin; fails clearly when `npm run build` has not been run. */
export function bin (name: Bin): string {
  const file = fileURLToPath(new URL(`../dist/scripts/${name}.js`, import.meta.url))
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before these tests`)
  return file
}

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

/** One JSON log line of the server (pino). */
export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

function parseLog (stdout: string): LogLine[] {
  const lines: LogLine[] = []
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue
    try {
      lines.push(JSON.parse(line) as LogLine)
    } catch {
      lines.push({ level: 0, msg: line })
    }
  }
  return lines
}

function killOnTeardown (t: Test, child: ChildProcess, exited: Promise<unknown>): void {
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs a bin to its end, in the sandbox. */
export function run (t: Test, name: Bin, args: string[], box: Sandbox): Promise<RunResult> {
  const child = spawn(process.execPath, [bin(name), ...args], { cwd: box.cwd, env: box.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const result = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  killOnTeardown(t, child, result.catch(() => {}))
  return result
}

export interface ServerProcess {
  child: ChildProcess
  /** e.g. http://127.0.0.1:41234 (no approot) */
  origin: string
  port: number
  protocol: 'http' | 'https'
  /** the log lines so far */
  logs: () => LogLine[]
  stderr: () => string
  /** resolves when the process has ended */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

const serving = /^cred is serving (https?):\/\/([^/]+):(\d+)\//

/**
 * Starts cred-server in the sandbox and waits for its "cred is serving" line; rejects with
 * its output if it ends first. The process is killed when the test ends, if still running.
 */
export function startServer (t: Test, box: Sandbox, args: string[] = []): Promise<ServerProcess> {
  const child = spawn(process.execPath, [bin('cred-server'), ...args], { cwd: box.cwd, env: box.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }))
  })
  killOnTeardown(t, child, exited)
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      for (const line of parseLog(stdout)) {
        const match = serving.exec(line.msg)
        if (match === null) continue
        const protocol = match[1] as 'http' | 'https'
        const port = Number(match[3])
        resolve({ child, origin: `${protocol}://127.0.0.1:${port}`, port, protocol, logs: () => parseLog(stdout), stderr: () => stderr, exited })
        return
      }
    })
    void exited.then(({ code, signal }) => {
      reject(new Error(`cred-server ended before serving (code ${code}, signal ${signal})\nstdout: ${stdout}\nstderr: ${stderr}`))
    })
  })
}

export interface Response {
  status: number
  headers: IncomingHttpHeaders
  body: string
  json: () => any // eslint-disable-line @typescript-eslint/no-explicit-any -- test bodies are read dynamically
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
