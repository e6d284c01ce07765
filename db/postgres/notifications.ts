import type postgres from 'postgres'
import { DatabaseUnavailableError, type AccessEnded, type CommittedEvents, type EventNotifications } from '../repositories.js'
import { connect, connectionOptions, deadline, noAnswer, reason, type PostgresSettings, type PostgresTimeouts } from './connection.js'

/** The LISTEN/NOTIFY channel that tells every instance new events were committed (payload: the highest id). */
export const eventsChannel = 'cred_events'
/**
 * Told when a session ends (payload `client:<id>`) or a key is revoked (`apikey:<id>`): every
 * instance drops its cached sessions and ends what it holds open for them. Any other payload
 * (an empty one from an older instance) means "something ended": the instance re-checks.
 */
export const sessionsChannel = 'cred_sessions'

/** What a notification on `sessionsChannel` says ended. */
export function endedByPayload (payload: string): AccessEnded {
  const match = /^(client|apikey):(\d{1,10})$/.exec(payload)
  if (match === null) return 'unknown'
  const id = Number(match[2])
  return match[1] === 'client' ? { clientIds: [id] } : { apikeyIds: [id] }
}

/** What the repositories do with what the listener hears, before the service's listeners hear it. */
interface Heard {
  /** events up to `latest` were committed (NaN when the payload names no id) */
  events (latest: number): void
  /** sessions or keys ended, as a `sessionsChannel` payload says ('' after a reconnect: anything may have) */
  ended (payload: string): void
  /** the listener (re)connected: what was committed meanwhile went unnoticed */
  connected (): void
}

/**
 * LISTEN on a connection of its own (the pool's connections come and go), both channels on
 * one connection, so that notifications arrive in commit order. When that connection drops,
 * `listening()` is false at once, and it listens again — retrying, a little slower each time
 * up to every 2 s, while the server is away — then tells `connected` once both channels are
 * heard again, so the caller can read what was committed meanwhile. (postgres.js's own
 * listen() listens again too, but tells no one that its connection went away, which
 * `listening()` must: see the test "while the event listener cannot listen again".)
 */
async function listenForEvents (settings: PostgresSettings, timeouts: PostgresTimeouts, heard: Heard) {
  let closed = false
  let listening = false
  let attempt = 0
  let retry: NodeJS.Timeout | undefined
  // onnotify and onclose are options postgres.js's own listen() uses; its types leave them out
  const options = {
    ...connectionOptions(settings, timeouts, 0),
    idle_timeout: null,
    max_lifetime: null,
    onnotify: (channel: string, payload: string) => {
      if (channel === eventsChannel) heard.events(Number(payload))
      else if (channel === sessionsChannel) heard.ended(payload)
    },
    onclose: () => {
      listening = false
      if (!closed) scheduleListen()
    }
  } as unknown as postgres.Options<Record<string, postgres.PostgresType>>
  const client = connect(settings, options, 1)
  const listen = async () => {
    await client.unsafe(`listen ${eventsChannel}`)
    await client.unsafe(`listen ${sessionsChannel}`)
    attempt = 0
    // whatever changed while not listening went unnoticed
    heard.ended('')
    listening = true
    heard.connected()
  }
  function scheduleListen () {
    clearTimeout(retry)
    retry = setTimeout(() => {
      listen().catch(() => {
        attempt++
        if (!closed) scheduleListen()
      })
    }, Math.min(50 * 2 ** attempt, 2000))
  }
  await deadline(listen(), timeouts.callMs, () => noAnswer(timeouts)).catch(async (err: unknown) => {
    await client.end({ timeout: 0 })
    throw new DatabaseUnavailableError(`cannot listen for events on PostgreSQL: ${reason(err, timeouts)}`, { cause: err })
  })
  return {
    listening: () => listening,
    async close () {
      closed = true
      listening = false
      clearTimeout(retry)
      await client.end({ timeout: 1 })
    }
  }
}

/**
 * Every instance's commits, through LISTEN/NOTIFY: each event insert notifies `eventsChannel`
 * with its highest id, and each end of a session or revocation `sessionsChannel`, both when
 * (and only if) their transaction commits. One listening connection per `listen()`.
 */
export class ListenNotify implements EventNotifications {
  readonly everyCommit = true
  private readonly listeners = new Set<Awaited<ReturnType<typeof listenForEvents>>>()

  constructor (
    private readonly settings: PostgresSettings,
    private readonly timeouts: PostgresTimeouts,
    private readonly heard: Heard
  ) {}

  listening (): boolean {
    return this.listeners.size > 0 && [...this.listeners].every((listener) => listener.listening())
  }

  async listen (onEvents: (committed: CommittedEvents) => void, onConnected: () => void) {
    const { heard } = this
    const listener = await listenForEvents(this.settings, this.timeouts, {
      events (latest) {
        heard.events(latest)
        onEvents({ latest: Number.isInteger(latest) && latest > 0 ? latest : undefined })
      },
      ended: (payload) => heard.ended(payload),
      connected () {
        heard.connected()
        onConnected()
      }
    })
    this.listeners.add(listener)
    return {
      close: async () => {
        this.listeners.delete(listener)
        await listener.close()
      }
    }
  }
}
