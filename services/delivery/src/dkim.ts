// DKIM signing of outgoing mail (RFC 6376), RSA-SHA256 (RFC 8301) and Ed25519-SHA256 (RFC 8463),
// relaxed/relaxed canonicalisation, with node:crypto directly.
//
// Why not mailauth's dkimSign: it signs only the header fields that are present (no way to list
// From once more than it occurs, so an added From is not caught by every verifier), its streaming
// signer (DkimSignStream) keeps a second copy of the whole message, and it reports key problems
// as an `errors` array of untyped Errors after the fact. Here the body is hashed in place (runs
// of unchanged lines go to the hash as subarrays of the caller's buffer; only a line that
// canonicalisation changes is copied), the body hash is computed once for every key (both
// algorithms use SHA-256 over the same relaxed body), and every problem is a DkimError with a
// stable code. mailauth remains the second verifier in the tests, next to Python's dkimpy.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  type Hash,
  type KeyObject,
  sign,
} from 'node:crypto';

/** The signing algorithms (RFC 6376 §3.3; RFC 8301 §3.1 forbids rsa-sha1; RFC 8463 §3). */
export const DkimAlgorithm = {
  RsaSha256: 'rsa-sha256',
  Ed25519Sha256: 'ed25519-sha256',
} as const;
export type DkimAlgorithm = (typeof DkimAlgorithm)[keyof typeof DkimAlgorithm];

/**
 * One signing key of a MailDomain. The public half is published as a TXT record at
 * `<selector>._domainkey.<domain>` (`dkimDnsRecord` derives it from the private key).
 */
export interface DkimKey {
  /** s= (RFC 6376 §3.1): DNS labels. */
  selector: string;
  algorithm: DkimAlgorithm;
  /** PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM, unencrypted. */
  privateKeyPem: string;
  /** d= (RFC 6376 §3.5): the signing domain, normally the MailDomain's domain (DMARC alignment). */
  domain: string;
}

export const DkimErrorCode = {
  /** privateKeyPem is not an unencrypted private key PEM node can read (a public key also lands here). */
  InvalidKey: 'PETREL_ERR_DKIM_INVALID_KEY',
  /** The key is not of the algorithm's type (an Ed25519 key for rsa-sha256, RSA-PSS, EC, ...). */
  KeyTypeMismatch: 'PETREL_ERR_DKIM_KEY_TYPE_MISMATCH',
  /** An RSA key outside 1024-4096 bits (RFC 8301 §3.2: what every verifier must accept). */
  KeySize: 'PETREL_ERR_DKIM_KEY_SIZE',
  /** An algorithm other than rsa-sha256 and ed25519-sha256 (rsa-sha1 included, RFC 8301 §3.1). */
  UnsupportedAlgorithm: 'PETREL_ERR_DKIM_UNSUPPORTED_ALGORITHM',
  /** The selector is not a sequence of DNS labels (RFC 6376 §3.1). */
  InvalidSelector: 'PETREL_ERR_DKIM_INVALID_SELECTOR',
  /** The signing domain is not a domain name (RFC 6376 §3.5 d=). */
  InvalidDomain: 'PETREL_ERR_DKIM_INVALID_DOMAIN',
  /** The message has no From field, which every signature must cover (RFC 6376 §5.4). */
  NoFrom: 'PETREL_ERR_DKIM_NO_FROM',
  /** The message is not in canonical form: a bare CR or LF, or a header line that is not a field. */
  MalformedMessage: 'PETREL_ERR_DKIM_MALFORMED_MESSAGE',
  /** Signing options out of range (expiry, header names). */
  InvalidOptions: 'PETREL_ERR_DKIM_INVALID_OPTIONS',
} as const;
export type DkimErrorCode = (typeof DkimErrorCode)[keyof typeof DkimErrorCode];

export class DkimError extends Error {
  readonly code: DkimErrorCode;
  /** The key the error is about, when it is about a key. */
  readonly selector: string | undefined;
  readonly domain: string | undefined;
  constructor(
    code: DkimErrorCode,
    message: string,
    options?: ErrorOptions & { key?: Pick<DkimKey, 'selector' | 'domain'> },
  ) {
    super(message, options);
    this.name = 'DkimError';
    this.code = code;
    this.selector = options?.key?.selector;
    this.domain = options?.key?.domain;
  }
}

