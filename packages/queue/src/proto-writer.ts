import type { Envelope } from '@petrel/proto';

/*
 * The protobuf writer of the hand-written encoders (message.ts, event-encoder.ts): fields go
 * into one scratch buffer, copied out at the end. Each string is written once, and its length
 * (one octet below 128) filled in after it. Output is byte for byte what protobuf-es's
 * BinaryWriter writes for the same calls. Encoders run synchronously, one at a time.
 */

type Timestamp = NonNullable<Envelope['receivedAt']>;

/** Grown when a message does not fit. */
let scratch = Buffer.allocUnsafe(16 * 1024);
let at = 0;

/** Wire type of length-delimited fields. */
const LEN = 2;

/** Starts a new message at the beginning of the scratch buffer. */
export function startWriting(): void {
  at = 0;
}

/** A copy of what was written since startWriting. */
export function written(): Buffer {
  const out = Buffer.allocUnsafe(at);
  scratch.copy(out, 0, 0, at);
  return out;
}

/** Unknown fields are written by protobuf-es: encoders hand such messages to it. */
export function hasUnknown(m: { $unknown?: unknown[] } | undefined): boolean {
  return m?.$unknown !== undefined && m.$unknown.length > 0;
}

function reserve(octets: number): void {
  if (at + octets <= scratch.length) return;
  const grown = Buffer.allocUnsafe(Math.max(scratch.length * 2, at + octets));
  scratch.copy(grown, 0, 0, at);
  scratch = grown;
}

function putKey(field: number, wireType: number): void {
  reserve(2);
  at = putVarint(scratch, at, (field << 3) | wireType);
}

/** A string field; an empty one is left out (implicit presence) unless it is a list element. */
export function putString(field: number, s: string, listElement = false): void {
  if (s === '' && !listElement) return;
  putKey(field, LEN);
  const n = s.length;
  // At most 3 octets per UTF-16 code unit, 5 for the length.
  reserve(5 + 3 * n);
  if (n < 0x80) {
    // ASCII copied here: for the short strings of envelopes and events, cheaper than a call into
    // Buffer's encoder (and its byteLength for a longer one). The length takes one octet.
    let p = at + 1;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      scratch[p++] = c;
    }
    if (i === n) {
      scratch[at] = n;
      at = p;
      return;
    }
  }
  if (3 * n < 0x80) {
    const octets = scratch.write(s, at + 1, 'utf8');
    scratch[at] = octets;
    at += 1 + octets;
  } else {
    at = putVarint(scratch, at, Buffer.byteLength(s));
    at += scratch.write(s, at, 'utf8');
  }
}

/** An integer field (uint32, int32, enum, bool as 0/1); zero is left out. */
export function putInt(field: number, v: number): void {
  if (v === 0) return;
  putKey(field, 0);
  reserve(10);
  if (v > 0) {
    at = putVarint(scratch, at, v);
    return;
  }
  // Negative int32: 64-bit two's complement, ten octets.
  putBigVarint(BigInt.asUintN(64, BigInt(v)));
}

/** A 64-bit integer field (uint64, int64); zero is left out. */
export function putBigInt(field: number, v: bigint): void {
  if (v === 0n) return;
  putKey(field, 0);
  reserve(10);
  if (v > 0n && v <= MAX_SAFE) {
    at = putVarint(scratch, at, Number(v));
    return;
  }
  putBigVarint(BigInt.asUintN(64, v));
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function putBigVarint(u: bigint): void {
  let rest = u;
  while (rest > 0x7fn) {
    scratch[at++] = Number(rest & 0x7fn) | 0x80;
    rest >>= 7n;
  }
  scratch[at++] = Number(rest);
}

/** Starts a message field: its length, not yet known, gets one octet for now. */
export function beginMessage(field: number): number {
  putKey(field, LEN);
  reserve(1);
  return at++;
}

/** Fills in the length of the message field begun at `start`, moving it when it needs more octets. */
export function endMessage(start: number): void {
  const length = at - start - 1;
  if (length < 0x80) {
    scratch[start] = length;
    return;
  }
  const extra = varintSize(length) - 1;
  reserve(extra);
  scratch.copyWithin(start + 1 + extra, start + 1, at);
  putVarint(scratch, start, length);
  at += extra;
}

export function putTimestamp(field: number, t: Timestamp): void {
  const start = beginMessage(field);
  putBigInt(1, t.seconds);
  putInt(2, t.nanos);
  endMessage(start);
}

/** Octets of an unsigned varint below 2^53. */
function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v > 0x7f; v = Math.floor(v / 128)) size++;
  return size;
}

function putVarint(buf: Buffer, offset: number, n: number): number {
  let pos = offset;
  let v = n;
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}
