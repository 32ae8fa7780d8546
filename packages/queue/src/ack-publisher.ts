import { createInbox, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

/** The JetStream publish acknowledgement (or refusal) as the server sends it. */
export interface PubAckReply {
  readonly stream?: string;
  readonly seq?: number;
  readonly duplicate?: boolean;
  /** Atomic batch commits: entries stored. */
  readonly count?: number;
  readonly error?: { readonly code: number; readonly err_code: number; readonly description: string };
}

export const AckPublisherErrorCode = {
  Timeout: 'PETREL_ERR_QUEUE_ACK_TIMEOUT',
  NoResponders: 'PETREL_ERR_QUEUE_NO_RESPONDERS',
  Closed: 'PETREL_ERR_QUEUE_PUBLISHER_CLOSED',
} as const;
export type AckPublisherErrorCode = (typeof AckPublisherErrorCode)[keyof typeof AckPublisherErrorCode];

export class AckPublisherError extends Error {
  readonly code: AckPublisherErrorCode;
  constructor(code: AckPublisherErrorCode, message: string) {
    super(message);
    this.name = 'AckPublisherError';
    this.code = code;
  }
}

interface Pending {
  resolve(reply: PubAckReply | undefined): void;
  reject(error: Error): void;
  deadline: number;
}

/**
 * Publishes and waits for JetStream's acknowledgement over one shared reply subscription
 * (`<inbox>.<n>`), instead of a request per message: nats.js creates error objects (with stack
 * traces) for every request up front, which cost a fifth of the ingress's CPU at thousands of
 * messages per second. Deadlines are swept by one timer.
 */
export class AckPublisher {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #subscription: Subscription;
  readonly #pending = new Map<number, Pending>();
  readonly #sweeper: NodeJS.Timeout;
  #next = 0;
  #closed = false;

  constructor(nc: NatsConnection, options: { sweepMs?: number } = {}) {
    this.#nc = nc;
    this.#prefix = createInbox();
    this.#subscription = nc.subscribe(`${this.#prefix}.*`, {
      callback: (error, msg) => {
        if (error) return;
        const id = Number(msg.subject.slice(this.#prefix.length + 1));
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        // A status message (no JetStream stream behind the subject) has headers and no body.
        if (msg.headers?.code === 503) {
          pending.reject(
            new AckPublisherError(AckPublisherErrorCode.NoResponders, 'no stream for the subject'),
          );
          return;
        }
        if (msg.data.length === 0) {
          pending.resolve(undefined);
          return;
        }
        try {
          pending.resolve(msg.json<PubAckReply>());
        } catch (e) {
          pending.reject(e instanceof Error ? e : new Error(String(e)));
        }
      },
    });
    this.#sweeper = setInterval(() => this.#sweep(), options.sweepMs ?? 100);
    this.#sweeper.unref();
  }

  #sweep(): void {
    const now = performance.now();
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(id);
        p.reject(
          new AckPublisherError(AckPublisherErrorCode.Timeout, 'no acknowledgement within the timeout'),
        );
      }
    }
  }

  /** Publishes and resolves with the server's reply (undefined for an empty one). */
  publish(
    subject: string,
    data: Uint8Array,
    headers: MsgHdrs | undefined,
    timeoutMs: number,
  ): Promise<PubAckReply | undefined> {
    if (this.#closed) {
      return Promise.reject(new AckPublisherError(AckPublisherErrorCode.Closed, 'publisher closed'));
    }
    const id = ++this.#next;
    return new Promise<PubAckReply | undefined>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, deadline: performance.now() + timeoutMs });
      try {
        this.#nc.publish(subject, data, { reply: `${this.#prefix}.${id}`, ...(headers ? { headers } : {}) });
      } catch (error) {
        this.#pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#subscription.unsubscribe();
    for (const p of this.#pending.values()) {
      p.reject(new AckPublisherError(AckPublisherErrorCode.Closed, 'publisher closed'));
    }
    this.#pending.clear();
  }
}
