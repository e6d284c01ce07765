#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import { openDatabase, type Repositories } from '../db/index.js'
import { PERMISSIONS, type Permission } from '../schemas/apikeys.js'
import { failAndExit, packageVersion, parseCommandLine, usageError } from './cli.js'

const usage = `Usage: cred-gen (--admin | --write | --read) [--json] [--config PATH]
       cred-gen --list [--json] [--config PATH]
       cred-gen --revoke ID [--json] [--config PATH]

Creates an API key for the cred server, lists the existing keys, or revokes one.
It finds its configuration exactly like cred-server, so use the same credrc.

  --admin            create a key with admin permission (everything)
  --write            create a key with write permission (GET and POST, no API keys)
  --read             create a key with read permission (GET, no API keys)
  --list             list the keys: id, permission, created, revoked (never the secret)
  --revoke ID        revoke key ID: /auth refuses it and its sessions end at once
                     (the last unrevoked admin key cannot be revoked)
  --json             print JSON instead of text, for scripts
  -c, --config PATH  read settings from PATH instead of searching for credrc
  -h, --help         show this help
  -v, --version      show the version
`

async function main () {
  const args = parseCommandLine('cred-gen', () => parseArgs({
    strict: true,
    options: {
      admin: { type: 'boolean' },
      write: { type: 'boolean' },
      read: { type: 'boolean' },
      list: { type: 'boolean' },
      revoke: { type: 'string' },
      json: { type: 'boolean' },
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' }
    }
  }).values)
  if (args.help === true) {
    process.stdout.write(usage)
    return
  }
  if (args.version === true) {
    process.stdout.write(`cred-gen ${packageVersion()}\n`)
    return
  }
  const chosen = PERMISSIONS.filter((permission) => args[permission] === true)
  const list = args.list === true
  const revoke = args.revoke
  const actions = chosen.length + (list ? 1 : 0) + (revoke === undefined ? 0 : 1)
  if (actions !== 1 || (revoke !== undefined && !/^[1-9]\d*$/.test(revoke))) {
    const problem = actions === 0
      ? 'choose a permission (--admin, --write or --read), --list or --revoke ID'
      : actions > 1 ? 'choose only one of --admin, --write, --read, --list and --revoke' : `--revoke takes a key id, not '${revoke}'`
    usageError('cred-gen', problem)
  }

  let repos: Repositories
  try {
    const { config } = loadConfig(args.config)
    repos = await openDatabase(config.database)
  } catch (err) {
    failAndExit('cred-gen', err)
  }
  try {
    if (list) await listKeys(repos, args.json === true)
    else if (revoke !== undefined) await revokeKey(repos, Number(revoke), args.json === true)
    else await createKey(repos, chosen[0] as Permission, args.json === true)
  } catch (err) {
    failAndExit('cred-gen', err)
  } finally {
    await repos.close()
  }
}

async function createKey (repos: Repositories, permission: Permission, json: boolean) {
  const key = await repos.apikeys.create(permission)
  process.stdout.write(json
    ? `${JSON.stringify({ id: key.id, apikey: key.apikey, permission: key.permission })}\n`
    : `Generated API key with ${permission} permission: ${key.apikey}\n`)
}

async function revokeKey (repos: Repositories, id: number, json: boolean) {
  const result = await repos.apikeys.revoke(id, Date.now())
  if (result.outcome === 'not-found') throw new Error(`no API key with id ${id}`)
  if (result.outcome === 'last-admin') throw new Error(`key ${id} is the last unrevoked admin key: create another admin key first`)
  const { apikey } = result
  const revoked = new Date(apikey.revoked!).toISOString()
  process.stdout.write(json
    ? `${JSON.stringify({ id: apikey.id, permission: apikey.permission, revoked })}\n`
    : `Revoked API key ${apikey.id} (${apikey.permission} permission) at ${revoked}\n`)
}

async function listKeys (repos: Repositories, json: boolean) {
  const keys = await repos.apikeys.list({})
  const rows = keys.map((key) => ({
    id: key.id,
    permission: key.permission,
    created: new Date(key.created).toISOString(),
    revoked: key.revoked === null ? null : new Date(key.revoked).toISOString()
  }))
  if (json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`)
    return
  }
  if (rows.length === 0) {
    process.stdout.write('No API keys yet. Create one with: cred-gen --admin\n')
    return
  }
  const lines = [
    ['ID', 'PERMISSION', 'CREATED', 'REVOKED'],
    ...rows.map((row) => [String(row.id), row.permission, row.created, row.revoked ?? '-'])
  ]
  const widths = [0, 1, 2].map((col) => Math.max(...lines.map((line) => line[col]!.length)))
  for (const line of lines) {
    process.stdout.write(`${line.map((cell, col) => col < 3 ? cell.padEnd(widths[col]!) : cell).join('  ')}\n`)
  }
}

await main()
