import cookie from '@fastify/cookie'
import fp from 'fastify-plugin'

// The sessionKey cookie: read by auth only for a request without an Authorization header,
// set and cleared by /auth. So no hook runs on every request (`hook: false`, which also
// drops the plugin's onSend hook); fastify.parseCookie and fastify.serializeCookie do the work
// where it is needed.
export default fp(async function cookies (fastify) {
  await fastify.register(cookie, { hook: false })
}, { name: 'cred-cookie' })
