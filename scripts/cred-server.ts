#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import Fastify, { type FastifyError } from 'fastify'
import cred from '../app.js'
import { loadConfig } from '../config/load.js'
import { ConfigError } from '../config/resolve.js'
import type { CredConfig } from '../schemas/config.js'
import { failAndExit, parseCommandLine } from './cli.js'

const usage = `Usage: cred-server [--config PATH]

Starts the cred API server.

  -c, --config PATH  read settings from PATH instead of searching for credrc in
                     ./credrc (or credrc.yaml, credrc.yml), ~/.credrc,
                     $XDG_DATA_HOME/cred-server/credrc, and
                     <first of $XDG_DATA_DIRS>/cred-server/credrc
  -h, --help         show this help

Without a credrc, it serves on port 5000 on all interfaces with the SQLite file
cred-server.db in the working directory. DATABASE_URL, when set, overrides the
database settings. Create the first API key with: npx cred-gen --admin
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

async function main () {
  const args = parseCommandLine('cred-server', usage, () => parseArgs({ strict: true, options: {
    config: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' }
  } }).values)
  if (args.help === true) {
    process.stdout.write(usage)
    return
  }
  let config: CredConfig
  let file: string | null
  let https: { cert: Buffer, key: Buffer } | null = null
  try {
    ({ config, file } = loadConfig(args.config))
    if (config.SSL) https = readTls(config, file ?? 'built-in defaults')
  } catch (err) {
    failAndExit('cred-server', err)
  }

  const app = Fastify({
    logger: { level: config.logLevel },
    ...(https === null ? {} : { https })
  })
  app.log.info(file === null
    ? 'no credrc found: using the built-in defaults'
    : `using config file ${file}`)
  app.register(cred, { prefix: config.approot, config })
  if (config.approot !== '') {
    // Outside the approot prefix, answer in the same {status, message} envelope as inside it
    // (with no approot, cred's own handlers already cover every URL).
    app.setNotFoundHandler((_request, reply) => reply.code(404).send({ status: 404, message: 'Not Found' }))
    app.setErrorHandler((err: FastifyError, request, reply) => {
      const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
      if (status === 500) request.log.error({ err }, 'request failed')
      return reply.code(status).send({ status, message: status === 500 ? 'Internal Server Error' : err.message })
    })
  }
  try {
    await app.ready()
  } catch (err) {
    failAndExit('cred-server', err)
  }

  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info(`${signal} received: closing`)
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'error while closing')
      process.exit(1)
    })
  }
  process.once('SIGINT', () => shutdown('SIGINT'))
  process.once('SIGTERM', () => shutdown('SIGTERM'))

  const host = config.host === '*' || config.host === '' ? '0.0.0.0' : config.host
  try {
    await app.listen({ host, port: config.port })
  } catch (err) {
    await app.close().catch(() => {})
    failAndExit('cred-server', new Error(`cannot listen on ${host}:${config.port}: ${(err as Error).message}`))
  }
  // the port actually bound: `port: 0` asks the system for a free one
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  app.log.info(`cred is serving ${config.SSL ? 'https' : 'http'}://${host}:${port}${config.approot}/ (API docs at ${config.approot}/documentation)`)
}

await main()