/**
 * Header fields signed when present (RFC 6376 §5.4.1's list, plus the MIME, threading, list and
 * resent fields). Every instance present is signed. Never Return-Path, Received, Bcc, or other
 * DKIM-Signature fields: those change or go away on the way.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'content-language',
  'in-reply-to',
  'references',
  'list-id',
  'list-help',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-subscribe',
  'list-post',
  'list-owner',
  'list-archive',
  'resent-date',
  'resent-from',
  'resent-sender',
  'resent-to',
  'resent-cc',
  'resent-message-id',
  'feedback-id',
];

/**
 * Fields listed in h= once more than they occur (RFC 6376 §8.15 "oversigning"): a verifier then
 * hashes an empty value for the extra entry, so a field of that name added in transit breaks the
 * signature. These are the fields RFC 5322 §3.6 / RFC 2045 allow only once, plus List-Unsubscribe(-Post)
 * (RFC 8058 §4), oversigned only when present (an absent Reply-To stays addable, as mailing lists need).
 * From is always oversigned, whatever the options say.
 */
export const DEFAULT_OVERSIGNED_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'in-reply-to',
  'references',
  'list-unsubscribe',
  'list-unsubscribe-post',
];

export interface DkimSignOptions {
  /** Clock in ms since the epoch for t= (RFC 6376 §3.5); default Date.now. */
  now?: () => number;
  /** When set, x= is t= plus this many seconds (a positive integer). */
  expireAfterSeconds?: number;
  /** Header field names to sign where present; default DEFAULT_SIGNED_HEADERS. From is always signed. */
  headers?: readonly string[];
  /** Names listed once more than they occur; default DEFAULT_OVERSIGNED_HEADERS. From always is. */
  oversign?: readonly string[];
}

