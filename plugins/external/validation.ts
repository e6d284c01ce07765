import { Ajv, type Options } from 'ajv'
import fp from 'fastify-plugin'

const common: Options = { useDefaults: true, removeAdditional: true, allErrors: false, allowUnionTypes: true }

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
    (httpPart === 'body' ? strict : coercing).compile(schema))
}, { name: 'cred-validation' })
