import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../config/resolve.js'
import { DatabaseUnavailableError } from '../db/index.js'

/** A usage mistake: one line saying what is wrong, one pointing to --help, exit code 2. */
export function usageError (command: string, problem: string): never {
  process.stderr.write(`${command}: ${problem}\nSee '${command} --help'.\n`)
  process.exit(2)
}

/** Runs the argument parser; a usage mistake is a `usageError`. */
export function parseCommandLine<T> (command: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    usageError(command, (err as Error).message)
  }
}

/** The package's version, from the package.json above this module (in the sources or in dist/). */
export function packageVersion (): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
    if (dirname(dir) === dir) return 'unknown'
  }
}

/** Operator mistakes and unreachable databases end the program with one line and exit code 1. */
export function failAndExit (command: string, err: unknown): never {
  if (err instanceof ConfigError || err instanceof DatabaseUnavailableError) {
    process.stderr.write(`${command}: ${err.message}\n`)
  } else {
    const message = err instanceof Error ? err.message : String(err)
    process.stderr.write(`${command}: ${message.split('\n')[0]}\n`)
  }
  process.exit(1)
}
