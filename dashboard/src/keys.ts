// The API keys page (admin): list, create (the secret is shown once), revoke.
import { ApiError, api, pageSize, type ApiKey, type Permission } from './api.js'
import { byId, fullTime, h, plural, setText } from './dom.js'

const LISTED = pageSize(500)

export class KeysPage {
  constructor (private readonly report: { ok: () => void, failed: (err: unknown) => void }) {
    byId<HTMLFormElement>('create-key').addEventListener('submit', (event) => {
      event.preventDefault()
      void this.create(byId<HTMLSelectElement>('new-permission').value as Permission)
    })
    byId('copy-key').addEventListener('click', () => { void this.copy() })
    byId('dismiss-key').addEventListener('click', () => this.forgetSecret())
  }

  async load (): Promise<void> {
    setText('keys-status', 'Loading the API keys…')
    try {
      const { apikeys } = await api<{ apikeys: ApiKey[] }>(`apikeys?full=true&limit=${LISTED}`)
      this.report.ok()
      this.render(apikeys)
    } catch (err) {
      this.report.failed(err)
      setText('keys-status', `The API keys could not be loaded: ${(err as Error).message}`)
    }
  }

  /** Clears the shown secret: it is never kept in the page longer than needed. */
  forgetSecret (): void {
    byId<HTMLInputElement>('new-key-secret').value = ''
    byId('new-key').hidden = true
    setText('copy-status', '')
  }

  private render (apikeys: ApiKey[]): void {
    const active = apikeys.filter((key) => key.revoked === null).length
    setText('keys-status', apikeys.length === 0
      ? 'No API keys.'
      : `${plural(apikeys.length, 'key')} (${active.toLocaleString()} in use), newest first${apikeys.length === LISTED ? `; only the newest ${LISTED} are listed` : ''}.`)
    byId('keys-body').replaceChildren(...apikeys.map((key) => h('tr', { 'data-key-id': key.id, class: key.revoked === null ? '' : 'revoked' },
      h('td', {}, key.id),
      h('td', {}, h('span', { class: `permission permission-${key.permission}` }, key.permission)),
      h('td', {}, fullTime(key.created)),
      h('td', {}, key.revoked === null ? '—' : fullTime(key.revoked)),
      h('td', {}, key.revoked === null
        ? h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke key ${key.id}`, onclick: () => { void this.revoke(key) } }, 'Revoke')
        : 'Revoked'))))
  }

  private async create (permission: Permission): Promise<void> {
    this.forgetSecret()
    setText('keys-status', 'Creating a key…')
    try {
      const { apikey } = await api<{ apikey: ApiKey }>('apikeys', { method: 'POST', body: { permission } })
      byId<HTMLInputElement>('new-key-secret').value = apikey.apikey ?? ''
      setText('new-key-title', `New ${apikey.permission} key (id ${apikey.id})`)
      byId('new-key').hidden = false
      byId('new-key-secret').focus()
      byId<HTMLInputElement>('new-key-secret').select()
      await this.load()
    } catch (err) {
      this.report.failed(err)
      setText('keys-status', `The key was not created: ${(err as Error).message}`)
    }
  }

  private async copy (): Promise<void> {
    const input = byId<HTMLInputElement>('new-key-secret')
    try {
      await navigator.clipboard.writeText(input.value)
    } catch {
      // no Clipboard API (plain HTTP to another host): the older way
      input.select()
      if (!document.execCommand('copy')) {
        setText('copy-status', 'Copying is blocked here: select the key and copy it yourself.')
        return
      }
    }
    setText('copy-status', 'Copied to the clipboard.')
  }

  private async revoke (key: ApiKey): Promise<void> {
    if (!confirm(`Revoke ${key.permission} key ${key.id}? Every session made with it ends, and /auth refuses it from now on.`)) return
    try {
      await api(`apikeys/${key.id}`, { method: 'DELETE' })
      await this.load()
      setText('keys-status', `Key ${key.id} is revoked.`)
    } catch (err) {
      this.report.failed(err)
      const message = err instanceof ApiError ? err.message : (err as Error).message
      setText('keys-status', `Key ${key.id} was not revoked: ${message}`)
    }
  }
}
