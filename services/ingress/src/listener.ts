import { type BlockList, createServer, isIPv6, type Server, type Socket } from 'node:net';
import { ServerSession, type ServerSessionOptions, type SessionHandler } from '@petrel/smtp';
import type { Logger } from '@petrel/telemetry';

export interface ListenerOptions extends Omit<ServerSessionOptions, 'proxy'> {
  host: string;
  port: number;
  /** Peers in these networks must start with a PROXY header; nobody else may send one. */
  proxyNetworks?: BlockList | undefined;
}

/** Whether a peer address is in a block list (IPv4-mapped IPv6 addresses count as IPv4). */
export function inNetworks(list: BlockList | undefined, address: string): boolean {
  if (list === undefined || address === '') return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return list.check(mapped[1], 'ipv4');
  return list.check(address, isIPv6(address) ? 'ipv6' : 'ipv4');
}

/** A TCP listener running one SMTP session per connection, with orderly shutdown. */
export class SmtpListener {
  readonly #server: Server;
  readonly #sessions = new Map<Socket, { session: ServerSession; done: Promise<void> }>();
  readonly #log: Logger;
  readonly #options: ListenerOptions;
  #nextId = 0;

  constructor(handler: SessionHandler, log: Logger, options: ListenerOptions) {
    this.#log = log;
    this.#options = options;
    this.#server = createServer({ noDelay: true }, (socket) => {
      const id = `${process.pid.toString(36)}-${options.mode ?? 'mx'}-${(this.#nextId++).toString(36)}`;
      const proxy = inNetworks(options.proxyNetworks, socket.remoteAddress ?? '');
      const session = new ServerSession(socket, id, handler, { ...options, proxy });
      const done = session
        .run()
        .catch((error: unknown) => this.#log.error({ err: error, session: id }, 'session failed'))
        .finally(() => this.#sessions.delete(socket));
      this.#sessions.set(socket, { session, done });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: this.#options.host, port: this.#options.port, backlog: 2048 }, () =>
        resolve(),
      );
    });
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : this.#options.port;
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  /** Stops accepting connections; sessions already open carry on until close(). */
  stopAccepting(): Promise<void> {
    return new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /**
   * Stops accepting connections; idle sessions get 421 4.3.2, transactions in progress may finish
   * within graceMs; what is left after that is cut.
   */
  async close(graceMs: number): Promise<void> {
    const closed = this.stopAccepting();
    const entries = [...this.#sessions.values()];
    for (const { session } of entries) session.shutdown();
    const all = Promise.all(entries.map((e) => e.done));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([all, timeout]);
    clearTimeout(timer);
    for (const socket of this.#sessions.keys()) socket.destroy();
    await closed;
  }
}
