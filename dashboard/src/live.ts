// New events as they are posted: the Server-Sent Events stream, or, when the browser or a proxy
// cannot hold it open, long polling with `after=` (no event is missed or repeated either way).
import { api, isSessionEnded, type CredEvent } from './api.js'

export type LiveStatus = 'live' | 'reconnecting' | 'polling' | 'offline'

export interface LiveOptions {
  /** events with higher ids than this are new */
  after: number
  /** new events, oldest first */
  onEvents: (events: CredEvent[]) => void
  onStatus: (status: LiveStatus) => void
  onSessionEnded: () => void
}

const POLL_WAIT_SECONDS = 20
const RETRY_MS = 5000
/** While polling, the stream is tried again after this long, then twice as long each time it fails, up to STREAM_RETRY_MAX_MS. */
export const STREAM_RETRY_MS = 30_000
const STREAM_RETRY_MAX_MS = 5 * 60_000

export function startLive (options: LiveOptions, streamRetryMs = STREAM_RETRY_MS): { stop: () => void } {
  let lastId = options.after
  let nextStreamTry = streamRetryMs
  const canStream = typeof EventSource === 'function'
  let stopped = false
  let source: EventSource | null = null
  let polling: AbortController | null = null
  let status: LiveStatus | null = null

  const setStatus = (next: LiveStatus) => {
    if (next !== status) options.onStatus(status = next)
  }

  function accept (events: CredEvent[]) {
    const fresh = events.filter((event) => event.id > lastId).sort((a, b) => a.id - b.id)
    if (fresh.length === 0) return
    lastId = fresh[fresh.length - 1]!.id
    options.onEvents(fresh)
  }

  function openStream () {
    // EventSource reconnects by itself, sending Last-Event-ID: the server resumes after it
    source = new EventSource(`events/stream?after=${lastId}`)
    source.addEventListener('open', () => {
      nextStreamTry = streamRetryMs
      setStatus('live')
    })
    source.addEventListener('event', (message) => accept([JSON.parse((message as MessageEvent<string>).data) as CredEvent]))
    source.addEventListener('error', () => {
      if (source?.readyState !== EventSource.CLOSED) return setStatus('reconnecting')
      // refused (not signed in, too many streams) or not a stream at all: poll instead
      source = null
      void poll()
    })
  }

  async function poll () {
    setStatus('polling')
    // a proxy or network that broke the stream may let it through later: try again now and then
    const tryStreamAt = canStream ? Date.now() + nextStreamTry : Number.POSITIVE_INFINITY
    nextStreamTry = Math.min(nextStreamTry * 2, STREAM_RETRY_MAX_MS)
    const streamAgain = canStream ? setTimeout(() => polling?.abort(), tryStreamAt - Date.now()) : undefined
    // (stop() ends the loop: `stopped` changes outside it)
    for (;;) {
      if (stopped) break
      if (Date.now() >= tryStreamAt) {
        clearTimeout(streamAgain)
        openStream()
        return
      }
      polling = new AbortController()
      try {
        const { events } = await api<{ events: CredEvent[] }>(`events?full=true&after=${lastId}&wait=${POLL_WAIT_SECONDS}`, { signal: polling.signal })
        setStatus('polling')
        accept(events)
      } catch (err) {
        if (stopped) break
        if (Date.now() >= tryStreamAt) continue
        if (isSessionEnded(err)) {
          clearTimeout(streamAgain)
          return options.onSessionEnded()
        }
        setStatus('offline')
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
    clearTimeout(streamAgain)
  }

  if (canStream) openStream()
  else void poll()

  return {
    stop () {
      stopped = true
      source?.close()
      polling?.abort()
    }
  }
}
