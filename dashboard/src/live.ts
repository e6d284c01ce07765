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

export function startLive (options: LiveOptions): { stop: () => void } {
  let lastId = options.after
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
    source.addEventListener('open', () => setStatus('live'))
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
    while (!stopped) {
      polling = new AbortController()
      try {
        const { events } = await api<{ events: CredEvent[] }>(`events?full=true&after=${lastId}&wait=${POLL_WAIT_SECONDS}`, { signal: polling.signal })
        setStatus('polling')
        accept(events)
      } catch (err) {
        if (stopped) return
        if (isSessionEnded(err)) return options.onSessionEnded()
        setStatus('offline')
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
  }

  if (typeof EventSource === 'function') openStream()
  else void poll()

  return {
    stop () {
      stopped = true
      source?.close()
      polling?.abort()
    }
  }
}
