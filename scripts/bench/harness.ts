// Real processes for the benchmarks and the tests: the built bins (dist/) started, their logs
// read; temporary files and databases; command lines; what /proc says about a process. Whatever
// is started here is cleaned up on success, error and Ctrl-C, and (what can be at once) on exit.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { request, type ClientRequest, type IncomingMessage } from 'node:http'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Database from 'better-sqlite3'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import mysql from 'mysql2/promise'
import postgres from 'postgres'

export type Bin = 'cred-server' | 'cred-gen'

/** A built bin (or benchmark, `bench/NAME`) in dist/scripts/ (this file runs from there, or from scripts/bench/ in the tests). */
export function bin (name: Bin | `bench/${string}`): string {
  const scripts = import.meta.url.includes('/dist/scripts/') ? '../' : '../../dist/scripts/'
  const file = fileURLToPath(new URL(`${scripts}${name}.js`, import.meta.url))
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`)
  return file
}

/** `node` with a bin's `#!/usr/bin/env -S node …` options (cred-server's V8 memory settings), as `npm start` runs it. */
function node (file: string, args: string[], nodeArgs: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv }): ChildProcess {
  const shebang = /^#!\/usr\/bin\/env(?: -S)? node(.*)$/.exec(readFileSync(file, 'utf8').split('\n', 1)[0]!)?.[1]?.trim().split(/\s+/) ?? []
  const env = options.env ?? { ...process.env, DATABASE_URL: undefined } // which would override a config's database
  return track(spawn(process.execPath, [...shebang.filter((option) => option !== ''), ...nodeArgs, file, ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
}

/** Progress goes to stderr, so that stdout holds only the table or the JSON. */
export const progress = (message: string): void => { process.stderr.write(`# ${message}\n`) }

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** An option: the name of its argument ('' for a flag), its default (null: none), what it does. */
export type Option = [arg: string, fallback: string | null, help: string]

/**
 * Parses the command line by `options`, with -h for the usage: `head`, then the options written
 * from the same table (so that the help and the defaults agree), then `tail`. Exits 2 with the
 * usage on a mistake, and so does `number()`.
 */
export function commandLine<T extends Record<string, Option>> (command: string, head: string, options: T, { positionals = false, tail = '' } = {}) {
  const names = Object.entries(options).map(([name, [arg]]) => `--${name}${arg === '' ? '' : ` ${arg}`}`)
  const width = Math.max(...names.map((name) => name.length)) + 2
  const lines = Object.values(options).map(([, fallback, help], i) => `  ${names[i]!.padEnd(width)}${help}${fallback === null ? '' : ` (default ${fallback})`}`)
  const usage = `${head}\n${lines.join('\n')}\n  ${'-h, --help'.padEnd(width)}show this help\n${tail === '' ? '' : `\n${tail}\n`}`
  const fail = (message: string): never => {
    process.stderr.write(`${command}: ${message}\n${usage}`)
    process.exit(2)
  }
  try {
    const parsed = parseArgs({
      strict: true,
      allowPositionals: positionals,
      options: {
        help: { type: 'boolean', short: 'h' },
        ...Object.fromEntries(Object.entries(options).map(([name, [arg, fallback]]) =>
          [name, arg === '' ? { type: 'boolean' } : { type: 'string', ...(fallback === null ? {} : { default: fallback }) }]))
      }
    })
    if (parsed.values.help === true) {
      process.stdout.write(usage)
      process.exit(0)
    }
    const values = parsed.values as Record<keyof T, string | boolean | undefined>
    const number = (name: keyof T & string, min: number, text = String(values[name])): number => {
      const value = Number(text)
      if (!Number.isFinite(value) || value < min) fail(`--${name} must be a number >= ${min}`)
      return value
    }
    return { values, number, positionals: parsed.positionals, fail }
  } catch (err) {
    return fail((err as Error).message)
  }
}

// ---------------------------------------------------------------------------------------------
// clean-up

const children = new Set<ChildProcess>()
const dirs = new Set<string>()
const databases = new Map<string, string>() // database name → admin URL

/** A temporary directory, removed at clean-up. */
export function tempDir (prefix = 'cred-bench-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

/** Registers a process, so that clean-up ends it. */
export function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
export function stopProcess (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
    child.once('exit', () => { clearTimeout(timer); resolve() })
    child.kill('SIGTERM')
  })
}

/** Ends every process started here, drops the databases, removes the files. */
export async function cleanUp (): Promise<void> {
  await Promise.all([...children].map((child) => stopProcess(child)))
  for (const [name, url] of databases) {
    await dropDatabase(url, name)
      .catch((err: unknown) => progress(`could not drop database ${name}: ${(err as Error).message}`))
    databases.delete(name)
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  dirs.clear()
}

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  for (const name of databases.keys()) process.stderr.write(`# database ${name} was left behind: drop it by hand\n`)
})

/**
 * SIGINT and SIGTERM clean up and exit with 130 (a second one at once); `stopping` runs first,
 * so that a script knows that what closes now does not close early. With `seconds`, so does
 * running longer than that (exit code 1).
 */
export function cleanUpOnSignals (stopping: () => void = () => {}, seconds?: number): void {
  let interrupted = false
  const stop = (why: string, code: number) => {
    if (interrupted) process.exit(code)
    interrupted = true
    progress(`${why}: cleaning up (again to quit at once)`)
    stopping()
    cleanUp().finally(() => process.exit(code))
  }
  process.on('SIGINT', () => stop('SIGINT', 130))
  process.on('SIGTERM', () => stop('SIGTERM', 130))
  if (seconds !== undefined) setTimeout(() => stop(`time limit of ${seconds} s reached`, 1), seconds * 1000).unref()
}

// ---------------------------------------------------------------------------------------------
// databases: a SQLite file, or a fresh database on a PostgreSQL or MariaDB / MySQL server

export type Kind = 'sqlite' | 'postgresql' | 'mariadb'
export type ServerKind = Exclude<Kind, 'sqlite'>

export const kindLabels: Record<Kind, string> = { sqlite: 'SQLite', postgresql: 'PostgreSQL', mariadb: 'MariaDB' }

export interface DatabaseConfig { type: 'sqlite3' | ServerKind, database: string, host?: string, port?: number, user?: string, password?: string }

type Query = (text: string) => Promise<Array<Record<string, unknown>>>

const kindOf = (url: string): Kind => /^(mysql|mariadb):/.test(url) ? 'mariadb' : /^postgres(ql)?:/.test(url) ? 'postgresql' : 'sqlite'

/** Runs `work` with queries on one short-lived connection to `url`: a SQLite file, postgres:// or mysql://. */
export async function withConnection<T> (url: string, work: (query: Query) => Promise<T>): Promise<T> {
  const kind = kindOf(url)
  if (kind === 'postgresql') {
    const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} })
    try {
      return await work((text) => sql.unsafe(text))
    } finally {
      await sql.end({ timeout: 1 })
    }
  }
  if (kind === 'mariadb') {
    const connection = await mysql.createConnection({ uri: url, connectTimeout: 3000 })
    try {
      return await work(async (text) => (await connection.query(text))[0] as Array<Record<string, unknown>>)
    } finally {
      await connection.end().catch(() => connection.destroy())
    }
  }
  const db = new Database(url)
  try {
    db.pragma('busy_timeout = 30000')
    return await work(async (text) => {
      const statement = db.prepare(text)
      if (statement.reader) return statement.all() as Array<Record<string, unknown>>
      statement.run()
      return []
    })
  } finally {
    db.close()
  }
}

