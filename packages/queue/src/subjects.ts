import { EventKind } from '@petrel/proto';

/**
 * The queue's subject space (see docs/architecture.md, "Queue contract").
 *
 * Outbound entries are published to `petrel.outbound.<shard>` where the shard is a stable hash
 * of the destination domain: all mail for one domain lands on one subject, so a worker can own a
 * shard (and with it the per-destination limits) without scanning the whole stream.
 */
export const OUTBOUND_SUBJECT_PREFIX = 'petrel.outbound';
export const EVENTS_SUBJECT_PREFIX = 'petrel.events';
/** Deferred entries: message schedules, one per entry (see deferred.ts). */
export const DEFERRED_SUBJECT_PREFIX = 'petrel.deferred';
export const OUTBOUND_SHARDS = 64;

/** FNV-1a 32-bit: stable across processes and releases (the shard is part of the stored subject). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

export function shardOf(domain: string): number {
  return fnv1a(domain.toLowerCase()) % OUTBOUND_SHARDS;
}

export function outboundSubject(domain: string): string {
  return `${OUTBOUND_SUBJECT_PREFIX}.${shardOf(domain)}`;
}

/**
 * The name of each event kind: the last token of its subject, the `kind` of the state tables,
 * the type of a webhook. Undefined for UNSPECIFIED.
 */
export const EVENT_KIND_NAMES = {
  [EventKind.UNSPECIFIED]: undefined,
  [EventKind.ACCEPTED]: 'accepted',
  [EventKind.DELIVERED]: 'delivered',
  [EventKind.DEFERRED]: 'deferred',
  [EventKind.BOUNCED]: 'bounced',
  [EventKind.EXPIRED]: 'expired',
  [EventKind.SUPPRESSED]: 'suppressed',
  [EventKind.PURGED]: 'purged',
} as const satisfies Record<EventKind, string | undefined>;
export type EventKindName = NonNullable<(typeof EVENT_KIND_NAMES)[EventKind]>;

export function eventKindName(kind: EventKind): EventKindName | undefined {
  return EVENT_KIND_NAMES[kind];
}

export const EventSubject = {
  accepted: `${EVENTS_SUBJECT_PREFIX}.accepted`,
  delivered: `${EVENTS_SUBJECT_PREFIX}.delivered`,
  deferred: `${EVENTS_SUBJECT_PREFIX}.deferred`,
  bounced: `${EVENTS_SUBJECT_PREFIX}.bounced`,
  expired: `${EVENTS_SUBJECT_PREFIX}.expired`,
  suppressed: `${EVENTS_SUBJECT_PREFIX}.suppressed`,
  purged: `${EVENTS_SUBJECT_PREFIX}.purged`,
  /** A DeliveryEventBatch: events of several kinds (decodeEvents reads both forms). */
  batch: `${EVENTS_SUBJECT_PREFIX}.batch`,
} as const;
export type EventSubject = (typeof EventSubject)[keyof typeof EventSubject];

/** Message headers set on queue entries (besides Nats-Msg-Id, the JetStream dedupe key). */
export const QueueHeader = {
  messageId: 'Petrel-Message-Id',
  destination: 'Petrel-Destination',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

/** JetStream dedupe key of one queue entry: the message id and the destination domain. */
export function entryDedupeId(messageId: string, domain: string): string {
  return `${messageId}.${domain.toLowerCase()}`;
}
