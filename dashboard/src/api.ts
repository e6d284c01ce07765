// The cred API, at URLs relative to the page (so it works under any approot or prefix).
// The session is the HttpOnly sessionKey cookie that POST auth sets: this code never sees it.

export interface CredEvent {
  id: number
  device: string | null
  name: string
  location: string | null
  action: string | null
  value: string | null
  time: string
  uri: string
}

export interface Subscription { name: string, location: string | null }

export interface Client {
  id: number
  device: string | null
  location: string | null
  lastActive: string
  uri: string
  subscriptions?: Subscription[]
}

export type Permission = 'read' | 'write' | 'admin'

export interface ApiKey {
  id: number
  permission: Permission
  created: string
  revoked: string | null
  uri: string
  apikey?: string
}

/** The server answered with an error status; `message` is its `{status, message}` text. */
export class ApiError extends Error {
  constructor (readonly status: number, message: string, readonly retryAfter: number | null = null) {
    super(message)
  }
}

/** The server could not be reached at all (down, or the network is). */
export class Unreachable extends Error {}

/**
 * `wanted`, or fewer when the server's maxPageSize is lower (it answers a larger `limit` with 400):
 * the server writes that setting into the page.
 */
export function pageSize (wanted: number): number {
  const max = Number(document.querySelector('meta[name="cred-max-page-size"]')?.getAttribute('content'))
  return Number.isInteger(max) && max >= 1 ? Math.min(wanted, max) : wanted
}

/** Server time minus this browser's time, from the Date header of the latest answer (to 1 s). */
let clockOffset = 0
export const serverNow = () => Date.now() + clockOffset

export async function api<T> (path: string, options: { method?: string, body?: unknown, signal?: AbortSignal } = {}): Promise<T> {
  let res: Response
  try {
    res = await fetch(path, {
      method: options.method ?? 'GET',
      credentials: 'same-origin',
      headers: { accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      ...(options.signal === undefined ? {} : { signal: options.signal })
    })
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err
    throw new Unreachable('The cred server cannot be reached')
  }
  const date = Date.parse(res.headers.get('date') ?? '')
  if (!Number.isNaN(date)) clockOffset = date - Date.now()
  if (res.status === 204) return undefined as T
  const body = await res.json().catch(() => null) as { message?: unknown } | null
  if (!res.ok) {
    const message = typeof body?.message === 'string' ? body.message : `The server answered ${res.status} ${res.statusText}`
    const retryAfter = Number(res.headers.get('retry-after'))
    throw new ApiError(res.status, message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null)
  }
  if (body === null) throw new ApiError(res.status, 'The server sent an answer that is not JSON')
  return body as T
}

export const isSessionEnded = (err: unknown) => err instanceof ApiError && err.status === 401
