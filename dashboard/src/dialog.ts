// One modal dialog for details (an event, a client). Escape or the Close button closes it and
// focus goes back where it was.
import { byId, h } from './dom.js'

let returnFocus: HTMLElement | null = null

function dialog (): HTMLDialogElement {
  return byId<HTMLDialogElement>('details')
}

export function setUpDialog (): void {
  const element = dialog()
  byId('details-close').addEventListener('click', () => element.close())
  // a click on the backdrop (outside the box) closes it too
  element.addEventListener('click', (event) => {
    if (event.target === element) element.close()
  })
  element.addEventListener('close', () => {
    returnFocus?.focus()
    returnFocus = null
  })
}

/** Opens the dialog with a title and content; returns the body, to fill in more later. */
export function openDetails (title: string, ...content: Node[]): HTMLElement {
  const element = dialog()
  byId('details-title').textContent = title
  const body = byId('details-body')
  body.replaceChildren(...content)
  if (!element.open) {
    returnFocus = document.activeElement instanceof HTMLElement ? document.activeElement : null
    element.showModal()
  }
  return body
}

export function closeDetails (): void {
  if (dialog().open) dialog().close()
}

/** A definition list of label/value pairs; null values read "none". */
export function fields (rows: Array<[string, string | number | null]>): HTMLDListElement {
  return h('dl', { class: 'fields' }, ...rows.flatMap(([label, value]) => [
    h('dt', {}, label),
    h('dd', value === null ? { class: 'none' } : {}, value === null ? 'none' : String(value))
  ]))
}
