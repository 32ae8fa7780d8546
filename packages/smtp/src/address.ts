/**
 * Path and parameter syntax of MAIL FROM and RCPT TO (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
 * Only the forms a relay should ever see are accepted; relay policy (which domains) is not here.
 */
export interface Mailbox {
  readonly localPart: string;
  /** Lower-cased domain. */
  readonly domain: string;
  /** local@domain as received (domain case kept). */
  readonly address: string;
}

export interface PathArgument {
  /** undefined for the null reverse-path <>. */
  readonly mailbox: Mailbox | undefined;
  /** ESMTP parameters keyed by upper-cased keyword; value undefined for keyword-only ones. */
  readonly params: ReadonlyMap<string, string | undefined>;
}

export type PathParseResult = { ok: true; value: PathArgument } | { ok: false; reason: string };

// RFC 5321 §4.1.2 atext (plus UTF-8 per RFC 6531), dot-string local parts.
const DOT_STRING =
  /^[\p{L}\p{N}!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+(\.[\p{L}\p{N}!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+)*$/u;
const QUOTED = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\u{10FFFF}]|\\[\x20-\x7e])*"$/u;
const LABEL = /^(?!-)[\p{L}\p{N}-]{1,63}(?<!-)$/u;
const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
const VALUE = /^[\x21-\x3c\x3e-\x7e\u0080-\u{10FFFF}]+$/u;

export function parseDomain(domain: string): string | undefined {
  if (domain.length === 0 || domain.length > 255) return undefined;
  const labels = domain.split('.');
  if (labels.length < 2) return undefined;
  for (const label of labels) if (!LABEL.test(label)) return undefined;
  return domain.toLowerCase();
}

export function parseMailbox(text: string): Mailbox | undefined {
  const at = text.lastIndexOf('@');
  if (at <= 0 || at === text.length - 1) return undefined;
  const localPart = text.slice(0, at);
  const domainText = text.slice(at + 1);
  if (localPart.length > 64 && !localPart.startsWith('"')) return undefined;
  if (!DOT_STRING.test(localPart) && !QUOTED.test(localPart)) return undefined;
  const domain = parseDomain(domainText);
  if (domain === undefined) return undefined;
  return { localPart, domain, address: text };
}

/** Index of the '>' that closes the path; a quoted local part may itself contain '>'. */
function pathEnd(text: string): number {
  let from = 1;
  if (text[1] === '"') {
    for (from = 2; from < text.length; from++) {
      if (text[from] === '\\') from++;
      else if (text[from] === '"') break;
    }
  }
  return text.indexOf('>', from);
}

/**
 * Parses what follows "MAIL FROM:" or "RCPT TO:": `<path> [SP params]`. A space after the
 * colon is tolerated (common in clients, RFC 5321 §4.1.2 does not allow it).
 */
export function parsePathArgument(rest: string, allowNull: boolean): PathParseResult {
  const text = rest.replace(/^ /, '');
  if (!text.startsWith('<')) return { ok: false, reason: 'path must be enclosed in <>' };
  const close = pathEnd(text);
  if (close === -1) return { ok: false, reason: 'path must be enclosed in <>' };
  const inner = text.slice(1, close);
  let mailbox: Mailbox | undefined;
  if (inner === '') {
    if (!allowNull) return { ok: false, reason: 'null path not allowed here' };
  } else {
    mailbox = parseMailbox(inner);
    if (mailbox === undefined) return { ok: false, reason: 'invalid mailbox syntax' };
  }
  const params = new Map<string, string | undefined>();
  const tail = text.slice(close + 1);
  if (tail !== '' && !tail.startsWith(' ')) return { ok: false, reason: 'garbage after path' };
  for (const token of tail.split(' ')) {
    if (token === '') continue;
    const eq = token.indexOf('=');
    const key = (eq === -1 ? token : token.slice(0, eq)).toUpperCase();
    const value = eq === -1 ? undefined : token.slice(eq + 1);
    if (!KEYWORD.test(key) || (value !== undefined && !VALUE.test(value))) {
      return { ok: false, reason: `invalid parameter ${token}` };
    }
    if (params.has(key)) return { ok: false, reason: `duplicate parameter ${key}` };
    params.set(key, value);
  }
  return { ok: true, value: { mailbox, params } };
}
