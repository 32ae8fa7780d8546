/**
 * The fan-out: reads delivery events (consumer `webhooks` on PETREL_EVENTS) and queues one job per
 * (subscription, event) in PETREL_WEBHOOKS, its idempotency key as Nats-Msg-Id, so that an events
 * message seen twice (redelivered, or its events published again) makes no second job within the
 * duplicate window. The events message is acked only once all its jobs are stored; if storing
 * fails it comes back later and the jobs already stored are dropped as duplicates.
 */
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { DomainIndex } from '@petrel/config';
import type { DeliveryEvent } from '@petrel/proto';
import { decodeEvents, STREAM_EVENTS } from '@petrel/queue';
import { type ConsumeLoop, consumeLoop } from './consume-loop.ts';
import type { WebhookLogger } from './logger.ts';
import { matchEvent } from './matching.ts';
import type { WebhookMetrics } from './metrics.ts';
import { encodeJob, jobFor, type WebhookJob } from './payload.ts';
import { CONSUMER_FANOUT, jobSubject } from './streams.ts';

export interface FanOutDeps {
  readonly js: JetStreamClient;
  readonly domains: () => DomainIndex;
  readonly log: WebhookLogger;
  readonly metrics: WebhookMetrics;
  readonly options: {
    readonly concurrency: number;
    readonly publishTimeoutMs: number;
  };
}

export interface FanOutStats {
  /** Events messages settled, and the events in them. */
  messages: number;
  events: number;
  /** Jobs stored, and jobs JetStream already had (same idempotency key). */
  jobs: number;
  duplicates: number;
  undecodable: number;
  /** Events messages whose jobs could not all be stored (retried). */
  failures: number;
}

/** How long an events message whose jobs could not be stored waits before it comes again. */
const RETRY_MS = 1_000;

export class FanOut {
  readonly #deps: FanOutDeps;
  readonly stats: FanOutStats = {
    messages: 0,
    events: 0,
    jobs: 0,
    duplicates: 0,
    undecodable: 0,
    failures: 0,
  };
  #loop: ConsumeLoop | undefined;

  constructor(deps: FanOutDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#loop ??= consumeLoop({
      js: this.#deps.js,
      stream: STREAM_EVENTS,
      consumer: CONSUMER_FANOUT,
      log: this.#deps.log,
      concurrency: this.#deps.options.concurrency,
      handle: (m) => this.#handle(m),
    });
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }

  async #handle(m: JsMsg): Promise<void> {
    const { log } = this.#deps;
    let events: DeliveryEvent[];
    try {
      events = decodeEvents(m.subject, m.data);
    } catch (error) {
      this.stats.undecodable++;
      log.error(
        { err: error, subject: m.subject, seq: m.seq },
        'event message does not decode; no webhooks for it',
      );
      m.term('undecodable');
      return;
    }
    const index = this.#deps.domains();
    const jobs: WebhookJob[] = [];
    for (const event of events) {
      for (const match of matchEvent(index, event)) jobs.push(jobFor(match, event));
    }
    try {
      const acks = await Promise.all(jobs.map((job) => this.#publish(job)));
      const duplicates = acks.filter((ack) => ack.duplicate).length;
      m.ack();
      this.stats.messages++;
      this.stats.events += events.length;
      this.stats.jobs += jobs.length - duplicates;
      this.stats.duplicates += duplicates;
      this.#deps.metrics.jobs(jobs.length - duplicates, duplicates);
    } catch (error) {
      this.stats.failures++;
      log.warn(
        { err: error, seq: m.seq, jobs: jobs.length },
        'webhook jobs not stored; the events message comes again',
      );
      m.nak(RETRY_MS);
    }
  }

  #publish(job: WebhookJob): Promise<{ duplicate: boolean }> {
    return this.#deps.js.publish(jobSubject(job.subscription), encodeJob(job), {
      msgID: job.id,
      timeout: this.#deps.options.publishTimeoutMs,
    });
  }
}
