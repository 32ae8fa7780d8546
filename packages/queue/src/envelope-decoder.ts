import { isUtf8 } from 'node:buffer';
import {
  type ClientInfo,
  create,
  type Envelope,
  EnvelopeSchema,
  type ObjectRef,
  type Recipient,
  type TraceContext,
} from '@petrel/proto';
import { envelopeSchemaMatches } from './fingerprint.ts';

/*
 * Queue entries decoded by hand: protobuf-es's reflective decoder was ~3.6 % of the delivery
 * worker's CPU per message. The result is what fromBinary(EnvelopeSchema, data) returns (deep
 * equal, `raw` a view into the entry like fromBinary's), for the schema recorded in
 * ENVELOPE_SCHEMA (fingerprint.ts). Anything this decoder does not take exactly as protobuf-es does (unknown
 * fields, other wire types, a message field given twice, which protobuf-es merges, invalid UTF-8,
 * lengths beyond their message, truncated input) makes it give up, and protobuf-es decodes the
 * whole entry: its errors and unknown-field preservation stay as they are. When envelope.proto
 * changes, protobuf-es decodes every entry and codec.test.ts fails until the decoder and
 * ENVELOPE_SCHEMA are updated.
 */

type Timestamp = NonNullable<Envelope['receivedAt']>;

/**
 * Which decoder reads entries: the hand-written one unless the schema changed, or protobuf-es
 * represents 64-bit integers as strings (BUF_BIGINT_DISABLE=1).
 */
export const envelopeDecoder: 'hand-written' | 'protobuf-es' =
  envelopeSchemaMatches && typeof create(EnvelopeSchema).size === 'bigint' ? 'hand-written' : 'protobuf-es';

/** Thrown where the decoder gives up; decodeEnvelopeByHand turns it into undefined. */
const GIVE_UP = new Error('left to protobuf-es');

const EMPTY = Buffer.alloc(0);
/** The entry being decoded, and the same octets as a Buffer for its string decoding. */
let buf: Uint8Array = EMPTY;
let text: Buffer = EMPTY;
let pos = 0;
/** The last 64-bit varint, in two 32-bit halves as protobuf-es reads it. */
let lo = 0;
let hi = 0;

/** Wire types. */
const VARINT = 0;
const LEN = 2;

/** The envelope in `data`, or undefined when protobuf-es is to decode it. */
export function decodeEnvelopeByHand(data: Uint8Array): Envelope | undefined {
  if (envelopeDecoder !== 'hand-written') return undefined;
  buf = data;
  text = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  pos = 0;
  try {
    return envelope(data.length);
  } catch {
    // GIVE_UP, or anything unforeseen: protobuf-es decides, and throws its own errors.
    return undefined;
  } finally {
    // Not to keep the last entry (up to the max payload) alive.
    buf = EMPTY;
    text = EMPTY;
  }
}