/** null when the server of `url` answers, else why not. */
export const serverProblem = (url: string): Promise<string | null> =>
  withConnection(url, (query) => query('select 1')).then(() => null, (err: unknown) => (err as Error).message)

/** The options of bench and bench:live that choose the database servers. */
export const serverOptions = {
  postgres: ['URL', 'postgres://postgres@127.0.0.1:5432/postgres', 'PostgreSQL server'],
  'no-postgres': ['', null, 'skip PostgreSQL'],
  mariadb: ['URL', 'mysql://root@127.0.0.1:3306', 'MariaDB / MySQL server'],
  'no-mariadb': ['', null, 'skip MariaDB']
} satisfies Record<string, Option>

/** The databases to run on by `serverOptions`: SQLite unless left out, and the servers wanted that answer. */
export async function databasesToRun (values: Record<keyof typeof serverOptions, string | boolean | undefined>, sqlite = true) {
  const urls: Record<ServerKind, string> = { postgresql: String(values.postgres), mariadb: String(values.mariadb) }
  const kinds: Kind[] = sqlite ? ['sqlite'] : []
  for (const [kind, skip] of [['postgresql', values['no-postgres']], ['mariadb', values['no-mariadb']]] as const) {
    if (skip === true) continue
    const problem = await serverProblem(urls[kind])
    if (problem === null) kinds.push(kind)
    else progress(`${kindLabels[kind]} is not reachable (${problem}): skipping it`)
  }
  return { kinds, urls }
}

