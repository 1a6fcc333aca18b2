// A TCP proxy a test owns, between a client and a server on loopback, to make network faults the test can
// count on: reset every connection, hold all traffic (a partition: bytes wait, as TCP would retransmit them),
// refuse new connections (nothing listens) — and undo each.
import { createServer, connect, type Server, type Socket } from "node:net";

interface Pair {
  client: Socket;
  server: Socket;
  /** Bytes held during a partition, per direction, delivered in order when it heals. */
  held: { toServer: Buffer[]; toClient: Buffer[] };
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private server: Server | undefined;
  private partitioned = false;

  private constructor(
    readonly host: string,
    private listenPort: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on `host:port` (0 = a free port) and forwards to `target`. */
  static async start(
    target: { host: string; port: number },
    listen: { host?: string; port?: number } = {},
  ): Promise<TcpProxy> {
    const proxy = new TcpProxy(listen.host ?? "127.0.0.1", listen.port ?? 0, target);
    await proxy.listen();
    return proxy;
  }

  get port(): number {
    return this.listenPort;
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.pairs.size;
  }

  /** Every connection is reset (RST) at once, as a NAT or firewall dropping its state does. */
  resetAll(): void {
    for (const pair of [...this.pairs]) this.endPair(pair, true);
  }

  /** Holds all traffic, both ways, on old and new connections, until heal(). */
  partition(): void {
    this.partitioned = true;
  }

  /** Delivers what was held and lets traffic flow again. */
  heal(): void {
    this.partitioned = false;
    for (const pair of this.pairs) {
      for (const chunk of pair.held.toServer.splice(0)) pair.server.write(chunk);
      for (const chunk of pair.held.toClient.splice(0)) pair.client.write(chunk);
    }
  }

  /** Stops listening (connects are refused) and resets the open connections. */
  async refuse(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.resetAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again, on the same port. */
  accept(): Promise<void> {
    return this.listen();
  }

  async close(): Promise<void> {
    await this.refuse();
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((client) => this.open(client));
      server.once("error", reject);
      server.listen(this.listenPort, this.host, () => {
        const address = server.address();
        if (typeof address === "object" && address) this.listenPort = address.port;
        this.server = server;
        resolve();
      });
    });
  }

  private open(client: Socket): void {
    const server = connect(this.target.port, this.target.host);
    const pair: Pair = { client, server, held: { toServer: [], toClient: [] } };
    this.pairs.add(pair);
    client.on("data", (chunk: Buffer) => {
      if (this.partitioned) pair.held.toServer.push(chunk);
      else server.write(chunk);
    });
    server.on("data", (chunk: Buffer) => {
      if (this.partitioned) pair.held.toClient.push(chunk);
      else client.write(chunk);
    });
    const end = (): void => this.endPair(pair, false);
    for (const socket of [client, server]) {
      socket.on("error", end);
      socket.on("close", end);
      socket.on("end", end);
    }
  }

  private endPair(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    for (const socket of [pair.client, pair.server]) {
      if (reset && !socket.destroyed) socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}
