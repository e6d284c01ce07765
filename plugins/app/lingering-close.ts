import { PassThrough } from 'node:stream'
import fp from 'fastify-plugin'
import type { CredConfig } from '../../schemas/config.js'

/** How long the rest of a refused body is read, at most. */
export const LINGER_MS = 5000
/** How much of the rest of a refused body is read, at least (bodyLimit when that is larger). */
export const LINGER_BYTES = 16 * 1024 * 1024

/**
 * A lingering close, as nginx does it. A request refused before its body was read (a 413 for a
 * body over bodyLimit) is answered with `Connection: close`, and Node closes the socket as
 * soon as the answer is written. A client still sending its body then gets a reset, which on
 * Linux also throws away the answer it had not read yet: it sees a broken pipe, not the 413.
 * So such an answer is given a Content-Length and written at once, but the response only
 * ends (and the socket only closes) once the client has sent the rest of its body, read and
 * discarded here up to LINGER_BYTES (or bodyLimit) and LINGER_MS; a client sending more, or
 * for longer, is cut off.
 */
export default fp(async function lingeringClose (fastify, opts: { config: CredConfig }) {
  const maxBytes = Math.max(LINGER_BYTES, opts.config.bodyLimit)
  fastify.addHook('onSend', (request, reply, payload, done) => {
    const raw = request.raw
    if (reply.statusCode !== 413 || raw.complete || raw.destroyed || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) {
      done(null, payload)
      return
    }
    const answer = new PassThrough()
    let discarded = 0
    const finish = () => {
      clearTimeout(timer)
      raw.off('data', count)
      answer.end()
    }
    const cutOff = () => {
      clearTimeout(timer)
      raw.off('data', count)
      raw.socket?.destroy()
    }
    const count = (chunk: Buffer) => {
      discarded += chunk.length
      if (discarded > maxBytes) cutOff()
    }
    const timer = setTimeout(cutOff, LINGER_MS)
    raw.on('data', count)
    raw.once('end', finish)
    raw.once('close', () => clearTimeout(timer))
    raw.resume()
    reply.header('content-length', Buffer.byteLength(payload))
    answer.write(payload)
    done(null, answer)
  })
}, { name: 'cred-lingering-close', dependencies: ['cred-config'] })
