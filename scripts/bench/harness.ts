// Processes, temporary files and databases for the benchmarks, and what /proc says about a
// process. Everything started here is registered for clean-up, which runs on success, on
// error, on Ctrl-C and (for what can be done synchronously) on exit.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { request, type Agent } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import postgres from 'postgres'

const run = promisify(execFile)

/** A built bin next to this file once compiled (dist/scripts/bench/ → dist/scripts/). */
export function bin (name: 'cred-server' | 'cred-gen'): string {
  const file = fileURLToPath(new URL(`../${name}.js`, import.meta.url))
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`)
  return file
}

/**
 * The node options a built bin runs with: those of its `#!/usr/bin/env -S node …` line, which
 * `npm start` repeats (cred-server's V8 memory settings), so a benchmark measures the server as
 * it is started.
 */
export function binNodeOptions (file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0]!
  const match = /^#!\/usr\/bin\/env(?: -S)? node(.*)$/.exec(first)
  return match === null ? [] : match[1]!.trim().split(/\s+/).filter((option) => option !== '')
}

/**
 * A checker for numeric command-line options: `option(name, text, min)` returns the number,
 * or prints `<command>: --name must be a number >= min` with the usage and exits 2.
 */
export function numberOption (command: string, usage: string) {
  return (name: string, text: string, min: number): number => {
    const value = Number(text)
    if (!Number.isFinite(value) || value < min) {
      process.stderr.write(`${command}: --${name} must be a number >= ${min}\n${usage}`)
      process.exit(2)
    }
    return value
  }
}

/** Progress goes to stderr, so stdout holds only the table or the JSON. */
export function progress (message: string): void {
  process.stderr.write(`# ${message}\n`)
}

// ---------------------------------------------------------------------------------------------
// clean-up

const children = new Set<ChildProcess>()
const dirs = new Set<string>()
const databases = new Map<string, string>() // database name → admin URL

export function tempDir (prefix = 'cred-bench-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

/** Ends every process started here (TERM, then KILL after 5 s), drops the databases, removes the files. */
export async function cleanUp (): Promise<void> {
  await Promise.all([...children].map((child) => stopProcess(child)))
  for (const [name, url] of databases) {
    await postgresAdmin(url, (sql) => sql.unsafe(`drop database if exists "${name}" with (force)`))
      .catch((err: unknown) => progress(`could not drop database ${name}: ${(err as Error).message}`))
    databases.delete(name)
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

/** Last resort when the process exits anyway: kill what is left and remove the files (databases need async). */
function cleanUpNow (): void {
  for (const child of children) child.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  for (const name of databases.keys()) process.stderr.write(`# database ${name} was left behind: drop it by hand\n`)
}
process.on('exit', cleanUpNow)

/**
 * SIGINT and SIGTERM clean up (servers, files, databases) and exit with 130; a second signal
 * exits at once (the exit hook still kills the servers and removes the files). `stopping`
 * runs first, for a script to note that what closes now is not closing early.
 */
export function cleanUpOnSignals (stopping: () => void = () => {}): void {
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130)
    interrupted = true
    progress(`${signal}: cleaning up (again to quit at once)`)
    stopping()
    cleanUp().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
}

/** Registers a process started elsewhere, so that clean-up ends it too. */
export function trackProcess (child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
}

export function stopProcess (child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child)
      resolve()
      return
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', () => {
      clearTimeout(timer)
      children.delete(child)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export async function postgresAdmin<T> (url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    return await work(sql)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

/** null when the server answers, else why not. */
export async function postgresProblem (url: string): Promise<string | null> {
  return postgresAdmin(url, async (sql) => { await sql`select 1` })
    .then(() => null, (err: unknown) => (err as Error).message)
}

/** A fresh database `<prefix><random>` (`cred_bench_…` by default), dropped at clean-up. */
export async function createDatabase (url: string, prefix = 'cred_bench_'): Promise<string> {
  const name = `${prefix}${randomBytes(6).toString('hex')}`
  await postgresAdmin(url, (sql) => sql.unsafe(`create database "${name}"`))
  databases.set(name, url)
  return name
}

// ---------------------------------------------------------------------------------------------
// cred processes

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

export interface DatabaseConfig {
  type: 'sqlite3' | 'postgresql'
  database: string
  host?: string
  port?: number
  user?: string
  password?: string
}

/** The config of database `name` on the PostgreSQL server of `url` (with its user and password). */
export function postgresDatabaseConfig (url: string, name: string): DatabaseConfig {
  const server = new URL(url)
  return {
    type: 'postgresql',
    host: server.hostname,
    port: Number(server.port === '' ? 5432 : server.port),
    user: decodeURIComponent(server.username),
    password: decodeURIComponent(server.password),
    database: name
  }
}

/** Writes a credrc for one instance; only settings every cred version knows. */
export function writeConfig (dir: string, name: string, port: number, database: DatabaseConfig, settings: Record<string, string | number | boolean> = {}): string {
  const file = join(dir, `${name}.yaml`)
  const lines = [
    'host: 127.0.0.1',
    `port: ${port}`,
    'logLevel: warn',
    ...Object.entries(settings).map(([key, value]) => `${key}: ${JSON.stringify(value)}`),
    'database:',
    ...Object.entries(database).map(([key, value]) => `  ${key}: ${JSON.stringify(value)}`)
  ]
  writeFileSync(file, `${lines.join('\n')}\n`)
  return file
}

/** The environment of the cred processes: no DATABASE_URL, which would override the config file. */
function childEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.DATABASE_URL
  return env
}

/** Creates an API key with `cred-gen --json` and returns its secret. */
export async function createKey (configFile: string, permission: 'admin' | 'write' | 'read'): Promise<string> {
  const { stdout } = await run(process.execPath, [bin('cred-gen'), `--${permission}`, '--json', '--config', configFile], { env: childEnv() })
  return (JSON.parse(stdout) as { apikey: string }).apikey
}

export interface LogLine { level: number, msg: string, [field: string]: unknown }

export interface ServerProcess {
  label: string
  pid: number
  port: number
  url: string
  child: ChildProcess
  /** log lines at warn level and above */
  warnings: LogLine[]
  /** runs a full garbage collection in the server (through gc-on-signal.js); false if it did not answer */
  collectGarbage: () => Promise<boolean>
  stop: () => Promise<void>
}

/** Preloaded into every server: SIGUSR2 runs a full GC, so RSS can be read without garbage in it. */
const gcPreload = ['--expose-gc', '--import', pathToFileURL(fileURLToPath(new URL('./gc-on-signal.js', import.meta.url))).href]

/**
 * Starts `cred-server --config FILE` and resolves once it serves. The port is the config's
 * (chosen free beforehand) or, with `port: 0`, the one named in the "cred is serving" log
 * line — which is an info line, so at `logLevel: warn` the server is probed instead.
 */
export async function startServer (label: string, configFile: string, port: number, nodeArgs: string[] = [], timeoutMs = 30_000): Promise<ServerProcess> {
  const file = bin('cred-server')
  const child = spawn(process.execPath, [...binNodeOptions(file), ...gcPreload, ...nodeArgs, file, '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv()
  })
  children.add(child)
  const warnings: LogLine[] = []
  let stderr = ''
  let announced: number | null = null
  let gcDone: Array<() => void> = []
  let pending = ''
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    pending += chunk
    let newline: number
    while ((newline = pending.indexOf('\n')) !== -1) {
      const text = pending.slice(0, newline)
      pending = pending.slice(newline + 1)
      if (text.trim() === '') continue
      let line: LogLine
      try {
        line = JSON.parse(text) as LogLine
      } catch {
        line = { level: 50, msg: text }
      }
      if (line.msg === 'bench: gc done') {
        for (const wake of gcDone) wake()
        gcDone = []
        continue
      }
      const serving = /cred is serving https?:\/\/[^ ]*:(\d+)\//.exec(line.msg)
      if (serving !== null) announced = Number(serving[1])
      // a fresh database always warns that no API key exists yet: not worth reporting
      else if (line.level >= 40 && !line.msg.startsWith('no API keys exist yet') && warnings.length < 1000) warnings.push(line)
    }
  })
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => { if (stderr.length < 10_000) stderr += chunk })

  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child)
      throw new Error(`${label}: cred-server exited (${child.exitCode ?? child.signalCode}) before serving: ${stderr.trim()}`)
    }
    const probe = announced ?? port
    // (another process may hold the port: then cred-server exits with EADDRINUSE, above)
    if (probe !== 0 && await answers(probe) && listensOn(child.pid!, probe) !== false) {
      return {
        label,
        pid: child.pid!,
        port: probe,
        url: `http://127.0.0.1:${probe}`,
        child,
        warnings,
        collectGarbage: () => new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 5000)
          gcDone.push(() => {
            clearTimeout(timer)
            resolve(true)
          })
          child.kill('SIGUSR2')
        }),
        stop: () => stopProcess(child)
      }
    }
    if (Date.now() > deadline) throw new Error(`${label}: cred-server did not serve within ${timeoutMs / 1000} s: ${stderr.trim()}`)
    await sleep(100)
  }
}

