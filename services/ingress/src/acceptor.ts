import type { JetStreamClient } from '@nats-io/jetstream';
import { BodyType, timestampFromDate } from '@petrel/proto';
import { newEnvelope, newMessageId, publishEntry } from '@petrel/queue';
import { Enhanced, type Reply, ReplyCode, reply, type SessionInfo, type Transaction } from '@petrel/smtp';
import { type Logger, traceContextOf, tracer } from '@petrel/telemetry';

export interface AcceptorOptions {
  publishTimeoutMs: number;
}

const BODY_TYPES: Record<string, BodyType> = {
  '7BIT': BodyType.BODY_TYPE_7BIT,
  '8BITMIME': BodyType.BODY_TYPE_8BITMIME,
};

/**
 * Turns an accepted transaction into queue entries, one per destination domain (recipients
 * grouped), and answers the final dot: 250 only once JetStream acknowledged every entry, 451
 * otherwise (the client retries; entries already stored are dropped as duplicates only within
 * the same message id, see docs/architecture.md on at-least-once).
 */
export class Acceptor {
  readonly #js: JetStreamClient;
  readonly #log: Logger;
  readonly #options: AcceptorOptions;

  constructor(js: JetStreamClient, log: Logger, options: AcceptorOptions) {
    this.#js = js;
    this.#log = log;
    this.#options = options;
  }

  async accept(session: SessionInfo, tx: Transaction, body: Buffer): Promise<Reply> {
    const messageId = newMessageId();
    return await tracer.startActiveSpan('smtp.accept', async (span) => {
      span.setAttribute('petrel.message_id', messageId);
      const byDomain = new Map<string, string[]>();
      for (const r of tx.recipients) {
        const list = byDomain.get(r.mailbox.domain) ?? [];
        list.push(r.mailbox.address);
        byDomain.set(r.mailbox.domain, list);
      }
      const receivedAt = timestampFromDate(new Date());
      const trace = traceContextOf(span);
      try {
        await Promise.all(
          [...byDomain].map(([domain, recipients]) =>
            publishEntry(
              this.#js,
              newEnvelope({
                messageId,
                sender: tx.sender?.address ?? '',
                recipients: recipients.map((address) => ({ address })),
                destinationDomain: domain,
                receivedAt,
                client: {
                  remoteAddress: session.remoteAddress,
                  remotePort: session.remotePort,
                  helo: session.helo ?? '',
                },
                trace,
                size: BigInt(body.length),
                bodyType: BODY_TYPES[tx.bodyType] ?? BodyType.BODY_TYPE_7BIT,
                smtputf8: tx.smtputf8,
                content: { case: 'raw', value: body },
              }),
              { timeoutMs: this.#options.publishTimeoutMs },
            ),
          ),
        );
      } catch (error) {
        this.#log.warn({ err: error, messageId, session: session.id }, 'queue publish failed; answering 451');
        span.recordException(error instanceof Error ? error : new Error(String(error)));
        span.end();
        return reply(ReplyCode.LocalError, Enhanced.MailSystemTemp, 'Queue unavailable, try again later');
      }
      this.#log.info(
        { messageId, session: session.id, recipients: tx.recipients.length, size: body.length },
        'message queued',
      );
      span.end();
      return reply(ReplyCode.Ok, Enhanced.Ok, `OK queued as ${messageId}`);
    });
  }
}
