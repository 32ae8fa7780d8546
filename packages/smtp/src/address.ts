import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { asciiUpper } from './ascii.ts';

/**
 * Path and parameter syntax of MAIL FROM and RCPT TO (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
 * Address forms that try to route around relay policy (source routes, address literals,
 * trailing dots, quoted local parts, IDNA-folded look-alike domains) are recognised and
 * flagged rather than refused here, so that the policy can refuse them with 550 5.7.1 instead
 * of a syntax error. Which domains are acceptable is the policy's business, not the parser's.
 */
export interface Mailbox {
  /** As received; a quoted local part keeps its quotes and backslashes. */
  readonly localPart: string;
  /**
   * Lower-cased domain without a trailing dot. Internationalised names are in A-label form
   * (`xn--…`, RFC 5890); an address literal keeps its brackets (`[192.0.2.1]`); a domain with
   * `mappedDomain` set is the received text lower-cased (never folded onto an ASCII name).
   */
  readonly domain: string;
  /** local@domain as received (without a source route; domain case and any trailing dot kept). */
  readonly address: string;
  /** The path carried an RFC 5321 §4.1.2 A-d-l source route (`<@a,@b:user@c>`); dropped here. */
  readonly sourceRoute: boolean;
  /** The domain is an address literal, RFC 5321 §4.1.3 (`[192.0.2.1]`, `[IPv6:…]`, general). */
  readonly domainLiteral: boolean;
  /** The domain ended in a dot (`user@example.org.`); `domain` is without it. */
  readonly trailingDot: boolean;
  /** The local part is a Quoted-string (RFC 5321 §4.1.2). */
  readonly quoted: boolean;
  /**
   * A non-ASCII domain that IDNA mapping (UTS #46) would fold onto other characters: full-width
   * letters or dots, compatibility forms. It is a look-alike of another name, not a U-label.
   */
  readonly mappedDomain: boolean;
}

export interface PathArgument {
  /** undefined for the null reverse-path <>. */
  readonly mailbox: Mailbox | undefined;
  /** ESMTP parameters keyed by upper-cased keyword; value undefined for keyword-only ones. */
  readonly params: ReadonlyMap<string, string | undefined>;
}

/** Why an address was refused; stable, so that the engine can pick the reply (e.g. 553 5.6.7). */
export const AddressProblem = {
  Syntax: 'syntax',
  /** RFC 5321 §4.5.3.1.1-3: local part 64, domain 255, path 256 octets. */
  TooLong: 'too-long',
  /** NUL and other control characters (C0, DEL, C1). */
  Control: 'control',
  /** RFC 6531 §3.4: non-ASCII addresses only after SMTPUTF8. */
  NonAscii: 'non-ascii',
  /** RFC 5890-5891: not a valid U-label or A-label. */
  InvalidIdn: 'invalid-idn',
  Parameter: 'parameter',
} as const;
export type AddressProblem = (typeof AddressProblem)[keyof typeof AddressProblem];

export type PathParseResult =
  | { ok: true; value: PathArgument }
  | { ok: false; reason: string; problem: AddressProblem };

export type MailboxParseResult =
  | { ok: true; value: Mailbox }
  | { ok: false; reason: string; problem: AddressProblem };

export interface AddressOptions {
  /** The client gave SMTPUTF8 (RFC 6531): UTF-8 local parts and U-label domains are allowed. */
  readonly utf8?: boolean;
}

/** RFC 5321 §4.5.3.1. */
export const AddressLimit = {
  /** §4.5.3.1.1 */
  localPartOctets: 64,
  /** §4.5.3.1.2 */
  domainOctets: 255,
  /** §4.5.3.1.3, including the angle brackets and any source route. */
  pathOctets: 256,
  /** RFC 1035 §2.3.4 */
  labelOctets: 63,
} as const;

type Fail = { ok: false; reason: string; problem: AddressProblem };
const fail = (problem: AddressProblem, reason: string): Fail => ({ ok: false, reason, problem });
const SYNTAX = fail(AddressProblem.Syntax, 'invalid mailbox syntax');

