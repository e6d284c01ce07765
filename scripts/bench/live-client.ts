// One of live.js's client processes (forked): opens the event streams it is given, times each
// delivery from the send time the event carries, and reports what arrived. Streams are spread
// over several such processes: each may open only so many files, and their parsing uses both cores.
import type { ClientRequest } from 'node:http'
import { performance } from 'node:perf_hooks'
import { inParallel, openStream } from './harness.js'

export interface StreamSpec { url: string, headers: Record<string, string>, name: string | null }
export type ToClient = { type: 'open', streams: StreamSpec[] } | { type: 'finish', posted: Array<[number, string]>, drainMs: number } | { type: 'close' }
export interface Tally { received: number, lost: number, duplicates: number, outOfOrder: number, unexpected: number, closedEarly: number }
export type FromClient = { type: 'opened', opened: number, failed: string[] } | { type: 'result', latencies: Float64Array, tally: Tally }

interface Stream { name: string | null, seen: Set<number>, lastId: number, req?: ClientRequest }

const streams: Stream[] = []
const tally: Tally = { received: 0, lost: 0, duplicates: 0, outOfOrder: 0, unexpected: 0, closedEarly: 0 }
const latencies: number[] = []
let closing = false
const send = (message: FromClient) => process.send!(message)

function onEvent (stream: Stream, data: string): void {
  const now = performance.timeOrigin + performance.now()
  const event = JSON.parse(data) as { id: number, name: string, value: string }
  if (event.value === 'warm-up') return
  if (stream.seen.has(event.id)) {
    tally.duplicates++
    return
  }
  stream.seen.add(event.id)
  if (event.id < stream.lastId) tally.outOfOrder++
  stream.lastId = Math.max(stream.lastId, event.id)
  if (stream.name !== null && stream.name !== event.name) {
    tally.unexpected++
    return
  }
  tally.received++
  latencies.push(now - Number(event.value))
}

function open (spec: StreamSpec): Promise<Stream> {
  const stream: Stream = { name: spec.name, seen: new Set(), lastId: 0 }
  return new Promise((resolve, reject) => {
    stream.req = openStream(spec.url, spec.headers, {
      answered: (res) => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${new URL(spec.url).pathname}: ${res.statusCode}`))
        res.on('close', () => { if (!closing) tally.closedEarly++ })
        resolve(stream)
      },
      event: (message) => { if (message.event === 'event') onEvent(stream, message.data) }
    })
    stream.req.setTimeout(30_000, () => stream.req!.destroy(new Error('no answer within 30 s')))
    stream.req.on('error', reject)
  })
}

process.on('message', async (message: ToClient) => {
  if (message.type === 'open') {
    const failed: string[] = []
    await inParallel(message.streams, 50, (spec) => open(spec).then((stream) => streams.push(stream), (err: Error) => failed.push(err.message)))
    send({ type: 'opened', opened: streams.length, failed })
  } else if (message.type === 'finish') {
    const wanted = (stream: Stream) => message.posted.filter(([, name]) => stream.name === null || stream.name === name)
    const expected = streams.reduce((sum, stream) => sum + wanted(stream).length, 0)
    const deadline = Date.now() + message.drainMs
    while (tally.received < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    tally.lost = streams.reduce((sum, stream) => sum + wanted(stream).filter(([id]) => !stream.seen.has(id)).length, 0)
    send({ type: 'result', latencies: Float64Array.from(latencies), tally })
  } else {
    closing = true
    for (const stream of streams) stream.req?.destroy()
    process.disconnect()
  }
})
