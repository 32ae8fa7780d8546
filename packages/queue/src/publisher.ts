import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { type DeliveryEvent, type Envelope, EventKind } from '@petrel/proto';
import { encodeEnvelope, encodeEvent } from './codec.ts';
import { EventSubject, entryDedupeId, outboundSubject, QueueHeader } from './subjects.ts';

/**
 * Publishes one queue entry and resolves only once JetStream acknowledged it (stored, and
 * replicated when the stream has replicas). Re-publishing the same entry within the duplicate
 * window is a no-op (same Nats-Msg-Id), which is what makes a retried publish safe.
 */
export async function publishEntry(
  js: JetStreamClient,
  envelope: Envelope,
  options: { timeoutMs: number; dedupeId?: string; payload?: Uint8Array },
): Promise<PubAck> {
  const h = headers();
  h.set(QueueHeader.messageId, envelope.messageId);
  h.set(QueueHeader.destination, envelope.destinationDomain);
  if (envelope.trace?.traceparent) h.set(QueueHeader.traceparent, envelope.trace.traceparent);
  if (envelope.trace?.tracestate) h.set(QueueHeader.tracestate, envelope.trace.tracestate);
  return await js.publish(
    outboundSubject(envelope.destinationDomain),
    options.payload ?? encodeEnvelope(envelope),
    {
      msgID: options.dedupeId ?? entryDedupeId(envelope.messageId, envelope.destinationDomain),
      headers: h,
      timeout: options.timeoutMs,
    },
  );
}

const subjectByKind: Record<EventKind, EventSubject | undefined> = {
  [EventKind.UNSPECIFIED]: undefined,
  [EventKind.ACCEPTED]: EventSubject.accepted,
  [EventKind.DELIVERED]: EventSubject.delivered,
  [EventKind.DEFERRED]: EventSubject.deferred,
  [EventKind.BOUNCED]: EventSubject.bounced,
  [EventKind.EXPIRED]: EventSubject.expired,
};

export async function publishEvent(
  js: JetStreamClient,
  event: DeliveryEvent,
  options: { timeoutMs: number },
): Promise<PubAck> {
  const subject = subjectByKind[event.kind];
  if (subject === undefined) throw new TypeError(`event ${event.eventId} has no kind`);
  return await js.publish(subject, encodeEvent(event), { msgID: event.eventId, timeout: options.timeoutMs });
}
