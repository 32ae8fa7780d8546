import {
  create,
  type DeliveryEvent,
  DeliveryEventSchema,
  type Envelope,
  EnvelopeSchema,
  fromBinary,
  toBinary,
} from '@petrel/proto';

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return toBinary(EnvelopeSchema, envelope);
}

export function decodeEnvelope(data: Uint8Array): Envelope {
  return fromBinary(EnvelopeSchema, data);
}

export function encodeEvent(event: DeliveryEvent): Uint8Array {
  return toBinary(DeliveryEventSchema, event);
}

export function decodeEvent(data: Uint8Array): DeliveryEvent {
  return fromBinary(DeliveryEventSchema, data);
}

export function newEnvelope(init: Parameters<typeof create<typeof EnvelopeSchema>>[1]): Envelope {
  return create(EnvelopeSchema, init);
}

export function newEvent(init: Parameters<typeof create<typeof DeliveryEventSchema>>[1]): DeliveryEvent {
  return create(DeliveryEventSchema, init);
}