// RFC 5321 §4.1.2 atext; RFC 6531 §3.3 adds UTF8-non-ascii (controls are refused beforehand).
const ATEXT = "[A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~\\u0080-\\u{10FFFF}]+";
const DOT_STRING = new RegExp(`^${ATEXT}(?:\\.${ATEXT})*$`, 'u');
// qtextSMTP %d32-33 / %d35-91 / %d93-126 (+ UTF-8), quoted-pairSMTP %d92 %d32-126.
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
const LABEL = /^(?!-)[\p{L}\p{N}\p{M}-]{1,63}(?<!-)$/u;
const LDH_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
/** Two or more LDH labels, no trailing dot. */
const PLAIN_DOMAIN = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$/;
/** Anything that may be an A-label (checked by decoding, in the label loop). */
const A_LABEL = /xn--/i;
const U_LABEL = /^(?!-)[\p{L}\p{N}\p{M}-]+(?<!-)$/u;
// RFC 3490 §3.1: the dots IDNA treats as label separators besides U+002E.
const IDNA_DOTS = /[.\u3002\uFF0E\uFF61]/u;
// RFC 5321 §4.1.3 General-address-literal: Standardized-tag ":" 1*dcontent.
const GENERAL_LITERAL = /^[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+$/;
const CONTROL = /\p{Cc}/u;
const NON_ASCII = /[^\p{ASCII}]/u;
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// RFC 5321 §4.1.2 esmtp-value %d33-60 / %d62-126, RFC 6531 UTF-8; C1 controls excluded.
const VALUE = /^[\x21-\x3c\x3e-\x7e\u00a0-\u{10FFFF}]+$/u;

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * A host name as in EHLO or ETRN: at least two labels of letters, digits and hyphens (Unicode
 * letters allowed), lower-cased. No trailing dot, no address literal.
 */
export function parseDomain(domain: string): string | undefined {
  if (domain.length === 0 || octets(domain) > AddressLimit.domainOctets) return undefined;
  const labels = domain.split('.');
  if (labels.length < 2) return undefined;
  for (const label of labels) if (!LABEL.test(label)) return undefined;
  return domain.toLowerCase();
}

interface DomainFields {
  readonly domain: string;
  readonly domainLiteral: boolean;
  readonly trailingDot: boolean;
  readonly mappedDomain: boolean;
}
type DomainResult = { ok: true; value: DomainFields } | Fail;

function parseAddressLiteral(text: string): DomainResult {
  const inner = text.slice(1, -1);
  const valid = /^IPv6:/i.test(inner)
    ? isIPv6(inner.slice(5)) && !inner.includes('%')
    : isIPv4(inner) || (GENERAL_LITERAL.test(inner) && !/^IPv6:/i.test(inner));
  if (!valid) return fail(AddressProblem.Syntax, 'invalid address literal');
  return {
    ok: true,
    value: { domain: text.toLowerCase(), domainLiteral: true, trailingDot: false, mappedDomain: false },
  };
}

/** One label to A-label form; `mapped` when IDNA would fold it onto different characters. */
function labelToAscii(label: string): { ascii: string; mapped: boolean } | undefined {
  if (!NON_ASCII.test(label)) {
    if (!LDH_LABEL.test(label)) return undefined;
    const lower = label.toLowerCase();
    // An A-label must decode, and encode back to itself (RFC 5891 §5.4).
    if (lower.startsWith('xn--')) {
      const unicode = domainToUnicode(lower);
      if (unicode === lower || domainToASCII(unicode) !== lower) return undefined;
    }
    return { ascii: lower, mapped: false };
  }
  if (!U_LABEL.test(label)) return undefined;
  const ascii = domainToASCII(label);
  if (ascii === '') return undefined;
  const mapped =
    ascii.includes('.') ||
    !ascii.startsWith('xn--') ||
    domainToUnicode(ascii) !== label.normalize('NFC').toLowerCase();
  if (!mapped && ascii.length > AddressLimit.labelOctets) return undefined;
  return { ascii, mapped };
}

function parseMailboxDomain(text: string, utf8: boolean): DomainResult {
  // The usual domain, checked in one go: what the label loop below makes of it is its lower case.
  if (text.length <= AddressLimit.domainOctets && PLAIN_DOMAIN.test(text) && !A_LABEL.test(text)) {
    return {
      ok: true,
      value: { domain: text.toLowerCase(), domainLiteral: false, trailingDot: false, mappedDomain: false },
    };
  }
  if (text.startsWith('[') && text.endsWith(']')) return parseAddressLiteral(text);
  if (octets(text) > AddressLimit.domainOctets) {
    return fail(AddressProblem.TooLong, 'domain longer than 255 octets');
  }
  const nonAscii = NON_ASCII.test(text);
  if (nonAscii && !utf8) return fail(AddressProblem.NonAscii, 'non-ASCII address requires SMTPUTF8');
  const labels = text.split(nonAscii ? IDNA_DOTS : '.');
  const trailingDot = labels.length > 1 && labels.at(-1) === '';
  if (trailingDot) labels.pop();
  if (labels.length < 2) return SYNTAX;
  // A full-width or ideographic dot is a look-alike of '.', never a separator of its own.
  let mapped = nonAscii && /[\u3002\uFF0E\uFF61]/u.test(text);
  const ascii: string[] = [];
  for (const label of labels) {
    if (label === '') return SYNTAX;
    const converted = labelToAscii(label);
    if (converted === undefined) {
      return NON_ASCII.test(label) || label.toLowerCase().startsWith('xn--')
        ? fail(AddressProblem.InvalidIdn, 'invalid internationalised domain name')
        : SYNTAX;
    }
    mapped ||= converted.mapped;
    ascii.push(converted.ascii);
  }
  // A look-alike keeps its non-ASCII characters (a trailing '。' too), so it equals no ASCII name.
  const domain = mapped ? (text.endsWith('.') ? text.slice(0, -1) : text).toLowerCase() : ascii.join('.');
  if (octets(domain) > AddressLimit.domainOctets) {
    return fail(AddressProblem.TooLong, 'domain longer than 255 octets');
  }
  return { ok: true, value: { domain, domainLiteral: false, trailingDot, mappedDomain: mapped } };
}

/** End of a Quoted-string starting at `from` (the index of its closing quote), or -1. */
function quotedEnd(text: string, from: number): number {
  for (let i = from + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

function parseMailboxText(text: string, utf8: boolean, sourceRoute: boolean): MailboxParseResult {
  if (CONTROL.test(text)) return fail(AddressProblem.Control, 'control characters in address');
  if (!utf8 && NON_ASCII.test(text)) {
    return fail(AddressProblem.NonAscii, 'non-ASCII address requires SMTPUTF8');
  }
  const quoted = text.startsWith('"');
  const at = quoted ? quotedEnd(text, 0) + 1 : text.indexOf('@');
  if (at <= 0 || text[at] !== '@') return SYNTAX;
  const localPart = text.slice(0, at);
  if (!(quoted ? QUOTED : DOT_STRING).test(localPart)) return SYNTAX;
  if (octets(localPart) > AddressLimit.localPartOctets) {
    return fail(AddressProblem.TooLong, 'local part longer than 64 octets');
  }
  const domain = parseMailboxDomain(text.slice(at + 1), utf8);
  if (!domain.ok) return domain;
  const d = domain.value;
  return {
    ok: true,
    value: {
      localPart,
      address: text,
      sourceRoute,
      quoted,
      domain: d.domain,
      domainLiteral: d.domainLiteral,
      trailingDot: d.trailingDot,
      mappedDomain: d.mappedDomain,
    },
  };
}

/**
 * A mailbox (`local@domain`) with the reason when it is refused. Without `utf8`, non-ASCII
 * addresses are refused (RFC 6531 §3.4).
 */
export function parseMailboxWithReason(text: string, options: AddressOptions = {}): MailboxParseResult {
  return parseMailboxText(text, options.utf8 ?? false, false);
}

export function parseMailbox(text: string, options: AddressOptions = {}): Mailbox | undefined {
  const result = parseMailboxWithReason(text, options);
  return result.ok ? result.value : undefined;
}

/** RFC 5321 §4.1.2 A-d-l: `@one.example,@two.example`; every hop must be a domain. */
function validRoute(route: string, utf8: boolean): boolean {
  return route.split(',').every((hop) => {
    if (!hop.startsWith('@')) return false;
    const domain = parseMailboxDomain(hop.slice(1), utf8);
    return domain.ok && !domain.value.domainLiteral && !domain.value.trailingDot;
  });
}

/** Index of the '>' that closes the path; a quoted local part may itself contain '>'. */
function pathEnd(text: string): number {
  let from = 1;
  // An A-d-l holds no quotes or '>', and ends at the first ':'.
  if (text[from] === '@') {
    const colon = text.indexOf(':', from);
    const close = text.indexOf('>', from);
    if (colon !== -1 && (close === -1 || colon < close)) from = colon + 1;
  }
  if (text[from] === '"') {
    const end = quotedEnd(text, from);
    if (end !== -1) from = end;
  }
  return text.indexOf('>', from);
}

/**
 * Parses what follows "MAIL FROM:" or "RCPT TO:": `<path> [SP params]`. A space after the
 * colon is tolerated (common in clients, RFC 5321 §4.1.2 does not allow it). Without
 * `options.utf8` (the client gave SMTPUTF8), a non-ASCII mailbox is refused (RFC 6531 §3.4).
 */
export function parsePathArgument(
  rest: string,
  allowNull: boolean,
  options: AddressOptions = {},
): PathParseResult {
  const utf8 = options.utf8 ?? false;
  const text = rest.startsWith(' ') ? rest.slice(1) : rest;
  if (!text.startsWith('<')) return fail(AddressProblem.Syntax, 'path must be enclosed in <>');
  const close = pathEnd(text);
  if (close === -1) return fail(AddressProblem.Syntax, 'path must be enclosed in <>');
  const path = text.slice(0, close + 1);
  if (CONTROL.test(path)) return fail(AddressProblem.Control, 'control characters in address');
  if (octets(path) > AddressLimit.pathOctets)
    return fail(AddressProblem.TooLong, 'path longer than 256 octets');
  const inner = path.slice(1, -1);
  let mailbox: Mailbox | undefined;
  if (inner === '') {
    if (!allowNull) return fail(AddressProblem.Syntax, 'null path not allowed here');
  } else {
    let mailboxText = inner;
    let sourceRoute = false;
    if (inner.startsWith('@')) {
      const colon = inner.indexOf(':');
      if (colon === -1) return SYNTAX;
      if (!utf8 && NON_ASCII.test(inner)) {
        return fail(AddressProblem.NonAscii, 'non-ASCII address requires SMTPUTF8');
      }
      if (!validRoute(inner.slice(0, colon), utf8))
        return fail(AddressProblem.Syntax, 'invalid source route');
      mailboxText = inner.slice(colon + 1);
      sourceRoute = true;
    }
    const parsed = parseMailboxText(mailboxText, utf8, sourceRoute);
    if (!parsed.ok) return parsed;
    mailbox = parsed.value;
  }
  const params = new Map<string, string | undefined>();
  const tail = text.slice(close + 1);
  if (tail !== '' && !tail.startsWith(' ')) return fail(AddressProblem.Syntax, 'garbage after path');
  for (const token of tail === '' ? [] : tail.split(' ')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const key = asciiUpper(eq === -1 ? token : token.slice(0, eq));
    const value = eq === -1 ? undefined : token.slice(eq + 1);
    if (!KEYWORD.test(key) || (value !== undefined && !VALUE.test(value))) {
      return fail(AddressProblem.Parameter, `invalid parameter ${token}`);
    }
    if (params.has(key)) return fail(AddressProblem.Parameter, `duplicate parameter ${key}`);
    params.set(key, value);
  }
  return { ok: true, value: { mailbox, params } };
}
