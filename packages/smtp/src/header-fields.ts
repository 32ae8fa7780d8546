/**
 * Header fields found by scanning the octets of a message's header section (RFC 5322 §2.1: up to
 * the first empty line), without decoding it: what the ingress needs per message (the Received
 * count for loop detection, the Message-ID for the trace) at the cost of one pass over the
 * lines. Folded continuation lines start with white space and are never taken for fields; body
 * lines are never looked at.
 */
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;

/** Calls `visit` with the offset of each field line's start; stops when it returns false. */
function eachFieldLine(message: Buffer, visit: (at: number) => boolean): void {
  let pos = 0;
  const n = message.length;
  while (pos < n) {
    const first = message[pos];
    if (first === LF || (first === CR && message[pos + 1] === LF)) return;
    if (!visit(pos)) return;
    const next = message.indexOf(LF, pos);
    if (next === -1) return;
    pos = next + 1;
  }
}

/**
 * The offset just after the colon when the line at `at` is a field named `lowerName` (ASCII,
 * lower case; matched case-insensitively), else -1. RFC 5322 §4.5.3 (obsolete syntax) allows
 * white space before the colon.
 */
function valueStart(message: Buffer, at: number, lowerName: Buffer): number {
  if (at + lowerName.length >= message.length) return -1;
  for (let i = 0; i < lowerName.length; i++) {
    const c = message[at + i] as number;
    // Upper-case ASCII letters folded to lower case; any other octet must match as it is.
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lowerName[i]) return -1;
  }
  let i = at + lowerName.length;
  while (message[i] === SP || message[i] === HTAB) i++;
  return message[i] === COLON ? i + 1 : -1;
}

/** How many fields of that name the header section holds. */
export function countFields(message: Buffer, lowerName: Buffer): number {
  let count = 0;
  eachFieldLine(message, (at) => {
    if (valueStart(message, at, lowerName) !== -1) count++;
    return true;
  });
  return count;
}

/**
 * The raw value of the first field of that name, with its folded continuation lines and their
 * line breaks (RFC 5322 §2.2.3: unfolding removes them), or undefined.
 */
export function firstField(message: Buffer, lowerName: Buffer): Buffer | undefined {
  let value: Buffer | undefined;
  eachFieldLine(message, (at) => {
    const start = valueStart(message, at, lowerName);
    if (start === -1) return true;
    let end = message.indexOf(LF, start);
    while (end !== -1 && (message[end + 1] === SP || message[end + 1] === HTAB)) {
      end = message.indexOf(LF, end + 1);
    }
    value = message.subarray(start, end === -1 ? message.length : end + 1);
    return false;
  });
  return value;
}
