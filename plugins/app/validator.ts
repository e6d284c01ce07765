import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import fp from 'fastify-plugin'

// verbose: an error carries the schema it failed, so the error handler can word it (plugins/app/errors.ts)
const common: Options = { useDefaults: true, removeAdditional: true, allErrors: false, allowUnionTypes: true, verbose: true }

/**
 * The first property of coerced input that became Infinity. Ajv coerces `1e400` or `Infinity`
 * to Infinity and then lets it pass `integer`, `minimum` and `maximum` (they only look at finite
 * numbers): `/events/stream?after=1e400` would open a stream that never sends anything, and
 * `?wait=Infinity` would get past the 60 s limit.
 */
function nonFinite (data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  // (a for…in loop: no array of entries to make for every request)
  for (const key in data) {
    const value = (data as Record<string, unknown>)[key]
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return key
    } else if (Array.isArray(value) && value.some((item) => typeof item === 'number' && !Number.isFinite(item))) {
      return key
    }
  }
  return undefined
}

/** The properties a schema types as integers. */
function integerKeys (schema: unknown): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> } | null)?.properties ?? {}
  return Object.keys(properties).filter((key) => properties[key]?.type === 'integer')
}

/**
 * The first of `keys` whose text is not written in decimal digits. Ajv's coercion reads
 * `0x10`, ` 16` or `1e1` as 16 or 10: `/events/0x10` would be event 16.
 */
function notDecimal (data: unknown, keys: string[]): string | undefined {
  if (keys.length === 0 || typeof data !== 'object' || data === null) return undefined
  for (const key of keys) {
    const value = (data as Record<string, unknown>)[key]
    if (typeof value === 'string' && !/^(?:\d+|-\d*[1-9]\d*)$/.test(value)) return key
  }
  return undefined
}

/** An error for `key` in Ajv's shape, so that Fastify names it as "<part>/<key> <message>". */
const typeError = (key: string, message: string): ErrorObject => ({
  instancePath: `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`,
  schemaPath: '#/type',
  keyword: 'type',
  params: {},
  message
})

/**
 * `validate`, also refusing what coercion turned into Infinity (as "<part>/<key> must be a
 * finite number") and integers not written in decimal digits.
 */
function finite (validate: ValidateFunction): ValidateFunction {
  const integers = integerKeys(validate.schema)
  const checked = function (data: unknown, context?: Parameters<ValidateFunction>[1]) {
    // read before validating: coercion replaces the text with the number
    const undecimal = notDecimal(data, integers)
    if (!validate(data, context)) {
      checked.errors = validate.errors
      return false
    }
    const key = nonFinite(data)
    if (key !== undefined) {
      checked.errors = [typeError(key, 'must be a finite number')]
      return false
    }
    if (undecimal !== undefined) {
      checked.errors = [typeError(undecimal, 'must be an integer written in decimal digits')]
      return false
    }
    return true
  } as ValidateFunction
  checked.schema = validate.schema
  checked.schemaEnv = validate.schemaEnv
  checked.errors = null
  return checked
}

/**
 * Query strings and path parameters are text, so they are coerced to the schema's types
 * (`limit=10` → 10), as Fastify does by default. JSON bodies are not coerced: a number where
 * a string belongs is a 400, and an event's `value` keeps the type it was sent with
 * (`allowUnionTypes` lets it be a string, number, boolean or null). Set inside cred, so a
 * host app keeps its own validator.
 */
export default fp(async function validation (fastify) {
  const coercing = new Ajv({ ...common, coerceTypes: 'array' })
  const strict = new Ajv({ ...common, coerceTypes: false })
  fastify.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? strict.compile(schema) : finite(coercing.compile(schema)))
}, { name: 'cred-validator' })
