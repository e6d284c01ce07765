// A TCP proxy between the app and PostgreSQL that a test can stop, restart and freeze,
// to make the database "go away" for real without touching the shared server.
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Test } from 'tap'

interface Link {
  client: Socket
  upstream: Socket
  /** data is dropped both ways, as by a network that went silent */
  frozen: boolean
}

export class TcpProxy {
  /** the port the proxy listens on (127.0.0.1); kept across stop/start */
  port = 0
  private server: Server | null = null
  private readonly links = new Set<Link>()
  private freezeNew = false

  constructor (private readonly target: { host: string, port: number }) {}

  /** Listens (again) on `port`, or on a free port the first time. */
  async start (): Promise<void> {
    const server = createServer((client) => this.link(client))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    const address = server.address()
    if (typeof address === 'object' && address !== null) this.port = address.port
    this.server = server
    this.freezeNew = false
  }

  /** Closes every connection and stops listening: connecting is then refused. */
  async stop (): Promise<void> {
    for (const { client, upstream } of this.links) {
      client.destroy()
      upstream.destroy()
    }
    this.links.clear()
    const server = this.server
    this.server = null
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Stops listening, so connecting is refused, while the connections open now carry on. */
  refuseNew (): void {
    // the listening socket closes at once; close()'s callback would wait for the open connections
    this.server?.close()
    this.server = null
  }

  /** Every open and every new connection stays open but carries nothing any more. */
  freeze (): void {
    for (const link of this.links) link.frozen = true
    this.freezeNew = true
  }

  /** New connections carry data again; those frozen before stay frozen. */
  acceptFresh (): void {
    this.freezeNew = false
  }

  private link (client: Socket): void {
    const upstream = connect(this.target.port, this.target.host)
    const link: Link = { client, upstream, frozen: this.freezeNew }
    this.links.add(link)
    client.on('data', (data) => { if (!link.frozen) upstream.write(data) })
    upstream.on('data', (data) => { if (!link.frozen) client.write(data) })
    const close = () => {
      this.links.delete(link)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close).on('error', close)
    upstream.on('close', close).on('error', close)
  }
}

/** A started proxy to `target`, stopped when the test ends. */
export async function tcpProxy (t: Test, target: { host: string, port: number }): Promise<TcpProxy> {
  const proxy = new TcpProxy(target)
  await proxy.start()
  t.teardown(() => proxy.stop())
  return proxy
}
