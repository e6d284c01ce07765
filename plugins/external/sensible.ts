// httpErrors and reply helpers (reply.notFound() ...), turned into the envelope by plugins/app/errors.ts
export { default } from '@fastify/sensible'
