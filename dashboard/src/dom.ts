// Small DOM helpers. Every text from the server goes in as a text node, never as HTML.

type Child = Node | string | number | null | undefined | false
type Attributes = Record<string, string | number | boolean | null | undefined | EventListener>

function apply (element: Element, attributes: Attributes, children: Child[]): void {
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === 'function') element.addEventListener(name.replace(/^on/, ''), value)
    else if (value === true) element.setAttribute(name, '')
    else if (value !== false && value !== null && value !== undefined) element.setAttribute(name, String(value))
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    element.append(typeof child === 'object' ? child : document.createTextNode(String(child)))
  }
}

/** An HTML element: `h('li', { class: 'item', onclick: handler }, 'text', child)`. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag)
  apply(element, attributes, children)
  return element
}

/** An SVG element. */
export function s<K extends keyof SVGElementTagNameMap> (tag: K, attributes: Attributes = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag)
  apply(element, attributes, children)
  return element
}

/** The element with this id, which the page is known to have. */
export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const element = document.getElementById(id)
  if (element === null) throw new Error(`the page has no #${id}`)
  return element as T
}

export function setText (id: string, text: string): void {
  byId(id).textContent = text
}

/** Shows exactly one of the page's top-level views. */
export function showOnly (ids: string[], shown: string | null): void {
  for (const id of ids) byId(id).hidden = id !== shown
}

const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' })

/** 14:03:07 */
export const timeOfDay = (iso: string) => clock.format(new Date(iso))
/** 28 Nov 2026, 14:03:07 */
export const fullTime = (iso: string) => dateTime.format(new Date(iso))

/** "just now", "12 s ago", "4 min ago", "2 h ago", "3 days ago" */
export function ago (ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000))
  if (seconds < 5) return 'just now'
  if (seconds < 60) return `${seconds} s ago`
  const minutes = Math.round(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.round(minutes / 60)
  if (hours < 48) return `${hours} h ago`
  return `${Math.round(hours / 24)} days ago`
}

export const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`
