// The dashboard end to end: the app listens on a real port and Debian's Chromium, driven by
// playwright-core, uses it as a person would. A screenshot of the signed-in dashboard is left in
// artifacts/ (not committed).
import { existsSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import type { SettingsInput } from '../../schemas/config.js'
import { bearer, build, type TestApp } from '../helper.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run']
const artifacts = fileURLToPath(new URL('../../artifacts/', import.meta.url))

interface Site extends TestApp {
  /** the page's URL: http://127.0.0.1:<port>/ plus the prefix */
  url: string
  /** posts an event as the client of `sessionKey`; returns its id */
  post: (sessionKey: string, event: Record<string, unknown>) => Promise<number>
}

async function site (t: Test, prefix = '', settings: SettingsInput = {}): Promise<Site> {
  const built = await build(t, settings, prefix === '' ? {} : { prefix })
  const origin = await built.app.listen({ port: 0, host: '127.0.0.1' })
  return {
    ...built,
    url: `${origin}${prefix}/`,
    async post (sessionKey, event) {
      const res = await built.app.inject({ method: 'POST', url: `${prefix}/events`, headers: bearer(sessionKey), payload: { event } })
      if (res.statusCode !== 201) throw new Error(`posting failed: ${res.statusCode} ${res.body}`)
      return (res.json() as { event: { id: number } }).event.id
    }
  }
}

/** Another origin on the same host: an empty page served on another port of 127.0.0.1. */
async function otherPort (t: Test): Promise<{ origin: string }> {
  const server = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>another port</title>'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** A fresh page (its own cookies) that fails the test on any script error. */
async function newPage (t: Test, browser: Browser): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  page.on('pageerror', (err) => t.fail(`script error in the page: ${err.message}`))
  return page
}

async function signIn (page: Page, apikey: string): Promise<void> {
  await page.getByLabel('API key', { exact: true }).fill(apikey)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#overview').waitFor()
}

/** dashboard/src/live.ts: how long the page polls before it tries the stream again (the first time) */
const STREAM_RETRY_MS = 30_000

const feedItem = (page: Page, id: number) => page.locator(`#feed-list [data-event-id="${id}"]`)
const text = (page: Page, selector: string) => page.locator(selector).innerText()

const missing = existsSync(CHROMIUM) ? null : `${CHROMIUM} is not installed (apt-get install -y chromium)`
if (missing !== null && process.env.CI === 'true') throw new Error(`${missing}: in CI the browser tests must run`)

