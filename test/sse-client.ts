import { request, type IncomingHttpHeaders } from 'node:http'
import { createParser } from 'eventsource-parser'

export interface SseMessage {
  id?: string
  event?: string
  data: string
}

/** A Server-Sent Events connection, parsed as an EventSource would (eventsource-parser). */
export interface SseConnection {
  status: number
  headers: IncomingHttpHeaders
  /** the body, when the answer was not a stream (an error envelope) */
  body: string
  messages: SseMessage[]
  /** heartbeat comment lines seen */
  comments: string[]
  /** resolves once `count` messages have arrived in all */
  received: (count: number, timeoutMs?: number) => Promise<SseMessage[]>
  /** resolves when the server ends the response */
  ended: Promise<void>
  /** stop reading (the socket stays open) / start again */
  pause: () => void
  resume: () => void
  close: () => void
}

/** Opens `url` (GET) and parses the event stream. Resolves once the response head has arrived. */
export function openStream (url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const messages: SseMessage[] = []
      const comments: string[] = []
      const waiters: Array<() => void> = []
      let body = ''
      const parser = createParser({
        onEvent: ({ id, event, data }) => {
          messages.push({ ...(id === undefined ? {} : { id }), ...(event === undefined ? {} : { event }), data })
          waiters.forEach((wake) => wake())
        },
        onComment: (comment) => comments.push(`:${comment}`)
      })
      const streaming = (res.headers['content-type'] ?? '').startsWith('text/event-stream')
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (streaming) parser.feed(chunk)
        else body += chunk
      })
      const ended = new Promise<void>((resolve) => {
        res.on('end', resolve)
        res.on('close', resolve)
        res.on('error', () => resolve())
      })
      const connection: SseConnection = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        get body () { return body },
        messages,
        comments,
        received (count, timeoutMs = 10_000) {
          return new Promise((resolve, reject) => {
            const check = () => {
              if (messages.length >= count) {
                clearTimeout(timer)
                resolve(messages.slice(0, count))
                return true
              }
              return false
            }
            const timer = setTimeout(() => reject(new Error(`only ${messages.length} of ${count} messages arrived`)), timeoutMs)
            if (!check()) waiters.push(() => { check() })
          })
        },
        ended,
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy()
      }
      if (streaming) resolve(connection)
      else res.on('end', () => resolve(connection))
    })
    req.on('error', reject)
    req.end()
  })
}
