// Active clients (GET clients: the devices heard from within pingtimeout), refreshed every few
// seconds: there is no stream of clients coming and going. Dashboards signed in are viewers,
// counted apart (GET clients?viewers=true).
import { ApiError, api, pageSize, serverNow, type Client, type CredEvent } from './api.js'
import { fields, openDetails } from './dialog.js'
import { ago, byId, fullTime, h, plural, setText } from './dom.js'
import { eventButton } from './feed.js'

const REFRESH_MS = 5000
/** a client that appeared is marked "new" this long */
const NEW_MS = 60_000
const LISTED = pageSize(200)

const deviceName = (client: Client) => client.device ?? 'Unnamed device'

export class Clients {
  private timer: ReturnType<typeof setTimeout> | undefined
  private stopped = false
  /** when each listed client was first listed; empty until the first answer */
  private readonly firstSeen = new Map<number, number>()
  private loaded = false

  constructor (
    /** this dashboard's own client */
    private readonly me: number,
    private readonly report: { ok: () => void, failed: (err: unknown) => void }
  ) {}

  start (): void {
    setText('clients-status', 'Loading clients…')
    byId('clients-list').replaceChildren()
    void this.refresh()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }

  private async refresh (): Promise<void> {
    try {
      const [{ clients }, viewers] = await Promise.all([
        api<{ clients: Client[] }>(`clients?full=true&limit=${LISTED}`),
        api<{ clients: Array<{ id: number }> }>(`clients?viewers=true&limit=${LISTED}`)
      ])
      if (this.stopped) return
      this.report.ok()
      this.render(clients)
      this.renderViewers(viewers.clients)
    } catch (err) {
      if (this.stopped) return
      this.report.failed(err)
      if (!this.loaded) setText('clients-status', 'The clients could not be loaded. Retrying…')
    }
    if (!this.stopped) this.timer = setTimeout(() => { void this.refresh() }, REFRESH_MS)
  }

  private render (clients: Client[]): void {
    const now = serverNow()
    const gone = [...this.firstSeen.keys()].filter((id) => !clients.some((client) => client.id === id))
    for (const id of gone) this.firstSeen.delete(id)
    for (const client of clients) if (!this.firstSeen.has(client.id)) this.firstSeen.set(client.id, this.loaded ? now : 0)
    this.loaded = true

    setText('clients-count', clients.length === 0 ? '' : String(clients.length))
    const left = gone.length === 0 ? '' : ` ${plural(gone.length, 'client')} left just now.`
    setText('clients-status', clients.length === 0
      ? `No active clients: a client shows here while it keeps talking to the server.${left}`
      : `${plural(clients.length, 'active client')}${clients.length === LISTED ? ' (the newest shown)' : ''}, newest first.${left}`)
    byId('clients-list').replaceChildren(...clients.map((client) => {
      const isNew = now - this.firstSeen.get(client.id)! < NEW_MS
      return h('li', {},
        h('button', { type: 'button', class: 'client', 'data-client-id': client.id, onclick: () => { void this.showClient(client) } },
          h('span', { class: 'client-device' }, deviceName(client),
            client.id === this.me ? h('span', { class: 'badge' }, 'you') : null,
            isNew && client.id !== this.me ? h('span', { class: 'badge badge-new' }, 'new') : null),
          h('span', { class: 'client-seen' }, `Last seen ${ago(now - Date.parse(client.lastActive))}`),
          h('span', { class: 'client-location' }, client.location ?? 'No location')))
    }))
  }

  private renderViewers (viewers: Array<{ id: number }>): void {
    const others = viewers.filter((viewer) => viewer.id !== this.me).length
    const more = viewers.length === LISTED ? ' or more' : ''
    const open = others === viewers.length
      ? (others === 0 ? '' : `${others.toLocaleString()}${more}.`)
      : `this one${others === 0 ? '' : ` and ${plural(others, 'other')}${more}`}.`
    setText('viewers-status', open === '' ? '' : `Dashboards open (not listed as clients): ${open}`)
  }

  private async showClient (listed: Client): Promise<void> {
    const body = openDetails(`Client ${listed.id}: ${deviceName(listed)}`, h('p', { class: 'hint' }, 'Loading the client…'))
    try {
      const [{ client }, { events }] = await Promise.all([
        api<{ client: Client }>(`clients/${listed.id}`),
        api<{ events: CredEvent[] }>(`clients/${listed.id}/events?full=true&limit=${pageSize(20)}`)
      ])
      const subscriptions = client.subscriptions ?? []
      body.replaceChildren(
        fields([
          ['Id', client.id],
          ['Device', client.device],
          ['Location', client.location],
          ['Last seen', `${ago(serverNow() - Date.parse(client.lastActive))} (${fullTime(client.lastActive)})`],
          ['URI', client.uri]
        ]),
        h('h3', {}, 'Subscriptions'),
        subscriptions.length === 0
          ? h('p', { class: 'hint' }, 'No subscriptions: this client receives no events.')
          : h('ul', { class: 'subscriptions' }, ...subscriptions.map((subscription) => h('li', {},
            h('strong', {}, subscription.name), ` from ${subscription.location ?? 'any location'}`))),
        h('h3', {}, 'Recent events'),
        events.length === 0
          ? h('p', { class: 'hint' }, 'This client has posted no events.')
          : h('ol', { class: 'list feed-list' }, ...events.map((event) => h('li', {}, eventButton(event))))
      )
    } catch (err) {
      this.report.failed(err)
      const message = err instanceof ApiError && err.status === 404 ? 'This client no longer exists.' : `The client could not be loaded: ${(err as Error).message}`
      body.replaceChildren(h('p', { class: 'error' }, message))
    }
  }
}