const defaultPorts = { postgresql: 5432, mariadb: 3306 }

const quoted = (url: string, name: string) => kindOf(url) === 'mariadb' ? `\`${name}\`` : `"${name}"`

const dropDatabase = (url: string, name: string) =>
  withConnection(url, (query) => query(`drop database if exists ${quoted(url, name)}${kindOf(url) === 'postgresql' ? ' with (force)' : ''}`))

/** A fresh database `<prefix><random>` on the server of `url` (mysql:// for MariaDB), dropped at clean-up. */
export async function createDatabase (url: string, prefix = 'cred_bench_'): Promise<DatabaseConfig> {
  const name = `${prefix}${randomBytes(6).toString('hex')}`
  await withConnection(url, (query) => query(`create database ${quoted(url, name)}`))
  databases.set(name, url)
  const { hostname: host, port, username, password } = new URL(url)
  const type = kindOf(url) as ServerKind
  return { type, host, port: Number(port === '' ? defaultPorts[type] : port), user: decodeURIComponent(username), password: decodeURIComponent(password), database: name }
}

/** A fresh database of `kind`: a temporary SQLite file, or one on its server in `urls`. */
export const freshDatabase = async (kind: Kind, urls: Record<ServerKind, string>, prefix: string): Promise<DatabaseConfig> =>
  kind === 'sqlite' ? { type: 'sqlite3', database: join(tempDir(), 'cred.db') } : await createDatabase(urls[kind], prefix)

/** The URL of a database config (a SQLite file's path). */
export function databaseUrl ({ type, user = '', password = '', host = '127.0.0.1', port, database }: DatabaseConfig): string {
  if (type === 'sqlite3') return database
  const credentials = `${encodeURIComponent(user)}${password === '' ? '' : `:${encodeURIComponent(password)}`}`
  return `${type === 'mariadb' ? 'mysql' : 'postgres'}://${credentials}@${host}:${port ?? defaultPorts[type]}/${database}`
}

// ---------------------------------------------------------------------------------------------
// cred processes

/** Writes a credrc listening on 127.0.0.1, on a port the system picks; `settings` are top-level ones. */
export function writeConfig (dir: string, name: string, database: DatabaseConfig, settings: Record<string, string | number | boolean> = {}): string {
  const file = join(dir, `${name}.yaml`)
  const yaml = (entries: object, indent = '') => Object.entries(entries).map(([key, value]) => `${indent}${key}: ${JSON.stringify(value)}\n`).join('')
  writeFileSync(file, `host: 127.0.0.1\nport: 0\n${yaml(settings)}database:\n${yaml(database, '  ')}`)
  return file
}

