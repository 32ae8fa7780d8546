import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { DomainIndex } from '@petrel/config';
import { create, type Envelope, EventKind, SmtpReplySchema, timestampFromDate } from '@petrel/proto';
import {
  CONSUMER_DELIVERY,
  decodeEnvelope,
  loadBody,
  newEvent,
  publishEntry,
  publishEvent,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import { type Reply, SmtpClient, SmtpClientError } from '@petrel/smtp';
import { contextFrom, type Logger, tracer } from '@petrel/telemetry';
import type { DeliveryConfig } from './config.ts';
import { type NextHop, nextHop } from './router.ts';

export interface WorkerDeps {
  js: JetStreamClient;
  log: Logger;
  domains: () => DomainIndex;
  config: DeliveryConfig;
}

interface Outcome {
  delivered: string[];
  deferred: string[];
  bounced: string[];
  reply: Reply | undefined;
  error: string;
  remoteAddress: string;
}

const EVENT_TIMEOUT_MS = 5_000;

/**
 * Consumes the outbound queue and relays each entry to its next hop. An entry is acked only
 * after the next hop's 2xx for every recipient (or a permanent refusal); temporary failures
 * are nak'ed with a delay so the entry comes back later, and a worker that dies mid-delivery
 * leaves the entry unacked, so JetStream redelivers it after ack_wait (at-least-once).
 */
export class DeliveryWorker {
  readonly #deps: WorkerDeps;
  #messages: ConsumerMessages | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #stopping = false;

  constructor(deps: WorkerDeps) {
    this.#deps = deps;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  async run(): Promise<void> {
    const { js, config } = this.#deps;
    const consumer = await js.consumers.get(STREAM_OUTBOUND, CONSUMER_DELIVERY);
    const messages = await consumer.consume({ max_messages: config.concurrency });
    this.#messages = messages;
    for await (const m of messages) {
      if (this.#stopping) {
        // Not started: hand it straight back for another worker.
        m.nak();
        continue;
      }
      const task = this.#handle(m).catch((error: unknown) => {
        this.#deps.log.error({ err: error, seq: m.seq }, 'delivery task failed; entry will be redelivered');
      });
      this.#inFlight.add(task);
      void task.finally(() => this.#inFlight.delete(task));
      while (this.#inFlight.size >= config.concurrency) await Promise.race(this.#inFlight);
    }
  }

  /** Stops taking entries and waits for deliveries in progress (up to graceMs). */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    await this.#messages?.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.#inFlight),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }

  #retryDelay(attempt: number): number {
    const delays = this.#deps.config.retryDelaysMs;
    return delays[Math.min(attempt - 1, delays.length - 1)] ?? 60_000;
  }

  async #handle(m: JsMsg): Promise<void> {
    const envelope = decodeEnvelope(m.data);
    const attempt = m.info.deliveryCount;
    const parent = contextFrom(envelope.trace);
    await tracer.startActiveSpan('smtp.deliver', {}, parent, async (span) => {
      span.setAttribute('petrel.message_id', envelope.messageId);
      span.setAttribute('petrel.attempt', attempt);
      const started = Date.now();
      const hop = nextHop(envelope, this.#deps.domains(), this.#deps.config.smarthost);
      const keepAlive = setInterval(() => m.working(), Math.max(1000, this.#deps.config.ackWaitMs / 3));
      let outcome: Outcome;
      try {
        outcome = hop
          ? await this.#attempt(envelope, hop)
          : {
              delivered: [],
              deferred: envelope.recipients.map((r) => r.address),
              bounced: [],
              reply: undefined,
              error: `no route to ${envelope.destinationDomain}`,
              remoteAddress: '',
            };
      } finally {
        clearInterval(keepAlive);
      }
      await this.#settle(m, envelope, attempt, hop, outcome, Date.now() - started);
      span.end();
    });
  }

  async #attempt(envelope: Envelope, hop: NextHop): Promise<Outcome> {
    const recipients = envelope.recipients.map((r) => r.address);
    const fail = (error: string, reply?: Reply): Outcome => ({
      delivered: [],
      deferred: reply && reply.code >= 500 ? [] : recipients,
      bounced: reply && reply.code >= 500 ? recipients : [],
      reply,
      error,
      remoteAddress: '',
    });
    if (hop.lmtp) return fail('LMTP next hops arrive with the delivery issue');
    let body: Buffer;
    try {
      body = await loadBody(this.#deps.js, envelope);
    } catch (error) {
      return fail(error instanceof Error ? error.message : String(error));
    }
    let client: SmtpClient;
    try {
      client = await SmtpClient.connect({
        host: hop.host,
        port: hop.port,
        localName: this.#deps.config.hostname,
        timeoutMs: this.#deps.config.connectTimeoutMs,
      });
    } catch (error) {
      const e = error instanceof SmtpClientError ? error : undefined;
      return fail(error instanceof Error ? error.message : String(error), e?.reply);
    }
    try {
      const result = await client.send({ from: envelope.sender, to: recipients }, body);
      const outcome: Outcome = {
        delivered: [],
        deferred: [],
        bounced: [],
        reply: result.dataReply ?? result.rejected[0]?.reply,
        error: '',
        remoteAddress: client.remoteAddress,
      };
      for (const r of result.rejected)
        (r.reply.code >= 500 ? outcome.bounced : outcome.deferred).push(r.address);
      const data = result.dataReply;
      if (data !== undefined) {
        const list =
          data.code < 300 ? outcome.delivered : data.code >= 500 ? outcome.bounced : outcome.deferred;
        list.push(...result.accepted.map((a) => a.address));
      }
      await client.quit();
      return outcome;
    } catch (error) {
      client.close();
      return fail(error instanceof Error ? error.message : String(error));
    }
  }

  async #settle(
    m: JsMsg,
    envelope: Envelope,
    attempt: number,
    hop: NextHop | undefined,
    o: Outcome,
    durationMs: number,
  ) {
    const { js, log } = this.#deps;
    const base = {
      messageId: envelope.messageId,
      destinationDomain: envelope.destinationDomain,
      at: timestampFromDate(new Date()),
      attempt,
      remoteHost: hop ? `${hop.host}:${hop.port}` : '',
      remoteAddress: o.remoteAddress,
      reply: o.reply
        ? create(SmtpReplySchema, {
            code: o.reply.code,
            enhanced: o.reply.enhanced ?? '',
            text: o.reply.lines.join(' '),
          })
        : undefined,
      durationMs: BigInt(durationMs),
      trace: envelope.trace,
      error: o.error,
    };
    const emit = async (kind: EventKind, recipients: string[], suffix: string) => {
      if (recipients.length === 0) return;
      await publishEvent(
        js,
        newEvent({
          ...base,
          kind,
          recipients,
          eventId: `${envelope.messageId}.${envelope.destinationDomain}.${attempt}.${suffix}`,
        }),
        {
          timeoutMs: EVENT_TIMEOUT_MS,
        },
      ).catch((error: unknown) => log.warn({ err: error }, 'event publish failed'));
    };
    await emit(EventKind.DELIVERED, o.delivered, 'delivered');
    await emit(EventKind.BOUNCED, o.bounced, 'bounced');
    await emit(EventKind.DEFERRED, o.deferred, 'deferred');
    const logFields = {
      messageId: envelope.messageId,
      domain: envelope.destinationDomain,
      attempt,
      reply: base.reply?.text,
      error: o.error,
    };
    if (o.delivered.length > 0) log.info({ ...logFields, recipients: o.delivered.length }, 'delivered');
    if (o.bounced.length > 0)
      log.warn(
        { ...logFields, recipients: o.bounced },
        'refused permanently (DSN arrives with the delivery issue)',
      );

    if (o.deferred.length === 0) {
      await m.ackAck();
      return;
    }
    const delay = this.#retryDelay(attempt);
    if (o.delivered.length === 0 && o.bounced.length === 0) {
      log.info({ ...logFields, retryInMs: delay }, 'deferred');
      m.nak(delay);
      return;
    }
    // Some recipients are done: queue the rest as a new entry, then finish this one.
    const remaining = envelope.recipients.filter((r) => o.deferred.includes(r.address));
    await publishEntry(
      js,
      { ...envelope, recipients: remaining },
      {
        timeoutMs: EVENT_TIMEOUT_MS,
        dedupeId: `${envelope.messageId}.${envelope.destinationDomain}.${attempt}`,
      },
    );
    log.info(
      { ...logFields, recipients: remaining.length },
      'partially deferred; remaining recipients requeued',
    );
    await m.ackAck();
  }
}