/**
 * Starts cred-server on a free port with a config written for it (`writeConfig`), and returns
 * the server and its config file. A port that was free when chosen can be taken by another
 * process before the server binds it (the test files run in parallel): the server then exits
 * with EADDRINUSE, and another port is tried, up to five times. `choosePort` is for tests.
 */
export async function startOnFreePort (
  label: string, dir: string, name: string, database: DatabaseConfig,
  { settings = {}, nodeArgs = [], choosePort = freePort }: { settings?: Record<string, string | number | boolean>, nodeArgs?: string[], choosePort?: () => Promise<number> } = {}
): Promise<{ server: ServerProcess, config: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await choosePort()
    const config = writeConfig(dir, name, port, database, settings)
    try {
      return { server: await startServer(label, config, port, nodeArgs), config }
    } catch (err) {
      if (attempt === 5 || !(err as Error).message.includes('EADDRINUSE')) throw err
      progress(`${label}: port ${port} was taken before cred-server could bind it: trying another`)
    }
  }
}

/** True when an HTTP server answers on `port` (any status). */
function answers (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/clients/me', agent: false, timeout: 1000 }, (res) => {
      res.resume()
      resolve(true)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// HTTP

export interface JsonResponse { status: number, body: any } // eslint-disable-line @typescript-eslint/no-explicit-any -- read dynamically

export function requestJson (agent: Agent, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request(url, {
      method,
      agent,
      headers: payload === undefined ? headers : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)), ...headers }
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: text === '' ? null : JSON.parse(text) })
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text })
        }
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Runs `work` over `items` with at most `concurrency` at a time. */
export async function inParallel<T, R> (items: T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index]!, index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
  return results
}