export interface Ran { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** Runs a bin or benchmark to its end. */
export function runBin (name: Bin | `bench/${string}`, args: string[], options: { cwd?: string, env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess, done: Promise<Ran> } {
  const child = node(bin(name), args, [], options)
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const done = new Promise<Ran>((resolve, reject) => {
    child.once('error', reject).once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { child, done }
}

/** Creates an API key with `cred-gen --json` and returns its secret. */
export async function createKey (configFile: string, permission: 'admin' | 'write' | 'read'): Promise<string> {
  const ran = await runBin('cred-gen', [`--${permission}`, '--json', '--config', configFile]).done
  if (ran.code !== 0) throw new Error(`cred-gen --${permission} failed: ${ran.stderr.trim()}`)
  return (JSON.parse(ran.stdout) as { apikey: string }).apikey
}

/** One JSON log line of the server (pino); a line that is not JSON is kept as an error. */
export interface LogLine { level: number, msg: string, [field: string]: unknown }

export interface ServerProcess {
  label: string
  child: ChildProcess
  pid: number
  port: number
  protocol: 'http' | 'https'
  /** e.g. http://127.0.0.1:41234 (no approot) */
  origin: string
  /** the log lines so far (with `keepLogs: false`, only warnings and above) */
  logs: () => LogLine[]
  /** the lines at warn and above, but a fresh database's "no API keys exist yet" */
  warnings: () => LogLine[]
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** runs a full garbage collection in the server (started with `gc`); false when it did not answer */
  collectGarbage: () => Promise<boolean>
  stop: () => Promise<void>
}

export interface StartOptions {
  /** cred-server's arguments, e.g. `--config FILE --log-level warn` */
  args?: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  nodeArgs?: string[]
  label?: string
  /** false for a server logging a line per request: only warnings and above are kept */
  keepLogs?: boolean
  /** preloads a SIGUSR2 handler running a full GC, so that RSS can be read without garbage in it */
  gc?: boolean
}

const servingLine = /^cred is serving (https?):\/\/[^/]*:(\d+)\//
const gcPreload = ['--expose-gc', '--import', 'data:text/javascript,process.on("SIGUSR2",()=>{gc();process.stderr.write("bench: gc done\\n")})']

/**
 * Starts cred-server and resolves once it listens: at its "cred is serving" line or, at
 * `--log-level warn` and above (no info lines), once /proc shows its listening socket.
 * Rejects with its output when it ends first (a hung start is the caller's to bound).
 */
export function startServer ({ args = [], cwd, env, nodeArgs = [], label = 'cred-server', keepLogs = true, gc = false }: StartOptions = {}): Promise<ServerProcess> {
  const child = node(bin('cred-server'), args, [...(gc ? gcPreload : []), ...nodeArgs], { cwd, env })
  const lines: LogLine[] = []
  let stderr = ''
  const gcDone: Array<() => void> = []
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
  return new Promise((resolve, reject) => {
    let listening = false
    const ready = (protocol: 'http' | 'https', port: number) => {
      listening = true
      clearInterval(probe)
      resolve({
        label,
        child,
        pid: child.pid!,
        port,
        protocol,
        origin: `${protocol}://127.0.0.1:${port}`,
        logs: () => [...lines],
        warnings: () => lines.filter((line) => line.level >= 40 && !line.msg.startsWith('no API keys exist yet')),
        stderr: () => stderr,
        exited,
        collectGarbage: () => new Promise<boolean>((resolve) => {
          if (!gc) return resolve(false) // SIGUSR2 would end it
          const timer = setTimeout(() => resolve(false), 5000)
          gcDone.push(() => { clearTimeout(timer); resolve(true) })
          child.kill('SIGUSR2')
        }),
        stop: () => stopProcess(child)
      })
    }
    createInterface({ input: child.stdout! }).on('line', (text) => {
      // a line below warn ({"level":30…) is skipped unparsed when not kept: a busy server logs thousands a second
      if (text.trim() === '' || (!keepLogs && listening && text.startsWith('{"level":') && text.charCodeAt(9) < 52)) return
      let line: LogLine
      try {
        line = JSON.parse(text) as LogLine
      } catch {
        line = { level: 50, msg: text }
      }
      if (keepLogs || line.level >= 40) lines.push(line)
      const serving = listening ? null : servingLine.exec(line.msg)
      if (serving !== null) ready(serving[1] as 'http' | 'https', Number(serving[2]))
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (chunk.includes('bench: gc done\n')) {
        for (const wake of gcDone.splice(0)) wake()
        chunk = chunk.replaceAll('bench: gc done\n', '')
      }
      if (stderr.length < 100_000) stderr += chunk
    })
    const level = args[args.indexOf('--log-level') + 1]
    const probe = args.includes('--log-level') && ['warn', 'error', 'fatal', 'silent'].includes(level ?? '')
      ? setInterval(() => {
        const port = listeningPort(child.pid!)
        if (port !== null && !listening) ready('http', port)
      }, 50)
      : undefined
    child.once('error', reject)
    exited.then(({ code, signal }) => {
      clearInterval(probe)
      const logged = lines.map((line) => JSON.stringify(line)).join('\n')
      reject(new Error(`${label}: cred-server exited (code ${code}, signal ${signal}) before serving\nstdout: ${logged}\nstderr: ${stderr}`))
    })
  })
}

/** A request that must answer `status`: its JSON body (any: each caller knows the answer it asked for), or an error naming the answer. */
export async function expectJson (status: number, url: string, { method = 'GET', body, headers = {} }: { method?: string, body?: unknown, headers?: Record<string, string> } = {}): Promise<any> {
  const res = await fetch(url, { method, headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  if (res.status !== status) throw new Error(`${method} ${new URL(url).pathname}: ${res.status} ${text.slice(0, 300)}`)
  return JSON.parse(text)
}

/** A client's session (`POST /auth` as `device`, at location Bench unless `more` says), with its authorization header. */
export async function authenticate (origin: string, apikey: string, device: string, more: { location?: string, subscribe?: object } = {}) {
  const { id, sessionKey } = await expectJson(201, `${origin}/auth`, { method: 'POST', body: { apikey, device, location: 'Bench', ...more } }) as { id: number, sessionKey: string }
  return { id, headers: { authorization: `Bearer ${sessionKey}` } }
}

/** Runs `work` over `items`, at most `concurrency` at a time. */
export async function inParallel<T, R> (items: T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index]!, index)
    }
  }))
  return results
}