if (missing !== null) {
  t.plan(0, `${missing}: the browser tests are SKIPPED`)
} else {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
  t.teardown(() => browser.close())

  t.test('a read key: sign in, see clients and events arrive live, filter, open details', async (t) => {
    const cred = await site(t)
    const page = await newPage(t, browser)
    await page.goto(cred.url)

    await page.getByLabel('API key', { exact: true }).fill('not-a-key')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.locator('#sign-in-message', { hasText: 'not valid' }).waitFor()

    await signIn(page, await cred.key('read'))
    t.equal(await page.inputValue('#apikey'), '', 'the key is not kept in the page')
    t.equal(await page.locator('#nav-keys').isVisible(), false, 'no API keys page for a read key')
    await page.locator('#feed-status', { hasText: 'No events yet' }).waitFor()
    await page.locator('#chart', { hasText: 'No events in the last hour' }).waitFor()
    await page.locator('#connection', { hasText: /^Live$/ }).waitFor()

    // a device signs in: it appears in the clients (refreshed every few seconds)
    const sensor = await cred.session('write', { device: 'Motion Sensor', location: 'Hall', subscribe: { Light: {}, Door: { location: 'Front' } } })
    const sensorItem = page.locator(`#clients-list [data-client-id="${sensor.id}"]`)
    await sensorItem.waitFor()
    t.match(await sensorItem.innerText(), /Motion Sensor[\s\S]*Hall/)

    // events posted through the API arrive without a reload, newest first
    const motion = await cred.post(sensor.sessionKey, { name: 'Motion', location: 'Hall', action: 'Detected', value: 3 })
    await feedItem(page, motion).waitFor()
    const light = await cred.post(sensor.sessionKey, { name: 'Light', location: 'Kitchen', action: 'Toggled', value: 'On' })
    await feedItem(page, light).waitFor()
    t.same(await page.locator('#feed-list [data-event-id]').evaluateAll((items) => items.map((item) => Number(item.getAttribute('data-event-id')))),
      [light, motion], 'newest first')
    await page.locator('#chart-legend', { hasText: 'Motion' }).waitFor()
    t.match(await page.locator('#chart-legend').textContent(), /Motion 1 event in the last 5 min · 1 in the hour/)

    // the filter applies to the list and to live arrivals
    await page.getByLabel('Event name').fill('moti')
    await feedItem(page, light).waitFor({ state: 'detached' })
    t.ok(await feedItem(page, motion).isVisible(), 'the matching event stays')
    const hidden = await cred.post(sensor.sessionKey, { name: 'Light', location: 'Hall' })
    const shown = await cred.post(sensor.sessionKey, { name: 'Motion', location: 'Garage', action: 'Detected' })
    await feedItem(page, shown).waitFor()
    t.equal(await feedItem(page, hidden).count(), 0, 'a live arrival that does not match is not shown')
    await page.getByLabel('Location').fill('hall')
    await feedItem(page, shown).waitFor({ state: 'detached' })
    t.match(await text(page, '#feed-status'), /1 of the latest 4 events match the filter/)
    await page.getByRole('button', { name: 'Clear' }).click()
    await feedItem(page, hidden).waitFor()
    t.equal(await page.locator('#feed-list li').count(), 4, 'all events again')

    // an event's details: every field
    await feedItem(page, motion).click()
    const dialog = page.locator('#details')
    await dialog.waitFor()
    const details = await dialog.innerText()
    for (const field of [`Event ${motion}: Motion`, 'Motion Sensor', 'Hall', 'Detected', '3', `${cred.url}events/${motion}`]) {
      t.match(details, field, `the event's details show ${field}`)
    }
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    t.equal(await page.evaluate('document.activeElement?.getAttribute("data-event-id")'), String(motion), 'focus goes back to the event')

    // a client's details: its subscriptions and its own recent events
    await sensorItem.click()
    await dialog.locator('.subscriptions').waitFor()
    const client = await dialog.innerText()
    t.match(client, /Light from any location/)
    t.match(client, /Door from Front/)
    t.ok(await dialog.locator(`[data-event-id="${motion}"]`).isVisible(), 'the client\'s events are listed')
    await page.getByRole('button', { name: 'Close' }).click()
    await dialog.waitFor({ state: 'hidden' })
  })
  t.test('signing in again and again adds no clients: dashboards are viewers, counted apart from the devices', async (t) => {
    const cred = await site(t)
    const apikey = await cred.key('read')
    const lamp = await cred.session('write', { device: 'Lamp', location: 'Porch' })
    const page = await newPage(t, browser)
    await page.goto(cred.url)
    await signIn(page, apikey)
    // signed in three more times with the same key: twice more in other browsers, once here after signing out
    for (let i = 0; i < 2; i++) {
      const other = await newPage(t, browser)
      await other.goto(cred.url)
      await signIn(other, apikey)
    }
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.locator('#sign-in-message', { hasText: 'signed out' }).waitFor()
    await signIn(page, apikey)
    await page.locator('#viewers-status', { hasText: 'Dashboards open (not listed as clients): this one and 2 others.' }).waitFor()
    t.same(await page.locator('#clients-list [data-client-id]').evaluateAll((items) => items.map((item) => Number(item.getAttribute('data-client-id')))),
      [lamp.id], 'the device list holds the device only')
    t.match(await text(page, '#clients-list'), /Lamp[\s\S]*Porch/)
    t.notMatch(await text(page, '#clients-list'), /Dashboard/, 'no dashboard among the clients')
    t.match(await text(page, '#clients-status'), /^1 active client, newest first/)
  })

  t.test('the signed-in dashboard: screenshots at desktop and phone width; session end goes back to sign-in', async (t) => {
    const cred = await site(t)
    const page = await newPage(t, browser)
    const devices = [
      ['Motion Sensor', 'Hall', 'Motion', 'Detected'], ['Thermostat', 'Living Room', 'Temperature', 'Measured'],
      ['Light Switch', 'Living Room', 'Light', 'Toggled'], ['Front Door', 'Entrance', 'Door', 'Opened']
    ] as const
    const sessions = await Promise.all(devices.map(([device, location]) => cred.session('write', { device, location, subscribe: { Light: {} } })))
    for (let i = 0; i < 24; i++) {
      const [, location, name, action] = devices[i % 3 === 0 ? 1 : i % 5 === 0 ? 2 : i % 7 === 0 ? 3 : 0]!
      await cred.post(sessions[devices.findIndex(([, , n]) => n === name)]!.sessionKey, { name, location, action, value: name === 'Temperature' ? (20 + i / 10).toFixed(1) : i })
    }
    await page.goto(cred.url)
    await signIn(page, await cred.key('admin'))
    await page.locator('#feed-list li').nth(23).waitFor()
    const last = await cred.post(sessions[3]!.sessionKey, { name: 'Door', location: 'Entrance', action: 'Opened' })
    await feedItem(page, last).waitFor()
    await page.locator('#clients-list li').nth(3).waitFor()
    await page.locator('#viewers-status', { hasText: 'this one' }).waitFor()
    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: `${artifacts}/dashboard.png`, fullPage: true })

    await page.setViewportSize({ width: 390, height: 844 })
    t.equal(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), true, 'no sideways scrolling at phone width')
    await page.screenshot({ path: `${artifacts}/dashboard-phone.png`, fullPage: true })
    await page.setViewportSize({ width: 1280, height: 900 })

    // the session ends on the server (here: ended directly; a timeout or a revoked key does the same)
    const [me] = await cred.repos.clients.listActive(0, {}, 'viewer')
    await cred.repos.clients.end(me!.id, Date.now())
    await page.locator('#sign-in-message', { hasText: 'Your session has ended' }).waitFor()
    t.ok(await page.locator('#sign-in').isVisible(), 'back to sign-in')
    t.equal(await page.locator('#overview').isVisible(), false)
  })

  t.test('a small maxPageSize: every list asks for no more than it, and says only the newest are shown', async (t) => {
    const cred = await site(t, '', { maxPageSize: 3 })
    for (let i = 0; i < 4; i++) await cred.session('read', { device: `Reader ${i}` })
    const sensor = await cred.session('write', { device: 'Sensor' })
    for (let i = 0; i < 5; i++) await cred.post(sensor.sessionKey, { name: 'Motion', value: i })
    const page = await newPage(t, browser)
    await page.goto(cred.url)
    await signIn(page, await cred.key('admin'))
    await page.locator('#clients-status', { hasText: '(the newest shown)' }).waitFor()
    t.equal(await page.locator('#clients-list li').count(), 3, 'three clients of six')
    await page.locator('#feed-list li').nth(2).waitFor()
    t.equal(await page.locator('#feed-list li').count(), 3, 'three events of five')
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.locator('#keys-status', { hasText: 'only the newest 3 are listed' }).waitFor()
    t.equal(await page.locator('#keys-body tr').count(), 3, 'three keys of six')
  })

  t.test('an admin key: the API keys page creates a key (shown once) and revokes it; sign out ends the session', async (t) => {
    const cred = await site(t)
    const page = await newPage(t, browser)
    await page.goto(cred.url)
    await signIn(page, await cred.key('admin'))
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.locator('#keys-body tr').first().waitFor()

    await page.getByLabel('Permission').selectOption('read')
    await page.getByRole('button', { name: 'Create key' }).click()
    await page.locator('#new-key').waitFor()
    const secret = await page.inputValue('#new-key-secret')
    t.match(secret, /^[\w-]{20,}$/, 'the new key is shown')
    t.match(await text(page, '#new-key-title'), /New read key/)
    const id = Number(/id (\d+)/.exec(await text(page, '#new-key-title'))![1])
    await page.locator(`#keys-body tr[data-key-id="${id}"]`).waitFor()
    t.match(await text(page, `#keys-body tr[data-key-id="${id}"]`), /read/)
    const auth = (apikey: string) => cred.app.inject({ method: 'POST', url: '/auth', payload: { apikey } })
    t.equal((await auth(secret)).statusCode, 201, 'the shown key works')

    await page.getByRole('button', { name: 'Copy' }).click()
    await page.locator('#copy-status', { hasText: /Cop/ }).waitFor()
    await page.getByRole('button', { name: 'Done: hide the key' }).click()
    t.equal(await page.inputValue('#new-key-secret'), '', 'the secret leaves the page once hidden')
    t.equal(await page.locator('#new-key').isVisible(), false)

    page.once('dialog', (dialog) => { void dialog.accept() })
    await page.getByRole('button', { name: `Revoke key ${id}` }).click()
    await page.locator('#keys-status', { hasText: `Key ${id} is revoked` }).waitFor()
    t.match(await text(page, `#keys-body tr[data-key-id="${id}"]`), /Revoked/)
    t.equal((await auth(secret)).statusCode, 401, 'the revoked key is refused')

    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.locator('#sign-in-message', { hasText: 'You have signed out' }).waitFor()
    t.equal(await page.evaluate('fetch("clients/me").then((res) => res.status)'), 401, 'the session is over')
  })

  t.test('a page on another port of the same host cannot act with the signed-in admin\'s session, nor sign the browser in', async (t) => {
    const cred = await site(t)
    const page = await newPage(t, browser)
    await page.goto(cred.url)
    await signIn(page, await cred.key('admin'))
    const me = () => page.evaluate('fetch("clients/me").then((res) => res.json()).then((body) => body.client.id)')
    const admin = await me()
    const target = await cred.repos.apikeys.create('read')
    const attackerKey = await cred.key('read')
    const keys = await cred.repos.apikeys.count()

    // the admin opens another tab, on a page of another port of the same host (same site: the Lax cookie goes along)
    const attacker = await page.context().newPage()
    await attacker.goto((await otherPort(t)).origin)
    const seen = await attacker.evaluate(async ({ api, id, apikey }) => {
      const attempt = async (path: string, init: RequestInit) => {
        try {
          const res = await fetch(api + path, { credentials: 'include', ...init })
          return res.type === 'opaque' ? 'sent, answer unreadable' : `read ${res.status}`
        } catch {
          return 'refused by the browser'
        }
      }
      const json = JSON.stringify({ permission: 'admin' })
      return {
        createJson: await attempt('apikeys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: json }),
        createText: await attempt('apikeys', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: json }),
        createForm: await attempt('apikeys', { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ permission: 'admin' }) }),
        createEmpty: await attempt('apikeys', { method: 'POST', mode: 'no-cors' }),
        revoke: await attempt(`apikeys/${id}`, { method: 'DELETE' }),
        signOut: await attempt('auth', { method: 'DELETE' }),
        signInForm: await attempt('auth', { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ apikey }) }),
        list: await attempt('apikeys', {})
      }
    }, { api: cred.url, id: target.id, apikey: attackerKey })
    t.same(seen, {
      createJson: 'refused by the browser',
      createText: 'sent, answer unreadable',
      createForm: 'sent, answer unreadable',
      createEmpty: 'sent, answer unreadable',
      revoke: 'refused by the browser',
      signOut: 'refused by the browser',
      signInForm: 'sent, answer unreadable',
      list: 'refused by the browser'
    }, 'what the browser lets the page do')
    // a link on the page to GET /auth with the attacker's key, followed in the admin's browser
    const link = `${cred.url}auth?apikey=${encodeURIComponent(attackerKey)}`
    const [navigation] = await Promise.all([
      attacker.waitForResponse((res) => res.url() === link),
      attacker.evaluate(`window.location.href = ${JSON.stringify(link)}`)
    ])
    t.equal(navigation.status(), 403, 'the sign-in link is refused')

    t.equal(await cred.repos.apikeys.count(), keys, 'no key was created')
    t.equal((await cred.repos.apikeys.get(target.id))?.revoked, null, 'none was revoked')
    t.equal(await me(), admin, 'the dashboard is still signed in as the admin, not as the attacker\'s key')
  })

  t.test('the original web UI on another port signs in and posts with the cookie when its origin is listed in cors', async (t) => {
    const webUi = await otherPort(t)
    const cred = await site(t, '', { cors: [webUi.origin] })
    const page = await newPage(t, browser)
    await page.goto(webUi.origin)
    const seen = await page.evaluate(async ({ api, apikey }) => {
      const signIn = await fetch(`${api}auth`, {
        method: 'POST', credentials: 'include', body: new URLSearchParams({ apikey, device: 'Web UI', 'subscribe[Light][location]': 'Hall' })
      })
      const post = await fetch(`${api}events`, {
        method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: { name: 'Light', location: 'Hall' } })
      })
      const { id } = await signIn.json() as { id: number }
      const subscribed = await (await fetch(`${api}clients/${id}/subscribedevents?full=true`, { credentials: 'include' })).json() as { events: Array<{ name: string }> }
      return { signIn: signIn.status, post: post.status, names: subscribed.events.map((event) => event.name) }
    }, { api: cred.url, apikey: await cred.key('write') })
    t.same(seen, { signIn: 201, post: 201, names: ['Light'] }, 'form sign-in, then the cookie session for a JSON post and a read')
  })

  t.test('without the event stream, the feed polls; an unreachable server is said in words', async (t) => {
    const cred = await site(t, '/cred')
    const page = await newPage(t, browser)
    // as a proxy that does not pass Server-Sent Events through might answer
    await page.route('**/events/stream*', (route) => route.fulfill({ status: 502, body: 'Bad Gateway' }))
    await page.goto(cred.url.replace(/\/$/, ''))
    t.match(page.url(), /\/cred\/$/, '/cred redirects to /cred/')
    await signIn(page, await cred.key('read'))
    await page.locator('#connection', { hasText: 'Live (polling)' }).waitFor()
    const writer = await cred.session('write', { device: 'Switch' })
    const id = await cred.post(writer.sessionKey, { name: 'Light', value: 'Off' })
    await feedItem(page, id).waitFor()
    t.pass('the event arrived by long polling, under the approot')

    await page.route('**/clients?*', (route) => route.abort('connectionrefused'))
    await page.locator('#banner', { hasText: 'cannot be reached' }).waitFor()
    await page.unroute('**/clients?*')
    await page.locator('#banner').waitFor({ state: 'hidden' })
    t.pass('the banner goes once the server answers again')
  })

  t.test('after falling back to polling, the stream is tried again now and then, without a reload', async (t) => {
    const cred = await site(t)
    const page = await newPage(t, browser)
    await page.clock.install()
    await page.route('**/events/stream*', (route) => route.fulfill({ status: 502, body: 'Bad Gateway' }))
    await page.goto(cred.url)
    await signIn(page, await cred.key('read'))
    await page.locator('#connection', { hasText: 'Live (polling)' }).waitFor()
    await page.unroute('**/events/stream*')
    const streams: string[] = []
    page.on('request', (request) => { if (request.url().includes('/events/stream')) streams.push(request.url()) })
    await page.clock.fastForward(STREAM_RETRY_MS + 1000)
    await page.locator('#connection', { hasText: /^Live$/ }).waitFor()
    t.equal(streams.length, 1, 'one new try of the stream')
    const writer = await cred.session('write')
    const id = await cred.post(writer.sessionKey, { name: 'Door' })
    await feedItem(page, id).waitFor()
    t.pass('and events arrive over it')
  })

  t.test('the chart: each event name keeps its colour when the ranking changes, and lines of equal counts stay visible', async (t) => {
    const cred = await site(t)
    const writer = await cred.session('write')
    const page = await newPage(t, browser)
    await page.goto(cred.url)
    await signIn(page, await cred.key('read'))
    const colourOf = async (name: string) => (await page.locator(`#chart [data-name="${name}"]`).getAttribute('class'))?.match(/series-\w+/)?.[0]
    await cred.post(writer.sessionKey, { name: 'Alarm' })
    await cred.post(writer.sessionKey, { name: 'Bell' })
    await page.locator('#chart [data-name="Bell"]').waitFor()
    const alarm = await colourOf('Alarm')
    const bell = await colourOf('Bell')
    t.not(alarm, bell, 'two names, two colours')
    // equal counts: the two lines are drawn apart, not one over the other
    const points = async (name: string) => page.locator(`#chart [data-name="${name}"] polyline`).getAttribute('points')
    t.not(await points('Alarm'), await points('Bell'), 'equal counts, yet two visible lines')
    for (let i = 0; i < 3; i++) await cred.post(writer.sessionKey, { name: 'Bell' })
    await page.locator('#chart-legend li', { hasText: 'Bell' }).filter({ hasText: '4 in the hour' }).waitFor()
    t.match(await page.locator('#chart-legend li').first().textContent(), /^Bell/, 'Bell is now the busiest')
    t.equal(await colourOf('Alarm'), alarm, 'Alarm kept its colour')
    t.equal(await colourOf('Bell'), bell, 'Bell kept its colour')
    t.equal(await page.locator('#chart-legend li', { hasText: 'Bell' }).locator('.swatch').getAttribute('class'), `swatch ${bell!}`, 'the legend shows the same colour')
  })
}
