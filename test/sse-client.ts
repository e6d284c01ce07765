import { request, type IncomingHttpHeaders } from 'node:http'

export interface SseMessage {
  id?: string
  event?: string
  data: string
}

/** A Server-Sent Events connection read line by line, as an EventSource would. */
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
      let buffer = ''
      let body = ''
      let current: SseMessage = { data: '' }
      let dataLines: string[] = []
      const streaming = (res.headers['content-type'] ?? '').startsWith('text/event-stream')
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        if (!streaming) {
          body += chunk
          return
        }
        buffer += chunk
        let newline: number
        while ((newline = buffer.indexOf('\n')) !== -1) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (line === '') {
            if (dataLines.length > 0 || current.id !== undefined) {
              messages.push({ ...current, data: dataLines.join('\n') })
              waiters.forEach((wake) => wake())
            }
            current = { data: '' }
            dataLines = []
          } else if (line.startsWith(':')) {
            comments.push(line)
          } else {
            const colon = line.indexOf(':')
            const field = colon === -1 ? line : line.slice(0, colon)
            const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'data') dataLines.push(value)
            else if (field === 'id') current.id = value
            else if (field === 'event') current.event = value
          }
        }
      })
      const ended = new Promise<void>((resolveEnd) => {
        res.on('end', resolveEnd)
        res.on('close', resolveEnd)
        res.on('error', () => resolveEnd())
      })
      const connection: SseConnection = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        get body () { return body },
        messages,
        comments,
        received (count, timeoutMs = 10_000) {
          return new Promise((resolveCount, rejectCount) => {
            const check = () => {
              if (messages.length >= count) {
                clearTimeout(timer)
                resolveCount(messages.slice(0, count))
                return true
              }
              return false
            }
            const timer = setTimeout(() => rejectCount(new Error(`only ${messages.length} of ${count} messages arrived`)), timeoutMs)
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
