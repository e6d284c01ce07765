#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=50
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { Server as NetServer } from 'node:net'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import closeWithGrace from 'close-with-grace'
import Fastify, { type FastifyInstance } from 'fastify'
import cred, { clientErrorHandler, errorHandler, frameworkErrors, nodeAnswersInEnvelope, notFoundHandler } from '../app.js'
import { keepTickObjectShape } from '../lib/tick-shape.js'
import { loadConfig } from '../config/load.js'
import { ConfigError } from '../config/resolve.js'
import { serverLogging } from '../config/logging.js'
import type { CredConfig } from '../schemas/config.js'
import { failAndExit, packageVersion, parseCommandLine, usageError } from './cli.js'

const usage = `Usage: cred-server [--config PATH] [--port PORT] [--host HOST] [--log-level LEVEL]

Starts the cred API server.

  -c, --config PATH  read settings from PATH instead of searching for credrc in
                     ./credrc (or credrc.yaml, credrc.yml), ~/.credrc,
                     $XDG_DATA_HOME/cred-server/credrc, and
                     <first of $XDG_DATA_DIRS>/cred-server/credrc
  -p, --port PORT    listen on PORT (0: any free port); else $PORT, else the
                     port setting
      --host HOST    listen on HOST ('*': all interfaces); else $HOST, else the
                     host setting
  -l, --log-level LEVEL
                     fatal, error, warn, info, debug, trace or silent
                     (overrides the logLevel setting)
      --log-format FORMAT
                     json (one JSON object a line, for log collectors) or
                     pretty (readable lines); default: pretty on a terminal,
                     json otherwise
  -h, --help         show this help
  -v, --version      show the version

Without a credrc, it serves on port 5000 on all interfaces with the SQLite file
cred-server.db in the working directory. DATABASE_URL, when set, overrides the
database settings. Create the first API key with: npx cred-gen --admin

SIGTERM or SIGINT shuts it down gracefully: no new connections, requests in
progress finish (for at most shutdownGrace seconds), event streams end, the
database is closed, exit code 0. A second signal, or the grace period running
out, exits at once with code 1.
`

