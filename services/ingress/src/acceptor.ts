import {
  BodyType,
  DeliverByMode,
  type DeliveryEvent,
  DsnReturn,
  type Envelope,
  EventKind,
  timestampFromDate,
  timestampMs,
} from '@petrel/proto';
import { deliveryEvent, newMessageId } from '@petrel/queue';
import { Enhanced, type Reply, ReplyCode, reply, type SessionInfo, type Transaction } from '@petrel/smtp';
import { type Logger, traceContextOf, tracer, type W3CTraceContext } from '@petrel/telemetry';
import { headerMessageId } from './header-message-id.ts';

/**
 * Makes one accepted message durable: every per-domain entry stored, or none (see
 * docs/queue.md). Resolves only once the queue acknowledged; rejects otherwise.
 */
export interface MessageWriter {
  write(messageId: string, envelopes: readonly Envelope[], body: Buffer): Promise<void>;
}

/** Where ACCEPTED events go (the events stream, batched per turn); never waited for. */
export interface EventSink {
  emit(event: DeliveryEvent): void;
}

export interface AcceptOptions {
  /** Trace header fields (Received, Authentication-Results) prepended to the message. */
  readonly prefix?: string;
  /** MailDomain of an authenticated sender (DKIM signing, per-tenant limits). */
  readonly senderDomain?: string;
}

const BODY_TYPES: Record<string, BodyType> = {
  '7BIT': BodyType.BODY_TYPE_7BIT,
  '8BITMIME': BodyType.BODY_TYPE_8BITMIME,
  BINARYMIME: BodyType.BODY_TYPE_BINARYMIME,
};

const queueUnavailable = reply(
  ReplyCode.LocalError,
  Enhanced.MailSystemTemp,
  'Queue unavailable, try again later',
);

/**
 * Turns an accepted transaction into queue entries, one per destination domain (recipients
 * grouped, with their DSN parameters), and answers the final dot / BDAT LAST: 250 with the
 * message id only once the queue acknowledged every entry, 451 4.3.0 otherwise.
 */
export class Acceptor {
  readonly #writer: MessageWriter;
  readonly #log: Logger;
  readonly #events: EventSink | undefined;

  constructor(writer: MessageWriter, log: Logger, events?: EventSink) {
    this.#writer = writer;
    this.#log = log;
    this.#events = events;
  }

  envelopes(
    messageId: string,
    session: SessionInfo,
    tx: Transaction,
    size: number,
    options: AcceptOptions & { trace?: W3CTraceContext } = {},
  ): Envelope[] {
    const byDomain = new Map<string, Transaction['recipients']>();
    for (const r of tx.recipients) {
      const list = byDomain.get(r.mailbox.domain) ?? [];
      list.push(r);
      byDomain.set(r.mailbox.domain, list);
    }
    const now = new Date();
    const receivedAt = timestampFromDate(now);
    const p = tx.parameters;
    const by = p.deliverBy;
    const sender = tx.sender?.address ?? '';
    const bodyType = BODY_TYPES[tx.bodyType] ?? BodyType.BODY_TYPE_7BIT;
    const dsnReturn =
      p.ret === 'FULL' ? DsnReturn.FULL : p.ret === 'HDRS' ? DsnReturn.HEADERS : DsnReturn.UNSPECIFIED;
    const deliverBy =
      by === undefined ? undefined : timestampFromDate(new Date(now.getTime() + by.seconds * 1000));
    const deliverByMode =
      by === undefined
        ? DeliverByMode.UNSPECIFIED
        : by.mode === 'R'
          ? DeliverByMode.RETURN
          : DeliverByMode.NOTIFY;
    // Message literals, as create(EnvelopeSchema) would make them (acceptor.test.ts compares):
    // create's reflection was ~4 % of the ingress per message.
    return [...byDomain].map(([domain, recipients]) => {
      const envelope: Envelope = {
        $typeName: 'petrel.v1.Envelope',
        messageId,
        sender,
        recipients: recipients.map((r) => ({
          $typeName: 'petrel.v1.Recipient',
          address: r.mailbox.address,
          orcpt: r.dsn.orcpt ?? '',
          notify: [...r.dsn.notify],
        })),
        destinationDomain: domain,
        receivedAt,
        client: {
          $typeName: 'petrel.v1.ClientInfo',
          remoteAddress: session.remoteAddress,
          remotePort: session.remotePort,
          helo: session.helo ?? '',
          tlsProtocol: session.tls?.protocol ?? '',
          tlsCipher: session.tls?.cipher ?? '',
          authIdentity: session.auth?.identity ?? '',
        },
        size: BigInt(size),
        bodyType,
        smtputf8: tx.smtputf8,
        dsnReturn,
        dsnEnvid: p.envid ?? '',
        requireTls: p.requireTls,
        senderDomain: options.senderDomain ?? '',
        content: { case: undefined },
        deliverByMode,
        deliverByTrace: by?.trace ?? false,
      };
      if (options.trace !== undefined) {
        envelope.trace = {
          $typeName: 'petrel.v1.TraceContext',
          traceparent: options.trace.traceparent,
          tracestate: options.trace.tracestate,
        };
      }
      if (deliverBy !== undefined) envelope.deliverBy = deliverBy;
      return envelope;
    });
  }

  async accept(
    session: SessionInfo,
    tx: Transaction,
    body: Buffer,
    options: AcceptOptions = {},
  ): Promise<Reply> {
    const messageId = newMessageId();
    // Not made active: nothing below it makes spans, and entering a context per message costs.
    const span = tracer.startSpan('smtp.accept');
    span.setAttribute('petrel.message_id', messageId);
    const message = options.prefix ? Buffer.concat([Buffer.from(options.prefix), body]) : body;
    const envelopes = this.envelopes(messageId, session, tx, message.length, {
      ...options,
      trace: traceContextOf(span),
    });
    try {
      await this.#writer.write(messageId, envelopes, message);
    } catch (error) {
      this.#log.warn({ err: error, messageId, session: session.id }, 'queue publish failed; answering 451');
      span.recordException(error instanceof Error ? error : new Error(String(error)));
      span.end();
      return queueUnavailable;
    }
    // After the queue's ack: an ACCEPTED event never names a message that was refused.
    this.#events?.emit(acceptedEvent(envelopes, session, message, body));
    this.#log.info(
      {
        messageId,
        session: session.id,
        recipients: tx.recipients.length,
        domains: envelopes.length,
        size: message.length,
      },
      'message queued',
    );
    span.end();
    return reply(ReplyCode.Ok, Enhanced.Ok, `OK queued as ${messageId}`);
  }
}

/** The ACCEPTED event of a queued message: who sent what, how big, to whom, from where. */
export function acceptedEvent(
  envelopes: readonly Envelope[],
  session: SessionInfo,
  message: Buffer,
  body: Buffer,
): DeliveryEvent {
  const first = envelopes[0] as Envelope;
  const atMs = first.receivedAt ? timestampMs(first.receivedAt) : Date.now();
  return deliveryEvent({
    eventId: `${first.messageId}.accepted`,
    kind: EventKind.ACCEPTED,
    messageId: first.messageId,
    destinationDomain: envelopes.length === 1 ? first.destinationDomain : '',
    recipients: envelopes.flatMap((e) => e.recipients.map((r) => r.address)),
    atMs,
    remoteHost: session.helo ?? '',
    tlsProtocol: session.tls?.protocol ?? '',
    trace: first.trace,
    sender: first.sender,
    size: BigInt(message.length),
    headerMessageId: headerMessageId(body),
    clientAddress: session.remoteAddress,
  });
}
