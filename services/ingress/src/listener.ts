import { createServer, type Server, type Socket } from 'node:net';
import { ServerSession, type ServerSessionOptions, type SessionHandler } from '@petrel/smtp';
import type { Logger } from '@petrel/telemetry';

export interface ListenerOptions extends ServerSessionOptions {
  host: string;
  port: number;
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
      const id = `${process.pid.toString(36)}-${(this.#nextId++).toString(36)}`;
      const session = new ServerSession(socket, id, handler, options);
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
      this.#server.listen({ host: this.#options.host, port: this.#options.port }, () => resolve());
    });
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : this.#options.port;
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  /**
   * Stops accepting connections; idle sessions get 421 4.3.2, transactions in progress may finish
   * within graceMs; what is left after that is cut.
   */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
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