/** A table of text: columns padded to their widest cell, the first `left` to the left, the others to the right. */
export const formatTable = (lines: string[][], left: number, gap = '  '): string[] => {
  const widths = lines[0]!.map((_, col) => Math.max(...lines.map((line) => line[col]!.length)))
  return lines.map((line) => line.map((cell, col) => col < left ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!)).join(gap).trimEnd())
}

/** The machine the figures come from, for the JSON and the table's first line. */
export const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? null, node: process.version }
export const machineLine = `${machine.cpus} cores (${machine.cpuModel ?? 'unknown CPU'}), Node ${machine.node}`

/** Samples (latencies), of one run or several, sorted. */
export const sorted = (...parts: Array<ArrayLike<number>>): Float64Array =>
  Float64Array.from(parts.flatMap((part) => Array.from(part))).sort()

/** The `q` quantile of sorted samples, to two decimals. */
export const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? 0 : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 100) / 100

/**
 * Opens an event stream (no keep-alive agent: each its own connection) and feeds its messages
 * and comments to `on`; `answered` gets the response, whatever its status.
 */
export function openStream (url: string, headers: Record<string, string>,
  on: { answered: (res: IncomingMessage) => void, event: (message: EventSourceMessage) => void, comment?: () => void }): ClientRequest {
  const req = request(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
    on.answered(res)
    if (res.statusCode !== 200) {
      res.resume()
      return
    }
    const parser = createParser({ onEvent: on.event, onComment: on.comment })
    res.setEncoding('utf8').on('data', (chunk: string) => parser.feed(chunk))
  })
  req.end()
  return req
}

// ---------------------------------------------------------------------------------------------
// /proc (Linux): NaN where it cannot tell (null in JSON)

function attempt<T> (work: () => T): T | null {
  try {
    return work()
  } catch {
    return null
  }
}
const proc = (path: string, read: (text: string) => number): number => attempt(() => read(readFileSync(path, 'utf8'))) ?? NaN

/** Resident set size in KiB (VmRSS). */
export const rssKb = (pid: number) => proc(`/proc/${pid}/status`, (text) => Number(/^VmRSS:\s+(\d+) kB/m.exec(text)![1]))

/** Open file descriptors of a process. */
export const openFiles = (pid: number) => attempt(() => readdirSync(`/proc/${pid}/fd`).length) ?? NaN

/** This process's hard limit of open files (Node raises its soft limit to it when it starts: the one that counts). */
export const openFilesLimit = () => proc('/proc/self/limits', (text) => Number(/^Max open files\s+\S+\s+(\d+)/m.exec(text)![1]))

/** CPU time (user + system, all threads) a process has used, in seconds (in 10 ms clock ticks). */
export const cpuSeconds = (pid: number) => proc(`/proc/${pid}/stat`, (stat) => {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
})

/** Busy CPU time of the whole machine (all cores, idle and iowait left out), in seconds. */
export const machineBusySeconds = () => proc('/proc/stat', (text) => {
  const fields = text.split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number)
  return fields.reduce((sum, value) => sum + value, 0) / 100 - (fields[3]! + fields[4]!) / 100
})

/** The TCP port a process listens on: its socket inodes against the LISTEN entries of /proc/net/tcp. */
export function listeningPort (pid: number): number | null {
  const sockets = new Set(attempt(() => readdirSync(`/proc/${pid}/fd`))?.map((fd) => attempt(() => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1])))
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of attempt(() => readFileSync(table, 'utf8').split('\n').slice(1)) ?? []) {
      const fields = line.trim().split(/\s+/)
      if (fields[3] === '0A' && sockets.has(fields[9])) return parseInt(fields[1]!.split(':')[1]!, 16)
    }
  }
  return null
}
