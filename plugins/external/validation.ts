import { Ajv } from 'ajv'
import fp from 'fastify-plugin'

/**
 * Fastify's own Ajv settings (coercion of query strings, defaults, removal of extra fields)
 * plus `allowUnionTypes`, so an event's `value` may be a string, number, boolean or null
 * without being coerced from one to another. Set here, inside cred, so a host app keeps its own.
 */
export default fp(async function validation (fastify) {
  const ajv = new Ajv({
    coerceTypes: 'array',
    useDefaults: true,
    removeAdditional: true,
    allErrors: false,
    allowUnionTypes: true
  })
  fastify.setValidatorCompiler(({ schema }) => ajv.compile(schema))
}, { name: 'cred-validation' })