/** RFC 5321 sub-domain labels (the selector and domain syntax of RFC 6376 §3.1/§3.5). */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const SELECTOR = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const DOMAIN = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})+$`);
/** RFC 5322 §3.6.8 ftext. */
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const MIN_RSA_BITS = 1024;
const MAX_RSA_BITS = 4096;
/** RFC 6376 §3.5: t= and x= are 1*12DIGIT. */
const MAX_TIMESTAMP = 999_999_999_999;
const LINE_LIMIT = 78;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n');

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * Parsed keys by algorithm and PEM, so that every caller (the worker per message, DSNs) hits it
 * whatever object it passes; bounded, the oldest entry goes first (keys change only on rotation).
 */
const prepared = new Map<string, KeyObject>();
const MAX_PREPARED = 256;

function keyObjectOf(key: DkimKey): KeyObject {
  const id = `${key.algorithm}\0${key.privateKeyPem}`;
  const cached = prepared.get(id);
  if (cached !== undefined) return cached;
  const keyObject = parseKey(key);
  if (prepared.size >= MAX_PREPARED) prepared.delete(prepared.keys().next().value as string);
  prepared.set(id, keyObject);
  return keyObject;
}

function parseKey(key: DkimKey): KeyObject {
  const where = `DKIM key ${key.selector}._domainkey.${key.domain}`;
  if (key.algorithm !== DkimAlgorithm.RsaSha256 && key.algorithm !== DkimAlgorithm.Ed25519Sha256) {
    throw new DkimError(
      DkimErrorCode.UnsupportedAlgorithm,
      `${where}: algorithm ${JSON.stringify(key.algorithm)} is not rsa-sha256 or ed25519-sha256`,
      { key },
    );
  }
  if (typeof key.privateKeyPem !== 'string' || !key.privateKeyPem.includes('PRIVATE KEY-----')) {
    throw new DkimError(DkimErrorCode.InvalidKey, `${where}: privateKeyPem is not a private key PEM`, {
      key,
    });
  }
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey({ key: key.privateKeyPem, format: 'pem' });
  } catch (cause) {
    throw new DkimError(
      DkimErrorCode.InvalidKey,
      `${where}: cannot read the private key (${(cause as Error).message})`,
      { key, cause },
    );
  }
  const type = keyObject.asymmetricKeyType;
  const wanted = key.algorithm === DkimAlgorithm.RsaSha256 ? 'rsa' : 'ed25519';
  if (type !== wanted) {
    throw new DkimError(
      DkimErrorCode.KeyTypeMismatch,
      `${where}: ${key.algorithm} needs an ${wanted} key, this is ${type ?? 'unknown'}`,
      { key },
    );
  }
  if (type === 'rsa') {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new DkimError(
        DkimErrorCode.KeySize,
        `${where}: RSA key of ${bits} bits; verifiers accept ${MIN_RSA_BITS}-${MAX_RSA_BITS} (RFC 8301 §3.2)`,
        { key },
      );
    }
  }
  return keyObject;
}

function checkNames(key: DkimKey): void {
  if (typeof key.selector !== 'string' || !SELECTOR.test(key.selector)) {
    throw new DkimError(
      DkimErrorCode.InvalidSelector,
      `DKIM selector ${JSON.stringify(key.selector)} is not a sequence of DNS labels`,
      { key },
    );
  }
  if (typeof key.domain !== 'string' || !DOMAIN.test(key.domain.replace(/\.$/, ''))) {
    throw new DkimError(
      DkimErrorCode.InvalidDomain,
      `DKIM signing domain ${JSON.stringify(key.domain)} is not a domain name`,
      { key },
    );
  }
}

/**
 * Checks a key as signing will use it (names, algorithm, key type and size) and throws the
 * DkimError signing would throw. For config loading: a bad key is then refused before mail
 * reaches it.
 */
export function checkDkimKey(key: DkimKey): void {
  checkNames(key);
  keyObjectOf(key);
}

/** The public key as it goes into p= (RFC 6376 §3.6.1; RFC 8463 §4.2: the raw 32 octets for Ed25519). */
function publicKeyData(keyObject: KeyObject): string {
  const publicKey = createPublicKey(keyObject);
  if (publicKey.asymmetricKeyType === 'ed25519') {
    const x = publicKey.export({ format: 'jwk' }).x;
    if (typeof x !== 'string') throw new Error('Ed25519 public key without x');
    return Buffer.from(x, 'base64url').toString('base64');
  }
  // RSA: the DER SubjectPublicKeyInfo, as every published DKIM record has it.
  return publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

function txtValue(algorithm: DkimAlgorithm, p: string): string {
  return `v=DKIM1; k=${algorithm === DkimAlgorithm.RsaSha256 ? 'rsa' : 'ed25519'}; p=${p}`;
}

/** The DNS record that publishes a key's public half (RFC 6376 §3.6.2.1, §3.6.1). */
export function dkimDnsRecord(key: DkimKey): { name: string; value: string } {
  checkNames(key);
  const keyObject = keyObjectOf(key);
  return {
    name: `${key.selector}._domainkey.${key.domain.replace(/\.$/, '').toLowerCase()}`,
    value: txtValue(key.algorithm, publicKeyData(keyObject)),
  };
}

export interface GeneratedDkimKey {
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** p= of the TXT record. */
  publicKeyBase64: string;
  /** The whole TXT record value: `v=DKIM1; k=rsa; p=...` or `v=DKIM1; k=ed25519; p=...`. */
  txt: string;
}

/** A new key pair for tests and local mode; RSA keys have 2048 bits unless told otherwise. */
export async function generateDkimKey(
  algorithm: DkimAlgorithm,
  options: { rsaBits?: number } = {},
): Promise<GeneratedDkimKey> {
  let privateKey: KeyObject;
  if (algorithm === DkimAlgorithm.RsaSha256) {
    const bits = options.rsaBits ?? 2048;
    if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new DkimError(
        DkimErrorCode.KeySize,
        `RSA key size ${bits} is outside ${MIN_RSA_BITS}-${MAX_RSA_BITS}`,
      );
    }
    privateKey = await new Promise<KeyObject>((resolve, reject) =>
      generateKeyPair('rsa', { modulusLength: bits }, (error, _pub, priv) =>
        error ? reject(error) : resolve(priv),
      ),
    );
  } else if (algorithm === DkimAlgorithm.Ed25519Sha256) {
    privateKey = await new Promise<KeyObject>((resolve, reject) =>
      generateKeyPair('ed25519', {}, (error, _pub, priv) => (error ? reject(error) : resolve(priv))),
    );
  } else {
    throw new DkimError(
      DkimErrorCode.UnsupportedAlgorithm,
      `algorithm ${JSON.stringify(algorithm)} is not rsa-sha256 or ed25519-sha256`,
    );
  }
  const publicKeyBase64 = publicKeyData(privateKey);
  return {
    algorithm,
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyBase64,
    txt: txtValue(algorithm, publicKeyBase64),
  };
}

// ---------------------------------------------------------------------------------------------
// Message parsing and canonicalisation (RFC 6376 §3.4.2, §3.4.4)

interface HeaderField {
  /** Lower-case name. */
  name: string;
  start: number;
  /** End of the field without its final CRLF. */
  end: number;
}

interface ParsedMessage {
  fields: HeaderField[];
  /** Offset of the body (after the empty line); message.length when there is none. */
  bodyStart: number;
}

function malformed(message: string): DkimError {
  return new DkimError(DkimErrorCode.MalformedMessage, `cannot DKIM-sign: ${message}`);
}

/** Splits the header section into fields; the body starts after the first empty line. */
function parseMessage(message: Buffer): ParsedMessage {
  const fields: HeaderField[] = [];
  let pos = 0;
  let current: HeaderField | undefined;
  while (pos < message.length) {
    const lf = message.indexOf(LF, pos);
    const lineEnd = lf === -1 ? message.length : lf - 1;
    if (lf !== -1 && (lf === 0 || message[lf - 1] !== CR)) throw malformed('bare LF in the header section');
    const cr = message.indexOf(CR, pos);
    if (cr !== -1 && cr < lineEnd) throw malformed('bare CR in the header section');
    if (lineEnd === pos) {
      // The empty line: the body follows.
      return { fields, bodyStart: lf + 1 };
    }
    const first = message[pos];
    if (first === SP || first === TAB) {
      if (current === undefined) throw malformed('the header section starts with a continuation line');
      current.end = lineEnd;
    } else {
      const colon = message.indexOf(0x3a, pos);
      if (colon === -1 || colon >= lineEnd) throw malformed('a header line without a colon');
      const name = message.toString('latin1', pos, colon).replace(/[ \t]+$/, '');
      if (!FIELD_NAME.test(name)) throw malformed(`invalid header field name ${JSON.stringify(name)}`);
      current = { name: name.toLowerCase(), start: pos, end: lineEnd };
      fields.push(current);
    }
    pos = lf === -1 ? message.length : lf + 1;
  }
  return { fields, bodyStart: message.length };
}

/** Relaxed header canonicalisation of one field's value (unfold, one SP per WSP run, trim). */
function relaxedValue(raw: string): string {
  return raw
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

function relaxedField(message: Buffer, field: HeaderField): string {
  const text = message.toString('latin1', field.start, field.end);
  return `${field.name}:${relaxedValue(text.slice(text.indexOf(':') + 1))}\r\n`;
}

const EMPTY_LINES = Buffer.from('\r\n'.repeat(64));

/**
 * Feeds the relaxed canonical body (RFC 6376 §3.4.4) to the hash. Runs of lines that
 * canonicalisation leaves as they are go in as subarrays of the message; only changed lines are
 * copied. Empty lines are held back until a non-empty line follows (trailing ones are ignored).
 */
function hashRelaxedBody(message: Buffer, bodyStart: number, hash: Hash): void {
  let runStart = bodyStart;
  let runEnd = bodyStart;
  // Empty lines held back, and whether they are exactly CRLFs right after the run.
  let pending = 0;
  let pendingRaw = true;
  const flush = (): void => {
    if (runEnd > runStart) hash.update(message.subarray(runStart, runEnd));
    runStart = runEnd;
  };
  const line = (start: number, end: number, next: number, changed: boolean, empty: boolean): void => {
    if (empty) {
      if (pending === 0) pendingRaw = runEnd === start;
      if (end !== start) pendingRaw = false;
      pending++;
      return;
    }
    if (pending > 0) {
      if (pendingRaw) {
        // Plain CRLFs right after the run: they are their own canonical form.
        runEnd = start;
      } else {
        flush();
        for (let n = pending; n > 0; n -= 64) hash.update(EMPTY_LINES.subarray(0, Math.min(n, 64) * 2));
      }
      pending = 0;
    }
    if (!changed) {
      if (runEnd !== start) {
        flush();
        runStart = start;
      }
      runEnd = next;
      return;
    }
    flush();
    const canonical = message
      .toString('latin1', start, end)
      .replace(/[ \t]+/g, ' ')
      .replace(/ $/, '');
    hash.update(Buffer.from(canonical, 'latin1'));
    hash.update(CRLF);
    runStart = next;
    runEnd = next;
  };

  let lineStart = bodyStart;
  let changed = false;
  let empty = true;
  let previousWsp = false;
  const end = message.length;
  for (let i = bodyStart; i < end; i++) {
    const c = message[i];
    if (c === CR) {
      if (message[i + 1] !== LF) throw malformed('bare CR in the body');
      // Trailing whitespace is removed.
      if (previousWsp) changed = true;
      line(lineStart, i, i + 2, changed, empty);
      i++;
      lineStart = i + 1;
      changed = false;
      empty = true;
      previousWsp = false;
    } else if (c === LF) {
      throw malformed('bare LF in the body');
    } else if (c === TAB) {
      changed = true;
      previousWsp = true;
    } else if (c === SP) {
      if (previousWsp) changed = true;
      previousWsp = true;
    } else {
      empty = false;
      previousWsp = false;
    }
  }
  if (lineStart < end) {
    // A last line without CRLF gets one (RFC 6376 §3.4.4); a whitespace-only one is an empty line.
    if (!empty) line(lineStart, end, end, true, false);
  }
  flush();
}

// ---------------------------------------------------------------------------------------------
// Signing

interface Piece {
  text: string;
  /** ' ' between tags; '' where folding whitespace may go inside a value. */
  sep: '' | ' ';
}

/** Folds pieces into a header field, breaking before a piece that would pass 78 characters. */
function fold(pieces: readonly Piece[], start: string): { text: string; column: number } {
  let text = start;
  let column = start.length;
  for (const piece of pieces) {
    const width = piece.sep.length + piece.text.length;
    if (column + width > LINE_LIMIT && column > 1) {
      text += `\r\n\t${piece.text}`;
      column = 1 + piece.text.length;
    } else {
      text += piece.sep + piece.text;
      column += width;
    }
  }
  return { text, column };
}

function checkedNames(names: readonly string[], what: string): string[] {
  return names.map((name) => {
    if (typeof name !== 'string' || !FIELD_NAME.test(name)) {
      throw new DkimError(
        DkimErrorCode.InvalidOptions,
        `${what}: ${JSON.stringify(name)} is not a field name`,
      );
    }
    return name.toLowerCase();
  });
}

/** The h= list: every instance of each signed name present, plus one more for oversigned names. */
function signedHeaderList(fields: readonly HeaderField[], options: DkimSignOptions): string[] {
  const counts = new Map<string, number>();
  for (const f of fields) counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
  if (!counts.has('from')) {
    throw new DkimError(
      DkimErrorCode.NoFrom,
      'cannot DKIM-sign a message without a From field (RFC 6376 §5.4)',
    );
  }
  const names = new Set(['from', ...checkedNames(options.headers ?? DEFAULT_SIGNED_HEADERS, 'headers')]);
  const oversign = new Set([
    'from',
    ...checkedNames(options.oversign ?? DEFAULT_OVERSIGNED_HEADERS, 'oversign'),
  ]);
  const list: string[] = [];
  for (const name of names) {
    const count = counts.get(name) ?? 0;
    if (count === 0) continue;
    for (let i = 0; i < count; i++) list.push(name);
    if (oversign.has(name)) list.push(name);
  }
  return list;
}

/** The canonical header data for h= (RFC 6376 §5.4.2: instances taken from the bottom up). */
function canonicalHeaders(message: Buffer, fields: readonly HeaderField[], list: readonly string[]): string {
  const byName = new Map<string, HeaderField[]>();
  for (const f of fields) {
    const same = byName.get(f.name);
    if (same === undefined) byName.set(f.name, [f]);
    else same.push(f);
  }
  let out = '';
  for (const name of list) {
    const field = byName.get(name)?.pop();
    // A name listed more often than it occurs contributes nothing (the oversigned entry).
    if (field !== undefined) out += relaxedField(message, field);
  }
  return out;
}

function timestamps(options: DkimSignOptions): { t: number; x: number | undefined } {
  const now = (options.now ?? Date.now)();
  const t = Math.floor(now / 1000);
  if (!Number.isFinite(now) || t < 0 || t > MAX_TIMESTAMP) {
    throw new DkimError(DkimErrorCode.InvalidOptions, `the clock's time ${now} cannot be a t= value`);
  }
  const ttl = options.expireAfterSeconds;
  if (ttl === undefined) return { t, x: undefined };
  if (!Number.isInteger(ttl) || ttl <= 0 || t + ttl > MAX_TIMESTAMP) {
    throw new DkimError(
      DkimErrorCode.InvalidOptions,
      `expireAfterSeconds must be a positive integer, not ${ttl}`,
    );
  }
  return { t, x: t + ttl };
}

