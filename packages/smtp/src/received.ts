import { isIPv4, isIPv6 } from 'node:net';
import { MAX_RECEIVED_FIELDS } from './codes.ts';
import { countFields } from './header-fields.ts';

/**
 * The Received trace field we prepend (RFC 5321 §4.4) and the hop count used for loop
 * detection (RFC 5321 §6.3).
 */

/** RFC 5321 §6.3: more Received fields than this means a mail loop (554 5.4.6). */
export const MAX_RECEIVED_HOPS = MAX_RECEIVED_FIELDS;

/** RFC 3848 §2 (ESMTP/ESMTPA/ESMTPS/ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP*) "with" keywords. */
export type ReceivedProtocol =
  | 'SMTP'
  | 'ESMTP'
  | 'ESMTPS'
  | 'ESMTPA'
  | 'ESMTPSA'
  | 'UTF8SMTP'
  | 'UTF8SMTPS'
  | 'UTF8SMTPA'
  | 'UTF8SMTPSA';

export interface ReceivedInfo {
  /** The EHLO/HELO argument (client-supplied). */
  heloName?: string;
  remoteAddress: string;
  /** The client's verified reverse DNS name (attacker-controlled DNS: sanitised as well). */
  reverseName?: string;
  /** Our host name. */
  byHost: string;
  protocol: ReceivedProtocol;
  /** Our message id. */
  id: string;
  /** RFC 5321 §7.2: name the recipient only when there is exactly one. */
  recipient?: string;
  tls?: { protocol: string; cipher: string };
  /** Named only when configured (privacy); the caller decides. */
  authIdentity?: string;
  date: Date;
}

/** RFC 5322 §2.1.1: lines SHOULD stay within 78 octets; we keep them below. */
const LINE_LIMIT = 78;
/** Client text is capped so that no line can reach RFC 5322's 998-octet limit. */
const MAX_CLIENT_TEXT = 255;

/** Picks the RFC 3848 / RFC 6531 keyword for a session. */
export function receivedProtocol(session: {
  esmtp: boolean;
  tls: boolean;
  authenticated: boolean;
  utf8: boolean;
}): ReceivedProtocol {
  if (!session.esmtp) return 'SMTP';
  const suffix = `${session.tls ? 'S' : ''}${session.authenticated ? 'A' : ''}`;
  return `${session.utf8 ? 'UTF8SMTP' : 'ESMTP'}${suffix}` as ReceivedProtocol;
}

/**
 * The Received field, folded below 78 octets per line and CRLF-terminated:
 *
 *   Received: from helo.example (rev.example [192.0.2.1])
 *   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) by mx.example.org
 *   	with ESMTPS id 01ABC for <a@example.org>; Sun, 22 Nov 2026 18:50:00 +0000
 */
export function receivedHeader(info: ReceivedInfo): string {
  // RFC 6532 allows UTF-8 in header fields only when the message travels with SMTPUTF8.
  const utf8 = info.protocol.startsWith('UTF8');
  const literal = addressLiteral(info.remoteAddress);
  const helo = info.heloName === undefined ? '' : domainText(info.heloName, utf8);
  // RFC 5321 §4.4 Extended-Domain: the name as presented, then TCP-info with the address literal.
  const units: string[] = [`from ${helo === '' ? literal : helo}`];
  const reverse = info.reverseName === undefined ? '' : domainText(info.reverseName, utf8);
  if (reverse === '') units.push(`(${literal})`);
  else units.push(`(${reverse}`, `${literal})`);
  if (info.tls !== undefined) {
    units.push(...comment(`using ${info.tls.protocol} with cipher ${info.tls.cipher}`, utf8));
  }
  if (info.authIdentity !== undefined) units.push(...comment(`authenticated as ${info.authIdentity}`, utf8));
  units.push(`by ${domainText(info.byHost, utf8) || 'localhost'}`);
  units.push(`with ${info.protocol}`);
  units.push(`id ${atomText(info.id)}`);
  if (info.recipient !== undefined) units.push(`for <${pathText(info.recipient, utf8)}>`);
  units[units.length - 1] += ';';
  units.push(rfc5322Date(info.date));
  return fold('Received:', units);
}

