/**
 * Connections per destination host (issue 4, "connection reuse"): several messages per
 * connection (the client sends RSET between transactions when needed), at most `maxPerHost`
 * open at once per host, idle ones closed after `idleMs`. A host's key is address, port and
 * protocol; the TLS name travels with the target.
 *
 * When a host has all its connections open and busy, a sender is queued behind the transaction
 * in progress on one of them (SmtpClient.acceptsFollower: pipelined after its content, when the
 * server offers PIPELINING) instead of waiting for one to be released: one write and one round
 * trip per message instead of two.
 */
import type { SmtpClient } from '@petrel/smtp';
import { recordsKey } from './dane.ts';
import type { Target } from './router.ts';

export interface PoolOptions {
  readonly connect: (target: Target) => Promise<SmtpClient>;
  /** Open connections per host at most (the destination's connection limit). */
  readonly maxPerHost: number;
  /** Transactions per connection before it is closed (providers limit this too). */
  readonly maxMessagesPerConnection: number;
  /** An idle connection is closed after this long (RFC 5321 §4.5.3.2.7 servers wait 5 min). */
  readonly idleMs: number;
}

interface Idle {
  readonly client: SmtpClient;
  readonly timer: NodeJS.Timeout;
}

interface Host {
  open: number;
  readonly idle: Idle[];
  readonly waiting: (() => void)[];
  /** Connections in use, with the number of senders using each (the one in progress, one queued). */
  readonly busy: Map<SmtpClient, number>;
}

export class ConnectionPool {
  readonly #options: PoolOptions;
  readonly #hosts = new Map<string, Host>();
  #closed = false;

  constructor(options: PoolOptions) {
    this.#options = options;
  }

  #host(target: Target): Host {
    // Connections differ by protocol, TLS demand and AUTH identity: never reuse one for another.
    // A connection authenticated against one TLSA RRset is not reused once the RRset changes.
    const tls =
      target.tls === undefined ? '' : `+${target.tls}${target.tlsa ? `:${recordsKey(target.tlsa)}` : ''}`;
    const user = target.auth === undefined ? '' : `${encodeURIComponent(target.auth.username)}@`;
    const key = `${target.lmtp ? 'lmtp' : 'smtp'}${tls}://${user}${target.host}:${target.port}`;
    let host = this.#hosts.get(key);
    if (host === undefined) {
      host = { open: 0, idle: [], waiting: [], busy: new Map() };
      this.#hosts.set(key, host);
    }
    return host;
  }

  /**
   * An idle connection to the target, a new one while the host has room, else a busy one that
   * takes a queued transaction; else waits. Throws if connecting fails.
   */
  async acquire(target: Target): Promise<SmtpClient> {
    const host = this.#host(target);
    const max = this.#maxMessages(target);
    for (;;) {
      while (host.idle.length > 0) {
        const idle = host.idle.pop() as Idle;
        clearTimeout(idle.timer);
        if (idle.client.usable) return this.#use(host, idle.client);
        this.#gone(host);
      }
      if (host.open < this.#options.maxPerHost) break;
      for (const [client, users] of host.busy) {
        // Room for this transaction within the connection's message limit.
        if (users === 1 && client.acceptsFollower && client.messagesSent + 2 <= max) {
          host.busy.set(client, 2);
          return client;
        }
      }
      await new Promise<void>((resolve) => host.waiting.push(resolve));
    }
    host.open++;
    try {
      return this.#use(host, await this.#options.connect(target));
    } catch (error) {
      this.#gone(host);
      throw error;
    }
  }

  #use(host: Host, client: SmtpClient): SmtpClient {
    host.busy.set(client, 1);
    return client;
  }

  /** A sender is done with a connection; true when nobody else uses it. */
  #done(host: Host, client: SmtpClient): boolean {
    const users = (host.busy.get(client) ?? 1) - 1;
    if (users > 0) {
      host.busy.set(client, users);
      // The queued transaction is now the one in progress: another may queue behind it.
      host.waiting.shift()?.();
      return false;
    }
    host.busy.delete(client);
    return true;
  }

  #maxMessages(target: Target): number {
    return Math.min(target.maxMessages ?? Number.POSITIVE_INFINITY, this.#options.maxMessagesPerConnection);
  }

  /** Gives a connection back after a transaction: kept for reuse when it is still good. */
  release(target: Target, client: SmtpClient): void {
    const host = this.#host(target);
    if (!this.#done(host, client)) return;
    const max = this.#maxMessages(target);
    if (this.#closed || !client.usable || client.messagesSent >= max) {
      void client.quit().catch(() => undefined);
      this.#gone(host);
      return;
    }
    const idle: Idle = {
      client,
      timer: setTimeout(() => {
        const i = host.idle.indexOf(idle);
        if (i !== -1) host.idle.splice(i, 1);
        void client.quit().catch(() => undefined);
        this.#gone(host);
      }, this.#options.idleMs),
    };
    idle.timer.unref();
    host.idle.push(idle);
    host.waiting.shift()?.();
  }

  /** A connection that failed: closed, its slot freed. */
  discard(target: Target, client: SmtpClient): void {
    client.close();
    const host = this.#host(target);
    // The sender queued behind fails too and discards it again: the slot is freed once.
    if (this.#done(host, client)) this.#gone(host);
  }

  #gone(host: Host): void {
    host.open--;
    host.waiting.shift()?.();
  }

  /** Open connections per host key (for metrics and tests). */
  get open(): ReadonlyMap<string, number> {
    return new Map([...this.#hosts].map(([k, h]) => [k, h.open]));
  }

  /** QUITs every idle connection; later releases close theirs. */
  async close(): Promise<void> {
    this.#closed = true;
    const quits: Promise<void>[] = [];
    for (const host of this.#hosts.values()) {
      for (const idle of host.idle.splice(0)) {
        clearTimeout(idle.timer);
        quits.push(idle.client.quit().catch(() => undefined));
        host.open--;
      }
    }
    await Promise.all(quits);
  }
}
