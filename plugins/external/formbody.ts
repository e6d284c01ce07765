import formbody from '@fastify/formbody'
import qs from 'qs'

// The original web UI posts /auth form-encoded, with nested fields in bracket notation
// (subscribe[Light][location]=Hall); qs reads that into the same shape as the JSON body.
export const autoConfig = {
  parser: (body: string) => qs.parse(body, { depth: 3, parameterLimit: 1000 })
}

export default formbody
