import { type DeliveryEvent, DeliveryEventBatchSchema } from '@petrel/proto';
import { schemaFingerprint } from './fingerprint.ts';
import {
  beginMessage,
  endMessage,
  hasUnknown,
  putBigInt,
  putInt,
  putString,
  putTimestamp,
  startWriting,
  written,
} from './proto-writer.ts';

/*
 * Event batches encoded by hand: protobuf-es's reflective encoder was ~3 % of the delivery
 * worker's CPU per message. The output is byte for byte what toBinary(DeliveryEventBatchSchema)
 * writes, for the schema recorded in ENCODED_EVENT_SCHEMA. Events protobuf-es would treat
 * differently (unknown fields, which it writes; values it refuses or converts, such as a number
 * for a uint64 or an object that is not a message of the field's type) go to protobuf-es, as do
 * all events once delivery_event.proto changes; codec.test.ts then fails until this encoder and
 * ENCODED_EVENT_SCHEMA are updated.
 */

export const ENCODED_EVENT_SCHEMA =
  'petrel.v1.DeliveryEventBatch{1=events:list-message:petrel.v1.DeliveryEvent} ' +
  'petrel.v1.DeliveryEvent{1=eventId:scalar:9,2=kind:enum,3=messageId:scalar:9,4=destinationDomain:scalar:9,' +
  '5=recipients:list-scalar:9,6=at:message:google.protobuf.Timestamp!p1,7=attempt:scalar:13,' +
  '8=remoteHost:scalar:9,9=remoteAddress:scalar:9,10=tlsProtocol:scalar:9,11=reply:message:petrel.v1.SmtpReply!p1,' +
  '12=durationMs:scalar:4,13=trace:message:petrel.v1.TraceContext!p1,14=error:scalar:9,15=sender:scalar:9,' +
  '16=size:scalar:4,17=headerMessageId:scalar:9,18=clientAddress:scalar:9,19=dsnMessageId:scalar:9} ' +
  'google.protobuf.Timestamp{1=seconds:scalar:3,2=nanos:scalar:5} ' +
  'petrel.v1.SmtpReply{1=code:scalar:13,2=enhanced:scalar:9,3=text:scalar:9} ' +
  'petrel.v1.TraceContext{1=traceparent:scalar:9,2=tracestate:scalar:9}';

/** Which encoder writes event batches: the hand-written one unless the schema changed. */
export const eventBatchEncoder: 'hand-written' | 'protobuf-es' =
  schemaFingerprint(DeliveryEventBatchSchema) === ENCODED_EVENT_SCHEMA ? 'hand-written' : 'protobuf-es';

/** The events as a DeliveryEventBatch, or undefined when protobuf-es is to encode them. */
export function encodeEventBatchByHand(events: readonly DeliveryEvent[]): Uint8Array | undefined {
  if (eventBatchEncoder !== 'hand-written' || !events.every(handled)) return undefined;
  startWriting();
  for (const e of events) {
    const event = beginMessage(1);
    putString(1, e.eventId);
    putInt(2, e.kind);
    putString(3, e.messageId);
    putString(4, e.destinationDomain);
    for (const r of e.recipients) putString(5, r, true);
    if (e.at !== undefined) putTimestamp(6, e.at);
    putInt(7, e.attempt);
    putString(8, e.remoteHost);
    putString(9, e.remoteAddress);
    putString(10, e.tlsProtocol);
    if (e.reply !== undefined) {
      const reply = beginMessage(11);
      putInt(1, e.reply.code);
      putString(2, e.reply.enhanced);
      putString(3, e.reply.text);
      endMessage(reply);
    }
    putBigInt(12, e.durationMs);
    if (e.trace !== undefined) {
      const trace = beginMessage(13);
      putString(1, e.trace.traceparent);
      putString(2, e.trace.tracestate);
      endMessage(trace);
    }
    putString(14, e.error);
    putString(15, e.sender);
    putBigInt(16, e.size);
    putString(17, e.headerMessageId);
    putString(18, e.clientAddress);
    putString(19, e.dsnMessageId);
    endMessage(event);
  }
  return written();
}

/**
 * An event as create(DeliveryEventSchema) makes it, with values toBinary writes as they are:
 * anything else is left to protobuf-es, which converts it, writes its unknown fields or throws.
 */
function handled(e: DeliveryEvent): boolean {
  return (
    e?.$typeName === 'petrel.v1.DeliveryEvent' &&
    !hasUnknown(e) &&
    typeof e.eventId === 'string' &&
    isInt32(e.kind) &&
    typeof e.messageId === 'string' &&
    typeof e.destinationDomain === 'string' &&
    Array.isArray(e.recipients) &&
    e.recipients.every(isString) &&
    (e.at === undefined ||
      (e.at?.$typeName === 'google.protobuf.Timestamp' &&
        !hasUnknown(e.at) &&
        isInt64(e.at.seconds) &&
        isInt32(e.at.nanos))) &&
    isUint32(e.attempt) &&
    typeof e.remoteHost === 'string' &&
    typeof e.remoteAddress === 'string' &&
    typeof e.tlsProtocol === 'string' &&
    (e.reply === undefined ||
      (e.reply?.$typeName === 'petrel.v1.SmtpReply' &&
        !hasUnknown(e.reply) &&
        isUint32(e.reply.code) &&
        typeof e.reply.enhanced === 'string' &&
        typeof e.reply.text === 'string')) &&
    isUint64(e.durationMs) &&
    (e.trace === undefined ||
      (e.trace?.$typeName === 'petrel.v1.TraceContext' &&
        !hasUnknown(e.trace) &&
        typeof e.trace.traceparent === 'string' &&
        typeof e.trace.tracestate === 'string')) &&
    typeof e.error === 'string' &&
    typeof e.sender === 'string' &&
    isUint64(e.size) &&
    typeof e.headerMessageId === 'string' &&
    typeof e.clientAddress === 'string' &&
    typeof e.dsnMessageId === 'string'
  );
}

function isString(v: unknown): boolean {
  return typeof v === 'string';
}

function isInt32(v: unknown): boolean {
  return typeof v === 'number' && (v | 0) === v;
}

function isUint32(v: unknown): boolean {
  return typeof v === 'number' && v >>> 0 === v;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function isInt64(v: unknown): boolean {
  return typeof v === 'bigint' && v >= INT64_MIN && v <= INT64_MAX;
}

function isUint64(v: unknown): boolean {
  return typeof v === 'bigint' && v >= 0n && v <= UINT64_MAX;
}
