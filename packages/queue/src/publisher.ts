import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import type { DeliveryEvent, Envelope } from '@petrel/proto';
import type { AckPublisher } from './ack-publisher.ts';
import { encodeEnvelope, encodeEvent, encodeEventBatch } from './codec.ts';
import { QueueError, QueueErrorCode } from './message.ts';
import {
  EVENTS_SUBJECT_PREFIX,
  EventSubject,
  entryDedupeId,
  eventKindName,
  outboundSubject,
  QueueHeader,
} from './subjects.ts';

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

/** Publishes one delivery event; its event id is the Nats-Msg-Id, so a re-published event is stored once. */
export async function publishEvent(
  js: JetStreamClient,
  event: DeliveryEvent,
  options: { timeoutMs: number },
): Promise<PubAck> {
  const name = eventKindName(event.kind);
  if (name === undefined) throw new TypeError(`event ${event.eventId} has no kind`);
  const subject = `${EVENTS_SUBJECT_PREFIX}.${name}`;
  return await js.publish(subject, encodeEvent(event), { msgID: event.eventId, timeout: options.timeoutMs });
}

/**
 * Publishes several events as one DeliveryEventBatch on `petrel.events.batch`: one stored stream
 * message instead of one each. No Nats-Msg-Id (a batch re-sent after a crash is a different
 * batch): consumers deduplicate by event id.
 */
export async function publishEventBatchWith(
  publisher: AckPublisher,
  events: readonly DeliveryEvent[],
  options: { timeoutMs: number },
): Promise<void> {
  const ack = await publisher.publish(
    EventSubject.batch,
    encodeEventBatch(events),
    undefined,
    options.timeoutMs,
  );
  if (ack?.error) {
    throw new QueueError(
      QueueErrorCode.Publish,
      `event batch refused: ${ack.error.description} (${ack.error.err_code})`,
    );
  }
  if (ack?.seq === undefined) throw new QueueError(QueueErrorCode.Publish, 'event batch not acknowledged');
}

/** JetStream's acknowledgement payload (ADR-2). */
const ACK = new TextEncoder().encode('+ACK');

/**
 * Acks a consumed entry and waits for the server to confirm it (what `JsMsg.ackAck()` does, over
 * the shared reply subscription instead of a request of its own). Until confirmed, the entry may
 * come back after ack_wait.
 */
export async function ackEntry(
  publisher: AckPublisher,
  replySubject: string,
  timeoutMs: number,
): Promise<void> {
  await publisher.publish(replySubject, ACK, undefined, timeoutMs);
}
