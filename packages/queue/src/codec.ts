import {
  create,
  type DeliveryEvent,
  DeliveryEventBatchSchema,
  DeliveryEventSchema,
  type Envelope,
  EnvelopeSchema,
  fromBinary,
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

export function newEvent(init: Parameters<typeof create<typeof DeliveryEventSchema>>[1]): DeliveryEvent {
  return create(DeliveryEventSchema, init);
}
