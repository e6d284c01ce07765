// The dashboard: sign in with an API key, then watch clients and events live; admins also
// manage API keys. Everything is fetched relative to the page, so it works under any approot.
import { ApiError, Unreachable, api, isSessionEnded, pageSize, type Client, type CredEvent } from './api.js'
import { RateChart } from './chart.js'
import { Clients } from './clients.js'
import { closeDetails, setUpDialog } from './dialog.js'
import { byId, setText, showOnly } from './dom.js'
import { Feed } from './feed.js'
import { KeysPage } from './keys.js'
import { startLive, type LiveStatus } from './live.js'

const VIEWS = ['loading', 'sign-in', 'overview', 'keys-page']
/** events fetched at sign-in, for the feed and the chart */
const FIRST_EVENTS = pageSize(1000)
const RETRY_MS = 5000

interface Session {
  me: Client
  admin: boolean
  clients: Clients
  chart: RateChart
  live: { stop: () => void } | null
}

let session: Session | null = null

/** What every part reports after talking to the server: the banner and sign-in follow from it. */
const report = {
  ok (): void {
    byId('banner').hidden = true
  },
  failed (err: unknown): void {
    if (isSessionEnded(err)) {
      if (session !== null) showSignIn('Your session has ended: it expired, was signed out elsewhere, or its key was revoked. Sign in again.')
      return
    }
    if (err instanceof Unreachable) {
      setText('banner-text', 'The cred server cannot be reached: it may be down, or the network is. The dashboard keeps trying.')
      byId('banner').hidden = false
    }
  }
}

const feed = new Feed()
const keys = new KeysPage(report)

const statusText: Record<LiveStatus, string> = {
  live: 'Live',
  reconnecting: 'Reconnecting…',
  polling: 'Live (polling)',
  offline: 'Offline: retrying'
}

function setLiveStatus (status: LiveStatus): void {
  const element = byId('connection')
  element.textContent = statusText[status]
  element.className = `status status-${status}`
}

/** Ends this page's part of the session: timers, streams and polls stop. */
function stopSession (): void {
  if (session === null) return
  session.clients.stop()
  session.chart.stop()
  session.live?.stop()
  session = null
  closeDetails()
  keys.forgetSecret()
}

function showSignIn (message: string): void {
  stopSession()
  byId('nav').hidden = true
  byId('session').hidden = true
  byId('banner').hidden = true
  document.title = 'Sign in · cred'
  showOnly(VIEWS, 'sign-in')
  setText('sign-in-message', message)
  byId('apikey').focus()
}

async function isAdmin (): Promise<boolean> {
  try {
    await api('apikeys?limit=1')
    return true
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 403)) report.failed(err)
    return false
  }
}

/** The first events (newest first), then live ones; retried while the server cannot answer. */
async function loadEvents (current: Session): Promise<void> {
  feed.reset(null)
  current.chart.reset(null, false)
  for (;;) {
    try {
      const { events } = await api<{ events: CredEvent[] }>(`events?full=true&limit=${FIRST_EVENTS}`)
      if (session !== current) return
      report.ok()
      feed.reset(events)
      current.chart.reset(events, events.length === FIRST_EVENTS)
      current.live = startLive({
        after: events[0]?.id ?? 0,
        onEvents (fresh) {
          feed.add(fresh)
          current.chart.add(fresh)
        },
        onStatus: setLiveStatus,
        onSessionEnded: () => report.failed(new ApiError(401, 'Not Authenticated'))
      })
      return
    } catch (err) {
      if (session !== current) return
      report.failed(err)
      setText('feed-status', 'The events could not be loaded. Retrying…')
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }
}

async function enter (me: Client): Promise<void> {
  stopSession()
  const admin = await isAdmin()
  const current: Session = { me, admin, clients: new Clients(me.id, report), chart: new RateChart(), live: null }
  session = current
  byId('nav').hidden = false
  byId('nav-keys').hidden = !admin
  byId('session').hidden = false
  setText('who', admin ? 'Admin' : '')
  setLiveStatus('reconnecting')
  route()
  current.clients.start()
  await loadEvents(current)
}

/** #keys: the API keys page (admins); anything else: the overview. */
function route (): void {
  if (session === null) return
  const onKeys = location.hash === '#keys' && session.admin
  showOnly(VIEWS, onKeys ? 'keys-page' : 'overview')
  document.title = onKeys ? 'API keys · cred' : 'Dashboard · cred'
  for (const link of byId('nav').querySelectorAll('a')) {
    if (link.getAttribute('href') === (onKeys ? '#keys' : '#overview')) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  if (onKeys) void keys.load()
}

async function signIn (): Promise<void> {
  const input = byId<HTMLInputElement>('apikey')
  const button = byId<HTMLButtonElement>('sign-in-button')
  const apikey = input.value.trim()
  if (apikey === '') {
    setText('sign-in-message', 'Enter an API key.')
    return input.focus()
  }
  button.disabled = true
  setText('sign-in-message', 'Signing in…')
  try {
    // the session lives in the HttpOnly cookie this sets; the key itself is not kept. A viewer,
    // not a device: each sign-in is a new client, and the devices' list stays theirs.
    await api('auth', { method: 'POST', body: { apikey, device: 'Dashboard', location: 'Web browser', viewer: true } })
    input.value = ''
    const { client } = await api<{ client: Client }>('clients/me')
    setText('sign-in-message', '')
    await enter(client)
  } catch (err) {
    setText('sign-in-message', err instanceof Unreachable
      ? 'The cred server cannot be reached. Check that it is running, then try again.'
      : err instanceof ApiError && err.status === 401
        ? 'That API key is not valid: it is unknown or has been revoked.'
        : err instanceof ApiError && err.status === 429
          ? `Too many failed attempts from this address. Try again in ${err.retryAfter ?? 60} seconds.`
          : `Signing in failed: ${(err as Error).message}`)
    input.focus()
  } finally {
    button.disabled = false
  }
}

async function signOut (): Promise<void> {
  try {
    await api('auth', { method: 'DELETE' })
    showSignIn('You have signed out.')
  } catch (err) {
    showSignIn(err instanceof Unreachable
      ? 'Signed out of this page, but the server could not be told: the session ends when it times out.'
      : 'You have signed out.')
  }
}

/** On load: an existing session (the cookie) goes straight to the dashboard. */
async function start (): Promise<void> {
  showOnly(VIEWS, 'loading')
  try {
    const { client } = await api<{ client: Client }>('clients/me')
    await enter(client)
  } catch (err) {
    if (isSessionEnded(err)) return showSignIn('')
    setText('loading', err instanceof Unreachable
      ? 'The cred server cannot be reached: it may be down, or the network is. Trying again…'
      : `The dashboard could not start: ${(err as Error).message}. Trying again…`)
    setTimeout(() => { void start() }, RETRY_MS)
  }
}

setUpDialog()
byId<HTMLFormElement>('sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault()
  void signIn()
})
byId('sign-out').addEventListener('click', () => { void signOut() })
window.addEventListener('hashchange', route)
void start()