function signatureField(
  key: DkimKey,
  keyObject: KeyObject,
  bodyHash: string,
  headerList: readonly string[],
  headerData: string,
  time: { t: number; x: number | undefined },
): string {
  const pieces: Piece[] = [
    { text: 'v=1;', sep: ' ' },
    { text: `a=${key.algorithm};`, sep: ' ' },
    { text: 'c=relaxed/relaxed;', sep: ' ' },
    { text: `d=${key.domain.replace(/\.$/, '').toLowerCase()};`, sep: ' ' },
    { text: `s=${key.selector};`, sep: ' ' },
    { text: `t=${time.t};`, sep: ' ' },
  ];
  if (time.x !== undefined) pieces.push({ text: `x=${time.x};`, sep: ' ' });
  headerList.forEach((name, i) => {
    const last = i === headerList.length - 1;
    pieces.push({ text: `${i === 0 ? 'h=' : ''}${name}${last ? ';' : ':'}`, sep: i === 0 ? ' ' : '' });
  });
  pieces.push({ text: `bh=${bodyHash};`, sep: ' ' });
  pieces.push({ text: 'b=', sep: ' ' });
  const prefix = fold(pieces, 'DKIM-Signature:');
  // The signature covers this field with an empty b= (RFC 6376 §3.7), canonicalised like the rest.
  const data = `${headerData}dkim-signature:${relaxedValue(prefix.text.slice('DKIM-Signature:'.length))}`;
  const input = Buffer.from(data, 'latin1');
  const signature =
    key.algorithm === DkimAlgorithm.RsaSha256
      ? sign('sha256', input, keyObject)
      : // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data (PureEdDSA over the digest).
        sign(null, createHash('sha256').update(input).digest(), keyObject);
  const b = signature.toString('base64');
  // b= continues on its line as far as it fits, then in folded lines (FWS is allowed inside it).
  const chunks: Piece[] = [];
  const room = LINE_LIMIT - prefix.column;
  let at = 0;
  if (room > 0) {
    chunks.push({ text: b.slice(0, room), sep: '' });
    at = room;
  }
  for (; at < b.length; at += 70) chunks.push({ text: b.slice(at, at + 70), sep: '' });
  const whole = fold(chunks, prefix.text);
  return `${whole.text}\r\n`;
}