// ---------------------------------------------------------------------------------------------
// /proc

function procStatusKb (pid: number | 'self', field: string): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? null : Number(match[1])
  } catch {
    return null
  }
}

/** Resident set size in KiB (VmRSS), or null off Linux. */
export const rssKb = (pid: number | 'self') => procStatusKb(pid, 'VmRSS')

/** Open file descriptors of a process, or null when /proc cannot tell. */
export function openFiles (pid: number | 'self'): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return null
  }
}

/** The soft and hard "Max open files" limits of a process. */
export function openFilesLimit (pid: number | 'self'): { soft: number, hard: number } | null {
  try {
    const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
    if (match === null) return null
    const value = (text: string) => text === 'unlimited' ? Infinity : Number(text)
    return { soft: value(match[1]!), hard: value(match[2]!) }
  } catch {
    return null
  }
}

/**
 * Whether a process holds the listening TCP socket of `port` (its socket inodes in
 * /proc/<pid>/fd against the LISTEN entries of /proc/net/tcp and tcp6), or null when /proc
 * cannot tell. Something answering on a port is not proof that it is the process just started.
 */
export function listensOn (pid: number, port: number): boolean | null {
  if (!existsSync('/proc/self/fd')) return null // no procfs: cannot tell
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    // the process is gone: it exited (e.g. with EADDRINUSE) while the port was being probed,
    // and the port's answer came from whoever holds it
    return false
  }
  try {
    const sockets = new Set(fds.map((fd) => {
      try {
        return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]
      } catch {
        return undefined // closed meanwhile
      }
    }))
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
    return ['/proc/net/tcp', '/proc/net/tcp6'].some((table) => readFileSync(table, 'utf8').split('\n').slice(1).some((line) => {
      const fields = line.trim().split(/\s+/)
      return fields[1]?.endsWith(`:${hexPort}`) === true && fields[3] === '0A' && sockets.has(fields[9])
    }))
  } catch {
    return null
  }
}

/** CPU time (user + system) a process has used, in seconds. */
export function cpuSeconds (pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15, in clock ticks (100 a second on Linux)
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

/** Busy CPU time of the whole machine (all cores, idle and iowait left out), in seconds. */
export function machineBusySeconds (): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0)
    return (total - fields[3]! - fields[4]!) / 100
  } catch {
    return null
  }
}
