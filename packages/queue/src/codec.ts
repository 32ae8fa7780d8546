import {
  create,
  type DeliveryEvent,
  DeliveryEventBatchSchema,
  DeliveryEventSchema,
  type Envelope,
  EnvelopeSchema,
  type EventKind,
  fromBinary,
  type TraceContext,
  toBinary,
} from '@petrel/proto';
import { decodeEnvelopeByHand } from './envelope-decoder.ts';
import { encodeEventBatchByHand } from './event-encoder.ts';
import { EventSubject } from './subjects.ts';

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return toBinary(EnvelopeSchema, envelope);
}

/** Decoded by hand (envelope-decoder.ts); by protobuf-es where that gives up. */
export function decodeEnvelope(data: Uint8Array): Envelope {
  return decodeEnvelopeByHand(data) ?? fromBinary(EnvelopeSchema, data);
}

export function encodeEvent(event: DeliveryEvent): Uint8Array {
  return toBinary(DeliveryEventSchema, event);
}

export function decodeEvent(data: Uint8Array): DeliveryEvent {
  return fromBinary(DeliveryEventSchema, data);
}

/** Encoded by hand (event-encoder.ts); by protobuf-es where that declines. */
export function encodeEventBatch(events: readonly DeliveryEvent[]): Uint8Array {
  return (
    encodeEventBatchByHand(events) ??
    toBinary(DeliveryEventBatchSchema, create(DeliveryEventBatchSchema, { events: [...events] }))
  );
}

/** The events of one message of the events stream: a batch on `petrel.events.batch`, else one event. */
export function decodeEvents(subject: string, data: Uint8Array): DeliveryEvent[] {
  if (subject === EventSubject.batch) return fromBinary(DeliveryEventBatchSchema, data).events;
  return [fromBinary(DeliveryEventSchema, data)];
}

export function newEnvelope(init: Parameters<typeof create<typeof EnvelopeSchema>>[1]): Envelope {
  return create(EnvelopeSchema, init);
}

/**
 * The fields of a delivery event, its time in milliseconds since the epoch. Fields an event may
 * not have (no attempt, no remote host: an ACCEPTED or an operator's event) default to the
 * protobuf zero value.
 */
export interface EventFields {
  readonly eventId: string;
  readonly kind: EventKind;
  readonly messageId: string;
  readonly destinationDomain?: string;
  readonly recipients: string[];
  readonly atMs: number;
  readonly attempt?: number;
  readonly remoteHost?: string;
  readonly remoteAddress?: string;
  readonly tlsProtocol?: string;
  readonly reply?: { readonly code: number; readonly enhanced: string; readonly text: string } | undefined;
  readonly durationMs?: bigint;
  readonly trace?: TraceContext | undefined;
  readonly error?: string;
  readonly sender?: string;
  /** ACCEPTED: size, Message-ID header field, client address. */
  readonly size?: bigint;
  readonly headerMessageId?: string;
  readonly clientAddress?: string;
  readonly dsnMessageId?: string;
}

/**
 * A DeliveryEvent as a message literal, what newEvent (create) makes of the same values
 * (codec.test.ts compares): create's reflection was ~1.5 % of the worker, one event per message.
 */
export function deliveryEvent(f: EventFields): DeliveryEvent {
  const event: DeliveryEvent = {
    $typeName: 'petrel.v1.DeliveryEvent',
    eventId: f.eventId,
    kind: f.kind,
    messageId: f.messageId,
    destinationDomain: f.destinationDomain ?? '',
    recipients: f.recipients,
    at: {
      $typeName: 'google.protobuf.Timestamp',
      seconds: BigInt(Math.floor(f.atMs / 1000)),
      // As protobuf-es's timestampFromMs, for times after 1970.
      nanos: (f.atMs % 1000) * 1_000_000,
    },
    attempt: f.attempt ?? 0,
    remoteHost: f.remoteHost ?? '',
    remoteAddress: f.remoteAddress ?? '',
    tlsProtocol: f.tlsProtocol ?? '',
    durationMs: f.durationMs ?? 0n,
    error: f.error ?? '',
    sender: f.sender ?? '',
    size: f.size ?? 0n,
    headerMessageId: f.headerMessageId ?? '',
    clientAddress: f.clientAddress ?? '',
    dsnMessageId: f.dsnMessageId ?? '',
  };
  if (f.reply !== undefined) {
    event.reply = {
      $typeName: 'petrel.v1.SmtpReply',
      code: f.reply.code,
      enhanced: f.reply.enhanced,
      text: f.reply.text,
    };
  }
  if (f.trace !== undefined) {
    event.trace = {
      $typeName: 'petrel.v1.TraceContext',
      traceparent: f.trace.traceparent,
      tracestate: f.trace.tracestate,
    };
  }
  return event;
}

export function newEvent(init: Parameters<typeof create<typeof DeliveryEventSchema>>[1]): DeliveryEvent {
  return create(DeliveryEventSchema, init);
}
