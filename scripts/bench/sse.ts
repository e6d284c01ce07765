// Server-Sent Events read line by line, as an EventSource (and test/sse-client.ts) does, but
// handing each message to a callback instead of keeping them: the benchmark reads tens of
// thousands of messages over a thousand connections.

export interface SseMessage {
  id?: string
  event?: string
  data: string
}

export class SseParser {
  private buffer = ''
  private id: string | undefined
  private event: string | undefined
  private dataLines: string[] = []
  /** comment lines (`: connected`, `: heartbeat`) seen */
  comments = 0

  constructor (private readonly onMessage: (message: SseMessage) => void) {}

  /** Feeds a chunk of the response body (decoded as UTF-8). */
  push (chunk: string): void {
    this.buffer += chunk
    let start = 0
    let newline: number
    while ((newline = this.buffer.indexOf('\n', start)) !== -1) {
      let end = newline
      if (end > start && this.buffer.charCodeAt(end - 1) === 13) end-- // CRLF
      this.line(this.buffer.slice(start, end))
      start = newline + 1
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.slice(start)
  }

  private line (line: string): void {
    if (line === '') {
      if (this.dataLines.length > 0 || this.id !== undefined) {
        const message: SseMessage = { data: this.dataLines.join('\n') }
        if (this.id !== undefined) message.id = this.id
        if (this.event !== undefined) message.event = this.event
        this.onMessage(message)
      }
      this.id = undefined
      this.event = undefined
      this.dataLines = []
      return
    }
    if (line.charCodeAt(0) === 58) { // ':' starts a comment
      this.comments++
      return
    }
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === 'data') this.dataLines.push(value)
    else if (field === 'id') this.id = value
    else if (field === 'event') this.event = value
  }
}
