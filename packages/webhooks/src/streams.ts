/**
 * The webhooks' JetStream objects: the job stream PETREL_WEBHOOKS (work queue: a job is gone once
 * its POST succeeded or was given up), the fan-out's consumer on PETREL_EVENTS and the sender's
 * consumer on PETREL_WEBHOOKS.
 */
import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { EventSubject, ensureConsumer, ensureStream, STREAM_EVENTS } from '@petrel/queue';

export const STREAM_WEBHOOKS = 'PETREL_WEBHOOKS';
export const WEBHOOKS_SUBJECT_PREFIX = 'petrel.webhooks';
/** Durable consumer of PETREL_EVENTS that turns events into jobs. */
export const CONSUMER_FANOUT = 'webhooks';
/** Durable consumer of PETREL_WEBHOOKS that POSTs the jobs. */
export const CONSUMER_SENDER = 'webhooks-sender';
/** Jobs older than this are dropped by the stream even when no sender ran (maxAgeMs is capped to it). */
export const JOBS_MAX_AGE_MS = 7 * 24 * 3_600_000;
/**
 * Window in which a job published again with the same Nats-Msg-Id (its idempotency key) is dropped.
 * Longer than the fan-out's ack wait, so an events message redelivered after a crash between
 * publishing its jobs and acking it makes no second job; later duplicates (an event re-published
 * by a worker much later) are left to the receivers' Idempotency-Key.
 */
export const JOBS_DUPLICATE_WINDOW_MS = 5 * 60_000;

const NANOS_PER_MS = 1_000_000;

/**
 * One subject per subscription (a hash of its id: ids hold characters subjects may not), so that an
 * operator can purge one subscription's backlog with a subject filter.
 */
export function jobSubject(subscriptionId: string): string {
  return `${WEBHOOKS_SUBJECT_PREFIX}.${createHash('sha256').update(subscriptionId).digest('hex').slice(0, 16)}`;
}

export function webhookStreamConfig(options: { replicas: number }): Partial<StreamConfig> & { name: string } {
  return {
    name: STREAM_WEBHOOKS,
    subjects: [`${WEBHOOKS_SUBJECT_PREFIX}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: options.replicas,
    max_msgs: -1,
    max_bytes: -1,
    max_age: JOBS_MAX_AGE_MS * NANOS_PER_MS,
    discard: DiscardPolicy.Old,
    duplicate_window: JOBS_DUPLICATE_WINDOW_MS * NANOS_PER_MS,
  };
}

/** Creates or updates PETREL_WEBHOOKS; idempotent, safe from several processes at once. */
export async function ensureWebhookStream(
  jsm: JetStreamManager,
  options: { replicas: number },
): Promise<void> {
  await ensureStream(jsm, webhookStreamConfig(options));
}

export interface ConsumerOptions {
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
}

export function fanoutConsumerConfig(options: ConsumerOptions): Partial<ConsumerConfig> {
  return {
    durable_name: CONSUMER_FANOUT,
    ack_policy: AckPolicy.Explicit,
    // From the moment webhooks first run: a new installation does not replay the week of events
    // the stream keeps. Only at creation; afterwards the consumer resumes where it stood.
    deliver_policy: DeliverPolicy.New,
    ack_wait: options.ackWaitMs * NANOS_PER_MS,
    max_ack_pending: options.maxAckPending,
    max_deliver: -1,
    // ACCEPTED (one per message) and PURGED events are never sent: not delivered to us at all.
    filter_subjects: [
      EventSubject.delivered,
      EventSubject.deferred,
      EventSubject.bounced,
      EventSubject.expired,
      EventSubject.suppressed,
      EventSubject.batch,
    ],
  };
}

export function senderConsumerConfig(options: ConsumerOptions): Partial<ConsumerConfig> {
  return {
    durable_name: CONSUMER_SENDER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: options.ackWaitMs * NANOS_PER_MS,
    // Jobs waiting for their retry (nak with delay) count as pending: this bounds the backlog of
    // failing receivers that may be held before new jobs wait behind it.
    max_ack_pending: options.maxAckPending,
    max_deliver: -1,
  };
}

/** Creates the fan-out and sender consumers or brings their limits up to date. */
export async function ensureWebhookConsumers(
  jsm: JetStreamManager,
  options: { fanout: ConsumerOptions; sender: ConsumerOptions },
): Promise<void> {
  await ensureConsumer(jsm, STREAM_EVENTS, {
    ...fanoutConsumerConfig(options.fanout),
    durable_name: CONSUMER_FANOUT,
  });
  await ensureConsumer(jsm, STREAM_WEBHOOKS, {
    ...senderConsumerConfig(options.sender),
    durable_name: CONSUMER_SENDER,
  });
}
