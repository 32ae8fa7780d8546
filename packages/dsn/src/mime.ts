/**
 * The RFC 5322 / MIME pieces a DSN needs: dates, field folding, safe field bodies, the header
 * section of a message and a small header reader (enough to recognise a delivery report).
 */
import { isAscii } from 'node:buffer';

export const CRLF = '\r\n';

/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, MUST be at most 998 octets. */
export const FOLD_AT = 78;
/** Longest unbroken word kept in one line (a word is only split when it could not fit in 998 octets). */
const MAX_WORD = 900;

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time, always in UTC ("+0000"). */
export function rfc5322Date(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new TypeError('invalid date');
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[date.getUTCDay()]}, ${p(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} ` +
    `${p(date.getUTCHours())}:${p(date.getUTCMinutes())}:${p(date.getUTCSeconds())} +0000`
  );
}

/**
 * A field body made safe for a header or a delivery-status field: CR, LF, NUL and every other
 * control character become spaces (a remote reply must never start a field or a part of its
 * own), runs of white space become one space. Without `utf8`, non-ASCII characters are written
 * as RFC 6533 `\x{HEX}` escapes so that the field stays US-ASCII.
 */
export function cleanText(text: string, utf8: boolean): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').replace(/ {2,}/g, ' ');
  return (utf8 ? flat : escapeNonAscii(flat)).trim();
}

/** RFC 6533 §3 EmbeddedUnicodeChar: `\x{HEXPOINT}` for every non-ASCII code point. */
export function escapeNonAscii(text: string): string {
  return text.replace(
    /[\u{80}-\u{10FFFF}]/gu,
    (c) => `\\x{${(c.codePointAt(0) as number).toString(16).toUpperCase()}}`,
  );
}

/** Splits words that could not fit a line even on their own (a 1,000-character token). */
function words(value: string): string[] {
  const out: string[] = [];
  for (const word of value.split(' ')) {
    if (word === '') continue;
    if (word.length <= MAX_WORD) {
      out.push(word);
      continue;
    }
    const chars = Array.from(word);
    for (let i = 0; i < chars.length; i += MAX_WORD / 4) out.push(chars.slice(i, i + MAX_WORD / 4).join(''));
  }
  return out;
}

/**
 * `Name: value` folded at white space (RFC 5322 §2.2.3) so that lines stay within 78 characters
 * where the words allow it. The value is cleaned first (see cleanText); the result has no
 * trailing CRLF.
 */
export function field(name: string, value: string, utf8 = true): string {
  const lines: string[] = [];
  let line = `${name}:`;
  let first = true;
  for (const word of words(cleanText(value, utf8))) {
    if (!first && line.length + 1 + word.length > FOLD_AT) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line += ` ${word}`;
    }
    first = false;
  }
  lines.push(line);
  return lines.join(CRLF);
}

/**
 * Plain text wrapped at `width` characters with `indent` before every line; words longer than a
 * line stay whole unless they exceed the hard limit.
 */
export function wrapText(text: string, width: number, indent = ''): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of words(cleanText(text, true))) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

/** Offset just past the header section's last line break, or -1 when the message has no body separator. */
function headerEnd(message: Buffer): number {
  if (message[0] === 0x0a) return 0;
  if (message[0] === 0x0d && message[1] === 0x0a) return 0;
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  if (crlf === -1 && lf === -1) return -1;
  if (lf === -1 || (crlf !== -1 && crlf < lf)) return crlf + 2;
  return lf + 1;
}

/**
 * The header section of a message (RFC 5322 §2.1), with its final line break and without the
 * empty line; the whole message when it has no body.
 */
export function headerSection(message: Buffer): Buffer {
  const end = headerEnd(message);
  return end === -1 ? message : message.subarray(0, end);
}

/** Unfolded header fields of a message (or of a header section), names as written. */
export function readHeaders(source: Buffer | string): { name: string; value: string }[] {
  const text =
    typeof source === 'string' ? headerSection(Buffer.from(source, 'utf8')) : headerSection(source);
  const out: { name: string; value: string }[] = [];
  for (const line of text.toString('latin1').split(/\r?\n/)) {
    if (/^[ \t]/.test(line)) {
      const last = out.at(-1);
      if (last) last.value += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    out.push({ name, value: line.slice(colon + 1).trim() });
  }
  return out;
}

/** The first field of that name (case-insensitive), unfolded. */
export function headerValue(
  fields: readonly { name: string; value: string }[],
  name: string,
): string | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower)?.value;
}

/**
 * A message part made ready to be embedded with the 8bit (or 7bit) transfer encoding: bare CR
 * and bare LF become CRLF (RFC 2045 §2.8: they occur only as CRLF). Undefined when it cannot be
 * embedded that way: NUL octets or lines over 998 octets (binary content, RFC 3030).
 */
export function asEightBit(content: Buffer): Buffer | undefined {
  if (content.includes(0)) return undefined;
  let normalised = content;
  if (hasBareLineBreak(content)) {
    normalised = Buffer.from(content.toString('latin1').replace(/\r\n|\r|\n/g, CRLF), 'latin1');
  }
  let start = 0;
  while (start < normalised.length) {
    let end = normalised.indexOf(0x0a, start);
    if (end === -1) end = normalised.length + 1;
    if (end - 1 - start > 998) return undefined;
    start = end + 1;
  }
  return normalised;
}

function hasBareLineBreak(content: Buffer): boolean {
  for (let i = content.indexOf(0x0d); i !== -1; i = content.indexOf(0x0d, i + 1)) {
    if (content[i + 1] !== 0x0a) return true;
  }
  for (let i = content.indexOf(0x0a); i !== -1; i = content.indexOf(0x0a, i + 1)) {
    if (i === 0 || content[i - 1] !== 0x0d) return true;
  }
  return false;
}

/** 7bit when the content is US-ASCII, else 8bit (RFC 2045 §6.2). */
export function transferEncoding(content: Buffer | string): '7bit' | '8bit' {
  return isAscii(typeof content === 'string' ? Buffer.from(content, 'utf8') : content) ? '7bit' : '8bit';
}
