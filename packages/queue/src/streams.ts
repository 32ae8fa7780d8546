import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import {
  DEFERRED_SUBJECT_PREFIX,
  EVENTS_SUBJECT_PREFIX,
  OUTBOUND_SHARDS,
  OUTBOUND_SUBJECT_PREFIX,
} from './subjects.ts';

export const STREAM_OUTBOUND = 'PETREL_OUTBOUND';
export const STREAM_EVENTS = 'PETREL_EVENTS';
/** The single shared consumer of issue 2, replaced by one consumer per shard (deleted on start). */
export const LEGACY_CONSUMER_DELIVERY = 'delivery';

/** Durable consumer of one outbound shard; only the shard's owner pulls from it (docs/queue-model.md). */
export function deliveryConsumerName(shard: number): string {
  return `delivery-${shard}`;
}
/** Object store bucket holding bodies too large to travel inline in a queue entry (see message.ts). */
export const BUCKET_BODIES = 'PETREL_BODIES';
/** Longer than any entry stays queued, so a body outlives every entry that refers to it. */
export const BODIES_MAX_AGE_MS = 14 * 24 * 3600 * 1000;

const NANOS_PER_MS = 1_000_000;

export interface StreamOptions {
  /** 1 for a single node, 3 in a cluster. */
  replicas: number;
}

export function outboundStreamConfig(options: StreamOptions): Partial<StreamConfig> & { name: string } {
  return {
    name: STREAM_OUTBOUND,
    // Ready entries, and deferred ones waiting as message schedules (docs/queue-model.md).
    subjects: [`${OUTBOUND_SUBJECT_PREFIX}.>`, `${DEFERRED_SUBJECT_PREFIX}.>`],
    // Work queue: an entry disappears once a worker acked it (delivered or given up).
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: options.replicas,
    // Never drop accepted mail to make room: the stream has no message or byte limits, so the
    // discard policy never removes anything; when the server's storage is exhausted a publish is
    // refused (the client gets 451). "old" rather than "new" because message schedules (deferred
    // mail) are refused by the server on a discard-new stream.
    max_msgs: -1,
    max_bytes: -1,
    max_age: 0,
    discard: DiscardPolicy.Old,
    // Window in which a re-published entry with the same Nats-Msg-Id is dropped as a duplicate.
    duplicate_window: 2 * 60 * 1000 * NANOS_PER_MS,
    // The entries of one message (one per domain) are published as one atomic batch (nats-server 2.12).
    allow_atomic: true,
    // Deferred entries are `@at` schedules that the server republishes to the ready subject (2.12).
    allow_msg_schedules: true,
  };
}

export function eventsStreamConfig(options: StreamOptions): Partial<StreamConfig> & { name: string } {
  return {
    name: STREAM_EVENTS,
    subjects: [`${EVENTS_SUBJECT_PREFIX}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: options.replicas,
    // The recorder catches up from here after a Postgres outage: keep a week.
    max_age: 7 * 24 * 3600 * 1000 * NANOS_PER_MS,
    discard: DiscardPolicy.Old,
    duplicate_window: 2 * 60 * 1000 * NANOS_PER_MS,
  };
}

export interface DeliveryConsumerOptions {
  /** How long a worker may hold an entry without acking or signalling progress. */
  ackWaitMs: number;
}

export function deliveryConsumerConfig(
  options: DeliveryConsumerOptions,
  shard: number,
): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: deliveryConsumerName(shard),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: options.ackWaitMs * NANOS_PER_MS,
    max_deliver: -1,
    // Bounds what one owner holds per shard; deferred mail is not pending here (it waits as schedules).
    max_ack_pending: 1_000,
    filter_subject: `${OUTBOUND_SUBJECT_PREFIX}.${shard}`,
  };
}

/** Creates a stream or brings its config up to date; safe from several processes at once. */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, config);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    await jsm.streams.add(config).catch(async (e: unknown) => {
      // Another process created it meanwhile.
      if (!(e instanceof JetStreamApiError)) throw e;
      await jsm.streams.info(config.name);
    });
  }
}

/**
 * Creates a durable consumer, or brings its ack_wait and max_ack_pending up to date (the other
 * settings of a durable consumer cannot change); safe from several processes at once. `current`:
 * its config when the caller listed it already, null when it is known not to exist.
 */
export async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
  current?: ConsumerConfig | null,
): Promise<void> {
  let existing = current;
  if (existing === undefined) {
    existing = await jsm.consumers
      .info(stream, config.durable_name)
      .then((info) => info.config)
      .catch((error: unknown) => {
        if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound)
          return null;
        throw error;
      });
  }
  if (existing === null) {
    await jsm.consumers.add(stream, config).catch(async (error: unknown) => {
      // Another process created it meanwhile.
      if (!(error instanceof JetStreamApiError)) throw error;
      await jsm.consumers.info(stream, config.durable_name);
    });
  } else if (existing.ack_wait !== config.ack_wait || existing.max_ack_pending !== config.max_ack_pending) {
    await jsm.consumers.update(stream, config.durable_name, {
      ack_wait: config.ack_wait,
      max_ack_pending: config.max_ack_pending,
    });
  }
}

/** Creates or updates the streams and the bodies bucket; idempotent, safe from several processes at once. */
export async function ensureStreams(jsm: JetStreamManager, options: StreamOptions): Promise<void> {
  await ensureStream(jsm, outboundStreamConfig(options));
  await ensureStream(jsm, eventsStreamConfig(options));
  // Creates the bucket, or opens it unchanged when it exists.
  await new Objm(jsm.jetstream()).create(BUCKET_BODIES, {
    storage: StorageType.File,
    replicas: options.replicas,
    ttl: BODIES_MAX_AGE_MS * NANOS_PER_MS,
  });
}

/**
 * Creates the per-shard delivery consumers or brings their settings up to date; deletes the
 * single consumer of earlier releases first (a work-queue stream refuses overlapping consumers;
 * its unacked entries stay in the stream and come out of the shard consumers).
 */
export async function ensureDeliveryConsumers(
  jsm: JetStreamManager,
  options: DeliveryConsumerOptions,
): Promise<void> {
  await jsm.consumers.delete(STREAM_OUTBOUND, LEGACY_CONSUMER_DELIVERY).catch((error: unknown) => {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound))
      throw error;
  });
  const existing = new Map<string, ConsumerConfig>();
  for await (const info of jsm.consumers.list(STREAM_OUTBOUND)) existing.set(info.name, info.config);
  await Promise.all(
    Array.from({ length: OUTBOUND_SHARDS }, async (_, shard) => {
      const config = deliveryConsumerConfig(options, shard);
      await ensureConsumer(jsm, STREAM_OUTBOUND, config, existing.get(config.durable_name) ?? null);
    }),
  );
}