function readTls (config: CredConfig, source: string) {
  const read = (key: 'sslcert' | 'sslkey') => {
    try {
      return readFileSync(config[key])
    } catch (err) {
      throw new ConfigError(source, key, `cannot read ${config[key]} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
    }
  }
  const tls = { cert: read('sslcert'), key: read('sslkey') }
  // Check the PEM contents here, so a bad file is one config line and not an OpenSSL stack trace.
  const check = (key: 'sslcert' | 'sslkey', options: SecureContextOptions, what: string) => {
    try {
      createSecureContext(options)
    } catch (err) {
      throw new ConfigError(source, key, `${config[key]} ${what} (${(err as Error).message})`)
    }
  }
  check('sslcert', { cert: tls.cert }, 'is not a PEM certificate')
  check('sslkey', tls, 'is not a PEM private key matching the certificate')
  return tls
}

/** Answer to requests that arrive on an open connection once the server is closing. */
const shuttingDown = { status: 503, message: 'Service Unavailable: the server is shutting down' } as const

/** Resolves when `server` has no open connection left, or after `ms`. */
async function drained (server: Server, ms: number): Promise<void> {
  const until = Date.now() + ms
  for (;;) {
    const open = await new Promise<number>((resolve) => server.getConnections((err, count) => resolve(err === null ? count : 0)))
    if (open === 0 || Date.now() >= until) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/**
 * Graceful shutdown on SIGTERM and SIGINT (and on an uncaught error, which then exits 1),
 * with close-with-grace, bounded by `shutdownGrace`; a second signal, or the grace period
 * running out, exits 1 at once.
 *
 * 1. The listening socket closes: new connections are refused. From now on every response
 *    says `Connection: close`, so clients stop reusing their connections.
 * 2. For a moment (half a second at most, less with a short grace period, and no longer
 *    than connections stay open) requests still arriving on open keep-alive connections are
 *    served. A client that got a keep-alive answer just before the signal and sent its next
 *    request at once gets an answer then, not a reset connection: for a POST a reset would
 *    leave it unsure whether its event was stored.
 * 3. `app.close()` closes the idle connections, ends event streams and long polls (the live
 *    plugin's preClose hook), waits for the requests in progress and closes the database
 *    (the repositories' onClose hook). Connections that become idle later are closed too
 *    (Node would keep them for the keep-alive timeout), and a request arriving on one
 *    meanwhile gets a 503 in the usual envelope.
 */
function closeGracefully (app: FastifyInstance, graceSeconds: number) {
  let draining = false
  let closing = false
  // callback style: every request passes here, and a promise per hook adds up
  app.addHook('onRequest', (_request, reply, done) => {
    if (closing) reply.code(503).header('connection', 'close').send(shuttingDown)
    else done()
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close')
    done(null, payload)
  })
  closeWithGrace({
    delay: graceSeconds * 1000,
    logger: false,
    // SIGTERM and SIGINT only: the other signals keep their usual meaning (SIGUSR2 is a
    // debugging or benchmarking hook, SIGHUP and SIGQUIT end the process as before)
    skip: ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2'],
    onSecondSignal (signal) {
      app.log.error(`${signal} received again while closing: exiting now`)
    },
    onTimeout () {
      app.log.error(`requests still in progress after the shutdown grace period (shutdownGrace: ${graceSeconds} s): exiting now`)
    }
  }, async ({ signal, err }) => {
    draining = true
    if (err !== undefined) app.log.fatal({ err }, 'uncaught error: closing')
    else app.log.info(signal === undefined ? 'closing' : `${signal} received: closing`)
    if (app.server.listening) {
      // net.Server's close: only the listening socket. (http.Server's would also drop the idle
      // keep-alive connections now; app.close() does that below, after the pause.)
      NetServer.prototype.close.call(app.server)
      await drained(app.server, Math.min(500, graceSeconds * 250))
    }
    closing = true
    const sweep = setInterval(() => app.server.closeIdleConnections(), 100).unref()
    try {
      await app.close()
    } catch (closeError) {
      app.log.error({ err: closeError }, 'error while closing')
      throw closeError
    } finally {
      clearInterval(sweep)
    }
    app.log.info('closed')
  })
}

/** Where the server listens, and what set it: a flag, the environment or credrc (for messages). */
interface ListenSetting<T> { value: T, from: string }

const parsePort = (text: string): number | undefined => /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined

/** --port, else $PORT (the twelve-factor convention), else the port setting. */
function listenPort (flag: string | undefined, env: string | undefined, setting: number, file: string | null): ListenSetting<number> {
  if (flag !== undefined) return { value: parsePort(flag)!, from: '--port' }
  if (env !== undefined && env !== '') {
    const value = parsePort(env)
    if (value === undefined) throw new ConfigError('the environment', 'PORT', `expected a port number from 0 to 65535, got '${env}'`)
    return { value, from: 'PORT' }
  }
  return { value: setting, from: `port in ${file ?? 'the built-in defaults'}` }
}

/** --host, else $HOST, else the host setting; '*' (or '') is every interface. */
function listenHost (flag: string | undefined, env: string | undefined, setting: string): ListenSetting<string> {
  const chosen = flag ?? (env !== undefined && env !== '' ? env : setting)
  return { value: chosen === '*' || chosen === '' ? '0.0.0.0' : chosen, from: flag !== undefined ? '--host' : env !== undefined && env !== '' ? 'HOST' : 'host' }
}

/** Throws listenError's message when `host:port` cannot be listened on now (port 0 always can). */
async function portAvailable (host: ListenSetting<string>, port: ListenSetting<number>): Promise<void> {
  if (port.value === 0) return
  const probe = new NetServer()
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err) => reject(listenError(err, host, port)))
    probe.listen({ host: host.value, port: port.value, exclusive: true }, () => probe.close(() => resolve()))
  })
}

/** One line: where it could not listen, why, and which setting or flag to change. */
function listenError (err: unknown, host: ListenSetting<string>, port: ListenSetting<number>): Error {
  const code = (err as NodeJS.ErrnoException).code
  const where = `cannot listen on ${host.value}:${port.value}`
  if (code === 'EADDRINUSE') return new Error(`${where}: the port is in use (EADDRINUSE); choose another with --port, PORT or the port setting (now from ${port.from})`)
  if (code === 'EACCES') return new Error(`${where}: not allowed (EACCES: ports below 1024 need privileges); choose another with --port, PORT or the port setting (now from ${port.from})`)
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new Error(`${where}: no such interface on this machine (${code}); choose another with --host, HOST or the host setting (now from ${host.from})`)
  return new Error(`${where}: ${(err as Error).message}`)
}

async function main () {
  // a process-wide setting, so the server's and never the plugin's (a host app decides for its process)
  keepTickObjectShape()
  const args = parseCommandLine('cred-server', () => parseArgs({
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      'log-level': { type: 'string', short: 'l' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' }
    }
  }).values)
  if (args.help === true) {
    process.stdout.write(usage)
    return
  }
  if (args.version === true) {
    process.stdout.write(`cred-server ${packageVersion()}\n`)
    return
  }
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
  if (args['log-level'] !== undefined && !levels.includes(args['log-level'])) {
    usageError('cred-server', `--log-level must be one of ${levels.join(', ')}`)
  }
  const format = args['log-format'] ?? (process.stdout.isTTY ? 'pretty' : 'json')
  if (format !== 'json' && format !== 'pretty') usageError('cred-server', `--log-format must be json or pretty, not '${format}'`)
  if (args.port !== undefined && parsePort(args.port) === undefined) usageError('cred-server', `--port must be a port number from 0 to 65535, not '${args.port}'`)
  if (args.host === '') usageError('cred-server', '--host needs an interface name or address, or \'*\' for all')
  let config: CredConfig
  let file: string | null
  let https: { cert: Buffer, key: Buffer } | null = null
  let port: ListenSetting<number>
  let host: ListenSetting<string>
  try {
    ({ config, file } = loadConfig(args.config))
    const level = args['log-level']
    if (level !== undefined) config = { ...config, logLevel: level as CredConfig['logLevel'] }
    if (config.SSL) https = readTls(config, file ?? 'built-in defaults')
    port = listenPort(args.port, process.env.PORT, config.port, file)
    host = listenHost(args.host, process.env.HOST, config.host)
    // before the database is opened (and perhaps created and migrated): a port in use is the
    // commonest start-up mistake, and should cost nothing
    await portAvailable(host, port)
  } catch (err) {
    failAndExit('cred-server', err)
  }

  // A client gets headersTimeout to send its headers and requestTimeout for the whole request,
  // so connections dribbling bytes are cut off (Node checks them every second here, not every
  // 30 s). Answers may take as long as they need: streams and long polls are not affected.
  // An HTTP/1.1 request without Host is answered by nodeAnswersInEnvelope, not with Node's bare 400.
  const node = {
    headersTimeout: config.headersTimeout * 1000,
    requestTimeout: config.requestTimeout * 1000,
    connectionsCheckingInterval: 1000,
    requireHostHeader: false
  }
  const app = Fastify({
    ...serverLogging(config.logLevel, format),
    requestTimeout: node.requestTimeout,
    // app.close() closes keep-alive connections with no request in progress at once (Node's
    // server.close() does it; this is Fastify's default there), and cred answers requests
    // arriving on the others meanwhile with its own 503 (closeGracefully)
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    // opening the database may wait for another instance applying the migrations, bounded by
    // the database's own timeouts: Fastify's 10 s for a plugin would cut that off with an obscure error
    pluginTimeout: 120_000,
    // the few errors Fastify's router, or Node's parser, answers before any plugin runs, in cred's envelope too
    frameworkErrors,
    clientErrorHandler,
    // behind a reverse proxy: request.ip (the failed-auth limit's address), protocol and host from X-Forwarded-*
    trustProxy: config.trustProxy,
    ...(https === null ? { http: node } : { https: { ...https, ...node } })
  })
  nodeAnswersInEnvelope(app)
  app.log.info(file === null
    ? 'no credrc found: using the built-in defaults'
    : `using config file ${file}`)
  // before cred is registered, so that its routes inherit the hooks
  closeGracefully(app, config.shutdownGrace)
  app.register(cred, { prefix: config.approot, config })
  if (config.approot !== '') {
    // Outside the approot prefix, answer as inside it (with no approot, cred's own handlers
    // already cover every URL).
    app.setNotFoundHandler(notFoundHandler)
    app.setErrorHandler(errorHandler)
  }
  try {
    await app.ready()
  } catch (err) {
    failAndExit('cred-server', err)
  }

  try {
    await app.listen({ host: host.value, port: port.value })
  } catch (err) {
    await app.close().catch(() => {})
    failAndExit('cred-server', listenError(err, host, port))
  }
  // the port actually bound: `port: 0` asks the system for a free one
  const address = app.server.address()
  const bound = typeof address === 'object' && address !== null ? address.port : port.value
  app.log.info(`cred is serving ${config.SSL ? 'https' : 'http'}://${host.value}:${bound}${config.approot}/ (API docs at ${config.approot}/documentation)`)
}

await main()