/**
 * The DKIM-Signature fields for a message, one per key, as the block to put in front of it (CRLF
 * terminated). Lets a caller that streams write this and then the unchanged message, without a
 * copy. Sign the message exactly as it will be sent: after every change the relay makes to it.
 * Throws DkimError; an empty key list gives an empty block.
 */
export function dkimSignatureFields(
  message: Buffer,
  keys: readonly DkimKey[],
  options: DkimSignOptions = {},
): Buffer {
  if (keys.length === 0) return Buffer.alloc(0);
  const keyObjects = keys.map((key) => {
    checkNames(key);
    return keyObjectOf(key);
  });
  const time = timestamps(options);
  const parsed = parseMessage(message);
  const headerList = signedHeaderList(parsed.fields, options);
  const headerData = canonicalHeaders(message, parsed.fields, headerList);
  const hash = createHash('sha256');
  hashRelaxedBody(message, parsed.bodyStart, hash);
  const bodyHash = hash.digest('base64');
  let out = '';
  keys.forEach((key, i) => {
    const keyObject = keyObjects[i];
    if (keyObject === undefined) return;
    out += signatureField(key, keyObject, bodyHash, headerList, headerData, time);
  });
  return Buffer.from(out, 'latin1');
}

/**
 * Signs a message with every key (RSA and Ed25519 side by side, RFC 8463 §6), relaxed/relaxed:
 * the DKIM-Signature fields in front of the message. The message must be in canonical form (CRLF
 * line ends only) and be the bytes that will be sent. Copies the message once, into the result;
 * `dkimSignatureFields` avoids even that.
 */
export function signMessage(
  message: Buffer,
  keys: readonly DkimKey[],
  options: DkimSignOptions = {},
): Buffer {
  if (keys.length === 0) return message;
  const fields = dkimSignatureFields(message, keys, options);
  return Buffer.concat([fields, message], fields.length + message.length);
}
