// Parses the sessionKey cookie and lets /auth set it.
export { default } from '@fastify/cookie'