/** Joins units with single spaces, breaking before a unit that would reach the line limit. */
function fold(name: string, units: readonly string[]): string {
  const lines: string[] = [];
  let line = name;
  let length = Buffer.byteLength(line);
  for (const unit of units) {
    const size = Buffer.byteLength(unit);
    if (length + 1 + size < LINE_LIMIT) {
      line += ` ${unit}`;
      length += 1 + size;
    } else {
      // RFC 5322 §3.2.2 FWS: CRLF followed by white space. A unit longer than the limit
      // (a 255-octet name) stands on its own line.
      lines.push(line);
      line = `\t${unit}`;
      length = 1 + size;
    }
  }
  lines.push(line);
  return `${lines.join('\r\n')}\r\n`;
}

/** The last date formatted and its second: every message of a busy second shares it. */
let cachedSecond = Number.NaN;
let cachedDate = '';

/** RFC 5322 §3.3 date-time in UTC, e.g. "Sun, 22 Nov 2026 18:50:00 +0000". */
export function rfc5322Date(date: Date): string {
  const time = date.getTime();
  if (Number.isNaN(time)) throw new RangeError('Received date is invalid');
  const second = Math.floor(time / 1000);
  if (second !== cachedSecond) {
    cachedDate = date.toUTCString().replace(/GMT$/, '+0000');
    cachedSecond = second;
  }
  return cachedDate;
}

/** RFC 5321 §4.1.3 address literal; an IPv4-mapped IPv6 address is the IPv4 client it is. */
function addressLiteral(address: string): string {
  if (isIPv4(address)) return `[${address}]`;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped !== undefined && isIPv4(mapped)) return `[${mapped}]`;
  const [bare = ''] = address.split('%'); // a zone index has no meaning to other hosts
  if (isIPv6(bare)) return `[IPv6:${bare.toLowerCase()}]`;
  // Not an IP (should not happen): keep it to RFC 5321 dcontent so it cannot break the field.
  const dcontent = address.slice(0, 64).replace(/[^\x21-\x5a\x5e-\x7e]/g, '?');
  return `[${dcontent === '' ? 'unknown' : dcontent}]`;
}

/** Printable ASCII: no control, format or separator character, nothing beyond ASCII. */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** What each kind of client text may not contain (`unsafe`), and text with none of it (`safe`). */
const DOMAIN = { unsafe: /[^A-Za-z0-9.\-_:[\]\u0080-\uffff]/g, safe: /^[A-Za-z0-9.\-_:[\]]*$/ };
const ATOM = { unsafe: /[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]/g, safe: /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]*$/ };
const PATH = { unsafe: /[()<>\\\s]/g, safe: /^[^()<>\\\s]*$/ };
const COMMENT = { unsafe: /[()\\]/g, safe: /^[^()\\]*$/ };

/**
 * Replaces what could break out of the field or the comment; caps the length. Short printable
 * ASCII text with nothing unsafe, the usual case, is returned as it is.
 */
function clean(text: string, kind: { unsafe: RegExp; safe: RegExp }, utf8: boolean): string {
  if (text.length <= MAX_CLIENT_TEXT && PRINTABLE_ASCII.test(text) && kind.safe.test(text)) return text;
  let out = text.slice(0, MAX_CLIENT_TEXT).replace(kind.unsafe, '?');
  // Controls, format characters and line/paragraph separators, wherever they come from.
  out = out.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '?');
  if (!utf8) out = out.replace(/[^\x20-\x7e]/g, '?');
  return out;
}

/** A host name or address literal: no spaces, parentheses, semicolons or quotes. */
function domainText(text: string, utf8: boolean): string {
  return clean(text.trim(), DOMAIN, utf8);
}

/** RFC 5322 §3.2.3 atext: the ID clause takes an Atom. */
function atomText(text: string): string {
  return clean(text, ATOM, false) || 'unknown';
}

/** A recipient inside "for <...>": never a bracket or parenthesis that would end it early. */
function pathText(text: string, utf8: boolean): string {
  return clean(text, PATH, utf8);
}

/**
 * A comment as foldable units (any space inside a comment is FWS, RFC 5322 §3.2.2), with
 * parentheses and backslashes replaced so that the comment always closes where we close it.
 */
function comment(text: string, utf8: boolean): string[] {
  const words = clean(text, COMMENT, utf8)
    .split(/\s+/)
    .filter((w) => w !== '');
  if (words.length === 0) return [];
  words[0] = `(${words[0]}`;
  words[words.length - 1] += ')';
  return words;
}

const RECEIVED = Buffer.from('received', 'latin1');

/** Received fields in the header section (loop detection, RFC 5321 §6.3). */
export function countReceived(message: Buffer): number {
  return countFields(message, RECEIVED);
}
