// The live feed: newest first, filtered by event name and location (live arrivals too).
import type { CredEvent } from './api.js'
import { fields, openDetails } from './dialog.js'
import { byId, fullTime, h, plural, setText, timeOfDay } from './dom.js'

/** events kept in the page; older ones drop off the end */
const KEPT = 500

/** What an event did, in a few words: "Toggled · On". */
const what = (event: CredEvent) => [event.action, event.value].filter((part) => part !== null && part !== '').join(' · ')

export function showEvent (event: CredEvent): void {
  openDetails(`Event ${event.id}: ${event.name}`, fields([
    ['Id', event.id],
    ['Name', event.name],
    ['Device', event.device],
    ['Location', event.location],
    ['Action', event.action],
    ['Value', event.value],
    ['Time', `${fullTime(event.time)} (${event.time})`],
    ['URI', event.uri]
  ]))
}

/** One event as a button that opens its details. */
export function eventButton (event: CredEvent): HTMLButtonElement {
  const detail = what(event)
  const where = [event.location, event.device].filter((part) => part !== null && part !== '').join(' · ')
  return h('button', { type: 'button', class: 'event', 'data-event-id': event.id, onclick: () => showEvent(event) },
    h('span', { class: 'event-name' }, event.name),
    h('span', { class: 'event-what' }, detail),
    h('time', { datetime: event.time }, timeOfDay(event.time)),
    where === '' ? null : h('span', { class: 'event-where' }, where))
}

export class Feed {
  /** newest first */
  private events: CredEvent[] = []
  private loaded = false
  private readonly names = new Set<string>()
  private readonly locations = new Set<string>()
  private readonly list = byId<HTMLOListElement>('feed-list')
  private readonly nameInput = byId<HTMLInputElement>('filter-name')
  private readonly locationInput = byId<HTMLInputElement>('filter-location')

  constructor () {
    const form = byId<HTMLFormElement>('filter')
    form.addEventListener('input', () => this.render())
    form.addEventListener('submit', (event) => event.preventDefault())
    // after the reset has cleared the inputs
    form.addEventListener('reset', () => setTimeout(() => this.render()))
  }

  /** The first page of events (newest first), or null while it loads. */
  reset (events: CredEvent[] | null): void {
    this.loaded = events !== null
    this.events = (events ?? []).slice(0, KEPT)
    this.names.clear()
    this.locations.clear()
    this.learn(this.events)
    this.render()
  }

  /** New events, oldest first: each goes on top, if it passes the filter. */
  add (events: CredEvent[]): void {
    for (const event of events) {
      this.events.unshift(event)
      if (this.matches(event)) this.list.prepend(h('li', { class: 'arrived' }, eventButton(event)))
    }
    this.events.length = Math.min(this.events.length, KEPT)
    while (this.list.children.length > KEPT) this.list.lastElementChild!.remove()
    this.learn(events)
    this.describe()
  }

  private filter () {
    return { name: this.nameInput.value.trim().toLowerCase(), location: this.locationInput.value.trim().toLowerCase() }
  }

  private matches (event: CredEvent): boolean {
    const { name, location } = this.filter()
    return event.name.toLowerCase().includes(name) &&
      (location === '' || (event.location ?? '').toLowerCase().includes(location))
  }

  private render (): void {
    this.list.replaceChildren(...this.events.filter((event) => this.matches(event)).map((event) => h('li', {}, eventButton(event))))
    this.describe()
  }

  /** The line above the list: loading, empty, or how many are shown. */
  private describe (): void {
    const { name, location } = this.filter()
    const shown = this.list.children.length
    const filtered = name !== '' || location !== ''
    const text = !this.loaded
      ? 'Loading events…'
      : this.events.length === 0
        ? 'No events yet. New events appear here the moment they are posted.'
        : filtered && shown === 0
          ? `None of the latest ${plural(this.events.length, 'event')} match the filter. Matching events appear here as they arrive.`
          : filtered
            ? `${shown.toLocaleString()} of the latest ${plural(this.events.length, 'event')} match the filter, newest first.`
            : `The latest ${plural(this.events.length, 'event')}, newest first.`
    setText('feed-status', text)
  }

  /** Keeps the filter's suggestions (event names and locations seen) up to date. */
  private learn (events: CredEvent[]): void {
    const update = (known: Set<string>, values: Array<string | null>, listId: string) => {
      const before = known.size
      for (const value of values) if (value !== null && value !== '') known.add(value)
      if (known.size === before && before > 0) return
      byId(listId).replaceChildren(...[...known].sort().slice(0, 100).map((value) => h('option', { value })))
    }
    update(this.names, events.map((event) => event.name), 'known-names')
    update(this.locations, events.map((event) => event.location), 'known-locations')
  }
}
