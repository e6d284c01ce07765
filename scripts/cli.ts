import { ConfigError } from '../config/resolve.js'
import { DatabaseUnavailableError } from '../db/index.js'

/** Runs the argument parser; a usage mistake prints the message and usage and exits 2. */
export function parseCommandLine<T> (command: string, usage: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    process.stderr.write(`${command}: ${(err as Error).message}\n${usage}`)
    process.exit(2)
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
