/**
 * The sender: POSTs the jobs of PETREL_WEBHOOKS (consumer `webhooks-sender`) to the subscription's
 * current URL, signed with its current secret (both from the live runtime config at send time).
 * 2xx: ack (the job is gone). Anything else: nak with the retry delay, so the job waits in
 * JetStream and survives restarts; past the maximum age: term. A job whose subscription was
 * removed (or no longer takes its event type) is dropped. Every attempt is one delivery log row.
 */
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { DomainIndex } from '@petrel/config';
import type { Dispatcher } from 'undici';
import { type ConsumeLoop, consumeLoop } from './consume-loop.ts';
import type { DeliveryLog, DeliveryLogRow } from './delivery-log.ts';
import type { WebhookLogger } from './logger.ts';
import type { WebhookMetrics } from './metrics.ts';
import { decodeJob, type WebhookJob } from './payload.ts';
import { postWebhook } from './post.ts';
import { type RetryPolicy, retryDelay } from './retry.ts';
import { SIGNATURE_HEADER, signatureHeader } from './signature.ts';
import { CONSUMER_SENDER, STREAM_WEBHOOKS } from './streams.ts';

/** Request headers besides Content-Type and the signature. */
export const WebhookHeader = {
  idempotencyKey: 'Idempotency-Key',
  event: 'Petrel-Event',
  attempt: 'Petrel-Delivery-Attempt',
  signature: SIGNATURE_HEADER,
} as const;

export interface SenderDeps {
  readonly js: JetStreamClient;
  readonly domains: () => DomainIndex;
  readonly log: WebhookLogger;
  readonly deliveryLog: DeliveryLog;
  readonly metrics: WebhookMetrics;
  readonly dispatcher: Dispatcher;
  readonly options: {
    readonly concurrency: number;
    readonly requestTimeoutMs: number;
    readonly retry: RetryPolicy;
    readonly userAgent: string;
    readonly now: () => number;
  };
}

export interface SenderStats {
  attempts: number;
  delivered: number;
  /** Failed attempts (to be retried or given up). */
  failed: number;
  gaveUp: number;
  /** Jobs of subscriptions that are gone. */
  dropped: number;
  undecodable: number;
}

const NANOS_PER_MS = 1_000_000;

export class Sender {
  readonly #deps: SenderDeps;
  readonly stats: SenderStats = {
    attempts: 0,
    delivered: 0,
    failed: 0,
    gaveUp: 0,
    dropped: 0,
    undecodable: 0,
  };
  #loop: ConsumeLoop | undefined;

  constructor(deps: SenderDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#loop ??= consumeLoop({
      js: this.#deps.js,
      stream: STREAM_WEBHOOKS,
      consumer: CONSUMER_SENDER,
      log: this.#deps.log,
      concurrency: this.#deps.options.concurrency,
      handle: (m) => this.#handle(m),
    });
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }

  async #handle(m: JsMsg): Promise<void> {
    const { log, deliveryLog, metrics, options } = this.#deps;
    let job: WebhookJob;
    try {
      job = decodeJob(m.data);
    } catch (error) {
      this.stats.undecodable++;
      log.error({ err: error, subject: m.subject, seq: m.seq }, 'webhook job does not decode; dropped');
      m.term('undecodable');
      return;
    }
    // Every delivery of the job counts, also one that timed out in a process that then died.
    const attempt = m.info.deliveryCount;
    const startedAt = options.now();
    const row = {
      deliveryId: `${job.id}.${attempt}`,
      createdAt: startedAt,
      subscription: job.subscription,
      domain: job.domain,
      eventKind: job.type,
      eventId: job.event.eventId,
      messageId: job.event.messageId,
      idempotencyKey: job.id,
      attempt,
    } satisfies Partial<DeliveryLogRow>;
    const fields = { subscription: job.subscription, eventId: job.event.eventId, key: job.id, attempt };

    const found = this.#deps.domains().webhook(job.subscription);
    if (found === undefined || !found.webhook.events.includes(job.type)) {
      const reason =
        found === undefined ? 'subscription removed' : `subscription no longer takes ${job.type} events`;
      log.info(fields, `webhook job dropped: ${reason}`);
      deliveryLog.record({
        ...row,
        url: found?.webhook.url ?? '',
        statusCode: null,
        error: `${reason}; dropped`,
        deliveredAt: null,
        durationMs: 0,
      });
      this.stats.dropped++;
      metrics.attempt('dropped', job.subscription);
      m.term(reason);
      return;
    }

    const { webhook } = found;
    // The stored bytes are the body: the same on every attempt (only the signature time changes).
    const body = Buffer.from(m.data);
    const outcome = await postWebhook(
      this.#deps.dispatcher,
      webhook.url,
      body,
      {
        'content-type': 'application/json',
        'user-agent': options.userAgent,
        [WebhookHeader.idempotencyKey]: job.id,
        [WebhookHeader.event]: job.type,
        [WebhookHeader.attempt]: String(attempt),
        [WebhookHeader.signature]: signatureHeader(webhook.secret, body, Math.floor(startedAt / 1000)),
      },
      options.requestTimeoutMs,
    );
    this.stats.attempts++;
    const statusCode = outcome.statusCode ?? null;
    if (outcome.ok) {
      deliveryLog.record({
        ...row,
        url: webhook.url,
        statusCode,
        error: '',
        deliveredAt: options.now(),
        durationMs: outcome.durationMs,
      });
      this.stats.delivered++;
      metrics.attempt('delivered', job.subscription);
      m.ack();
      return;
    }

    const reason = outcome.error?.message ?? 'failed';
    const queuedAt = Math.floor(m.info.timestampNanos / NANOS_PER_MS);
    const delay = retryDelay(options.retry, attempt, options.now() - queuedAt);
    this.stats.failed++;
    if (delay === undefined) {
      deliveryLog.record({
        ...row,
        url: webhook.url,
        statusCode,
        error: `${reason}; gave up after ${attempt} attempts`,
        deliveredAt: null,
        durationMs: outcome.durationMs,
      });
      this.stats.gaveUp++;
      metrics.attempt('gave_up', job.subscription);
      log.warn({ ...fields, url: webhook.url, err: outcome.error }, 'webhook given up: too old to retry');
      m.term('gave up: maximum age');
      return;
    }
    deliveryLog.record({
      ...row,
      url: webhook.url,
      statusCode,
      error: reason,
      deliveredAt: null,
      durationMs: outcome.durationMs,
    });
    metrics.attempt('failed', job.subscription);
    m.nak(delay);
  }
}
