/**
 * Composition of the webhooks (called by a service's main, e.g. the recorder's): the consumers, the
 * fan-out, the sender, the delivery log and the HTTP agent. Call ensureWebhookStream first (with
 * the streams), as ensureStreams is called for the queue.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { DomainIndex } from '@petrel/config';
import type pg from 'pg';
import { Agent, type Dispatcher } from 'undici';
import { DeliveryLog, type DeliveryLogStats } from './delivery-log.ts';
import { FanOut, type FanOutStats } from './fanout.ts';
import type { WebhookLogger } from './logger.ts';
import { webhookMetrics } from './metrics.ts';
import { resolveOptions, type WebhookOptions } from './options.ts';
import { Sender, type SenderStats } from './sender.ts';
import { ensureWebhookConsumers } from './streams.ts';

export interface WebhooksDeps {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** The delivery log's Postgres (migrated); its 'error' events are the caller's to handle. */
  readonly pool: pg.Pool;
  /** The live runtime config (liveDomains(...).current). */
  readonly domains: () => DomainIndex;
  readonly log: WebhookLogger;
  readonly options?: WebhookOptions;
  /** The HTTP client; by default an undici Agent of our own, closed by stop(). */
  readonly dispatcher?: Dispatcher;
}

export interface WebhookStats {
  readonly fanout: Readonly<FanOutStats>;
  readonly sender: Readonly<SenderStats>;
  readonly deliveryLog: Readonly<DeliveryLogStats>;
}

export interface Webhooks {
  /** Stops consuming, waits for the POSTs in flight and writes the delivery log (bounded). */
  stop(): Promise<void>;
  stats(): WebhookStats;
  /** After retention dropped partitions: the delivery log makes sure of them again. */
  forgetPartitions(): void;
}

export async function startWebhooks(deps: WebhooksDeps): Promise<Webhooks> {
  const options = resolveOptions(deps.options);
  await ensureWebhookConsumers(deps.jsm, {
    fanout: { ackWaitMs: options.fanoutAckWaitMs, maxAckPending: options.fanoutConcurrency * 64 },
    sender: { ackWaitMs: options.senderAckWaitMs, maxAckPending: options.maxPendingJobs },
  });
  const metrics = webhookMetrics();
  const deliveryLog = new DeliveryLog(deps.pool, deps.log, options.deliveryLog);
  const dispatcher =
    deps.dispatcher ??
    new Agent({
      connections: options.connectionsPerOrigin,
      connectTimeout: Math.min(options.requestTimeoutMs, 10_000),
    });
  const fanout = new FanOut({
    js: deps.js,
    domains: deps.domains,
    log: deps.log,
    metrics,
    options: { concurrency: options.fanoutConcurrency, publishTimeoutMs: options.publishTimeoutMs },
  });
  const sender = new Sender({
    js: deps.js,
    domains: deps.domains,
    log: deps.log,
    deliveryLog,
    metrics,
    dispatcher,
    options: {
      concurrency: options.concurrency,
      requestTimeoutMs: options.requestTimeoutMs,
      retry: options.retry,
      userAgent: options.userAgent,
      now: options.now,
    },
  });
  fanout.start();
  sender.start();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        // No new jobs first; then the POSTs in flight finish (each within the request timeout).
        await fanout.stop();
        await sender.stop();
        await deliveryLog.close();
        if (deps.dispatcher === undefined) await dispatcher.close();
      })();
      return stopped;
    },
    stats: () => ({ fanout: fanout.stats, sender: sender.stats, deliveryLog: deliveryLog.stats }),
    forgetPartitions: () => deliveryLog.forgetPartitions(),
  };
}
