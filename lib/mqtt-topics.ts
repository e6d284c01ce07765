// The MQTT bridge's topic layout (docs/mqtt.md): events go out on
// <prefix>/events/<name>/<location>, devices post on <prefix>/post/<location>/<device>.

/** The characters that mean something in a topic level: the separator, both wildcards, and the escape itself. */
const special = /[/+#%]/g
const escaped = /%(2F|2B|23|25)/gi

/** A name or location as one topic level: `/`, `+`, `#` and `%` percent-encoded (`Hall/1` → `Hall%2F1`). */
export const encodeLevel = (text: string): string =>
  text.replace(special, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** The text of a level `encodeLevel` made; any other `%` is read as it is. */
export const decodeLevel = (level: string): string =>
  level.replace(escaped, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))

/** The topic an event is published to: no location is an empty last level. */
export const eventTopic = (prefix: string, name: string, location: string | null): string =>
  `${prefix}/events/${encodeLevel(name)}/${location === null ? '' : encodeLevel(location)}`

/** The subscription that takes the devices' posts. */
export const postFilter = (prefix: string): string => `${prefix}/post/+/+`

/** The device and location (null: an empty level) a post's topic names, or undefined when it names no device. */
export function postTopic (prefix: string, topic: string): { device: string, location: string | null } | undefined {
  const start = `${prefix}/post/`
  if (!topic.startsWith(start)) return undefined
  const levels = topic.slice(start.length).split('/')
  if (levels.length !== 2 || levels[1] === '') return undefined
  return { location: levels[0] === '' ? null : decodeLevel(levels[0]!), device: decodeLevel(levels[1]!) }
}