function envelope(end: number): Envelope {
  let messageId = '';
  let sender = '';
  const recipients: Recipient[] = [];
  let destinationDomain = '';
  let receivedAt: Timestamp | undefined;
  let client: ClientInfo | undefined;
  let trace: TraceContext | undefined;
  let size = 0n;
  let bodyType = 0;
  let smtputf8 = false;
  let dsnReturn = 0;
  let dsnEnvid = '';
  let requireTls = false;
  let deliverBy: Timestamp | undefined;
  let senderDomain = '';
  let content: Envelope['content'] = { case: undefined };
  let deliverByMode = 0;
  let deliverByTrace = false;
  while (pos < end) {
    // Repeated scalars: the last one wins, as in protobuf-es. A repeated message field is merged
    // there: left to it.
    switch (tag()) {
      case (1 << 3) | LEN:
        messageId = string(end);
        break;
      case (2 << 3) | LEN:
        sender = string(end);
        break;
      case (3 << 3) | LEN:
        recipients.push(recipient(end));
        break;
      case (4 << 3) | LEN:
        destinationDomain = string(end);
        break;
      case (5 << 3) | LEN:
        if (receivedAt !== undefined) throw GIVE_UP;
        receivedAt = timestamp(end);
        break;
      case (6 << 3) | LEN:
        if (client !== undefined) throw GIVE_UP;
        client = clientInfo(end);
        break;
      case (7 << 3) | LEN:
        if (trace !== undefined) throw GIVE_UP;
        trace = traceContext(end);
        break;
      case (8 << 3) | VARINT:
        varint64();
        size = hi === 0 ? BigInt(lo >>> 0) : (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
        break;
      case (9 << 3) | VARINT:
        bodyType = varint32() | 0;
        break;
      case (10 << 3) | VARINT:
        smtputf8 = bool();
        break;
      case (11 << 3) | VARINT:
        dsnReturn = varint32() | 0;
        break;
      case (12 << 3) | LEN:
        dsnEnvid = string(end);
        break;
      case (13 << 3) | VARINT:
        requireTls = bool();
        break;
      case (14 << 3) | LEN:
        if (deliverBy !== undefined) throw GIVE_UP;
        deliverBy = timestamp(end);
        break;
      case (15 << 3) | LEN:
        senderDomain = string(end);
        break;
      case (16 << 3) | LEN: {
        const length = varint32();
        const start = pos;
        pos += length;
        if (pos > end) throw GIVE_UP;
        // A view, not a copy, like protobuf-es's: the body is most of the entry.
        content = { case: 'raw', value: buf.subarray(start, pos) };
        break;
      }
      case (17 << 3) | LEN:
        if (content.case === 'object') throw GIVE_UP;
        content = { case: 'object', value: objectRef(end) };
        break;
      case (18 << 3) | VARINT:
        deliverByMode = varint32() | 0;
        break;
      case (19 << 3) | VARINT:
        deliverByTrace = bool();
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  // Properties in protobuf-es's order; message fields only when present, as there.
  const e: Envelope = {
    $typeName: 'petrel.v1.Envelope',
    messageId,
    sender,
    recipients,
    destinationDomain,
    size,
    bodyType,
    smtputf8,
    dsnReturn,
    dsnEnvid,
    requireTls,
    senderDomain,
    content,
    deliverByMode,
    deliverByTrace,
  };
  if (receivedAt !== undefined) e.receivedAt = receivedAt;
  if (client !== undefined) e.client = client;
  if (trace !== undefined) e.trace = trace;
  if (deliverBy !== undefined) e.deliverBy = deliverBy;
  return e;
}

function recipient(parentEnd: number): Recipient {
  const end = messageEnd(parentEnd);
  let address = '';
  let orcpt = '';
  const notify: string[] = [];
  while (pos < end) {
    switch (tag()) {
      case (1 << 3) | LEN:
        address = string(end);
        break;
      case (2 << 3) | LEN:
        orcpt = string(end);
        break;
      case (3 << 3) | LEN:
        notify.push(string(end));
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: 'petrel.v1.Recipient', address, orcpt, notify };
}

function timestamp(parentEnd: number): Timestamp {
  const end = messageEnd(parentEnd);
  let seconds = 0n;
  let nanos = 0;
  while (pos < end) {
    switch (tag()) {
      case (1 << 3) | VARINT:
        varint64();
        // Below 2^53: exact as a number; otherwise two's complement from both halves.
        seconds =
          hi >= 0 && hi < 0x200000
            ? BigInt(hi * 0x100000000 + (lo >>> 0))
            : BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
        break;
      case (2 << 3) | VARINT:
        nanos = varint32() | 0;
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: 'google.protobuf.Timestamp', seconds, nanos };
}

function clientInfo(parentEnd: number): ClientInfo {
  const end = messageEnd(parentEnd);
  let remoteAddress = '';
  let remotePort = 0;
  let helo = '';
  let tlsProtocol = '';
  let tlsCipher = '';
  let authIdentity = '';
  while (pos < end) {
    switch (tag()) {
      case (1 << 3) | LEN:
        remoteAddress = string(end);
        break;
      case (2 << 3) | VARINT:
        remotePort = varint32();
        break;
      case (3 << 3) | LEN:
        helo = string(end);
        break;
      case (4 << 3) | LEN:
        tlsProtocol = string(end);
        break;
      case (5 << 3) | LEN:
        tlsCipher = string(end);
        break;
      case (6 << 3) | LEN:
        authIdentity = string(end);
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  return {
    $typeName: 'petrel.v1.ClientInfo',
    remoteAddress,
    remotePort,
    helo,
    tlsProtocol,
    tlsCipher,
    authIdentity,
  };
}

function traceContext(parentEnd: number): TraceContext {
  const end = messageEnd(parentEnd);
  let traceparent = '';
  let tracestate = '';
  while (pos < end) {
    switch (tag()) {
      case (1 << 3) | LEN:
        traceparent = string(end);
        break;
      case (2 << 3) | LEN:
        tracestate = string(end);
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: 'petrel.v1.TraceContext', traceparent, tracestate };
}

function objectRef(parentEnd: number): ObjectRef {
  const end = messageEnd(parentEnd);
  let bucket = '';
  let name = '';
  let digest = '';
  while (pos < end) {
    switch (tag()) {
      case (1 << 3) | LEN:
        bucket = string(end);
        break;
      case (2 << 3) | LEN:
        name = string(end);
        break;
      case (3 << 3) | LEN:
        digest = string(end);
        break;
      default:
        throw GIVE_UP;
    }
  }
  if (pos !== end) throw GIVE_UP;
  return { $typeName: 'petrel.v1.ObjectRef', bucket, name, digest };
}

/*
 * Reading past the end of `buf` yields undefined, which reads as 0 in the bit operations below:
 * a varint stops there, and the position beyond its message's end makes the caller give up.
 */

function byte(): number {
  return buf[pos++] as number;
}

/** The end of a nested message, which has to lie within its parent. */
function messageEnd(parentEnd: number): number {
  const length = varint32();
  const end = pos + length;
  if (end > parentEnd) throw GIVE_UP;
  return end;
}

/** A field's key; those of this schema take one or two octets, anything longer is left to protobuf-es. */
function tag(): number {
  const b = byte();
  if ((b & 0x80) === 0) return b;
  const c = byte();
  if ((c & 0x80) !== 0) throw GIVE_UP;
  return (b & 0x7f) | (c << 7);
}

/**
 * protobuf-es's varint32read: up to ten octets, of which the low 32 bits count (uint32; `| 0`
 * makes it int32).
 */
function varint32(): number {
  let b = byte();
  if ((b & 0x80) === 0) return b;
  let v = b & 0x7f;
  b = byte();
  v |= (b & 0x7f) << 7;
  if ((b & 0x80) === 0) return v;
  b = byte();
  v |= (b & 0x7f) << 14;
  if ((b & 0x80) === 0) return v;
  b = byte();
  v |= (b & 0x7f) << 21;
  if ((b & 0x80) === 0) return v;
  b = byte();
  v |= (b & 0x0f) << 28;
  for (let n = 5; (b & 0x80) !== 0 && n < 10; n++) b = byte();
  if ((b & 0x80) !== 0) throw GIVE_UP;
  return v >>> 0;
}

/** protobuf-es's varint64read, into `lo` and `hi`. */
function varint64(): void {
  let l = 0;
  let h = 0;
  let b = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    b = byte();
    l |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      lo = l;
      hi = 0;
      return;
    }
  }
  b = byte();
  l |= (b & 0x0f) << 28;
  h = (b & 0x70) >> 4;
  if ((b & 0x80) === 0) {
    lo = l;
    hi = h;
    return;
  }
  for (let shift = 3; shift <= 31; shift += 7) {
    b = byte();
    h |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) {
      lo = l;
      hi = h;
      return;
    }
  }
  throw GIVE_UP;
}

/** protobuf-es's bool: any non-zero varint is true. */
function bool(): boolean {
  varint64();
  return lo !== 0 || hi !== 0;
}

/**
 * A UTF-8 string, as protobuf-es decodes proto3 strings (TextDecoder, fatal, BOM kept). Buffer's
 * decoder is faster per call; it substitutes U+FFFD where protobuf-es throws, so a string with
 * U+FFFD in it is checked, and an invalid one left to protobuf-es.
 */
function string(end: number): string {
  const length = varint32();
  const start = pos;
  pos += length;
  if (pos > end) throw GIVE_UP;
  if (length === 0) return '';
  const s = text.toString('utf8', start, pos);
  if (s.includes('\ufffd') && !isUtf8(buf.subarray(start, pos))) throw GIVE_UP;
  return s;
}
