/**
 * SASL mechanisms for SMTP AUTH (RFC 4954), server side: PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login-00), CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677,
 * without channel binding); plus the matching client steps for tests and our delivery client.
 *
 * Pure: no sockets and no base64. The session (server.ts) decodes the AUTH argument and each
 * response line, sends `334 base64(challenge.data)`, maps failures to replies, and turns the
 * RFC 4954 §4 initial response "=" into an empty buffer (`start(Buffer.alloc(0))`), which is
 * different from no initial response at all (`start(undefined)`).
 *
 * Rules every mechanism keeps:
 * - Secrets are compared in constant time: both sides are hashed to equal-length digests first.
 * - An unknown user takes the same path as a wrong password: the check runs against a dummy
 *   password (for SCRAM including the PBKDF2 work and a salt derived like a real one).
 * - Identities with control characters are malformed (they would end up in logs).
 * - An exchange ends at its first success or failure; any later call is `malformed`.
 *
 * SASLprep (RFC 4013) — see `saslPrep`: applied to passwords for PLAIN, LOGIN and SCRAM on both
 * sides; when a password fails it (prohibited characters) the raw string is used, as PostgreSQL
 * does, so that the server and our client still agree. Not CRAM-MD5 (RFC 2195 keys the HMAC
 * with the password as is). User names are compared as sent.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { asciiUpper } from './ascii.ts';

export const SaslMechanism = {
  /** RFC 7677 */
  ScramSha256: 'SCRAM-SHA-256',
  /** RFC 4616 */
  Plain: 'PLAIN',
  /** draft-murchison-sasl-login-00 */
  Login: 'LOGIN',
  /** RFC 2195 */
  CramMd5: 'CRAM-MD5',
} as const;
export type SaslMechanism = (typeof SaslMechanism)[keyof typeof SaslMechanism];

const MECHANISMS: ReadonlySet<string> = new Set(Object.values(SaslMechanism));

/** RFC 4422 §3.1: mechanism names are upper case on the wire; clients are not always. */
export function parseSaslMechanism(name: string): SaslMechanism | undefined {
  const upper = asciiUpper(name);
  return MECHANISMS.has(upper) ? (upper as SaslMechanism) : undefined;
}

export interface SaslCredentials {
  /** The user's password, or undefined for an unknown user. */
  password(username: string): Promise<string | undefined> | string | undefined;
}

export const SaslFailure = {
  /** Wrong password, unknown user, or a SCRAM proof that does not verify. */
  BadCredentials: 'bad-credentials',
  /** The response does not follow the mechanism's syntax or protocol. */
  Malformed: 'malformed',
  /** Well-formed but asks for something we do not do (SCRAM channel binding, mandatory extensions). */
  Unsupported: 'unsupported',
  /** An authorization identity other than the authentication identity (we do not proxy). */
  AuthzidMismatch: 'authzid-mismatch',
} as const;
export type SaslFailure = (typeof SaslFailure)[keyof typeof SaslFailure];

export type SaslStep =
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /**
   * data: additional data with success (the SCRAM server-final message). RFC 4954 §4: the server
   * sends it in a 334, the client answers with an empty line, then 235.
   */
  | { readonly kind: 'success'; readonly identity: string; readonly data?: Buffer }
  /**
   * identity: the claimed user, when the response got that far (for throttling and logs).
   * detail: why, for logs; for SCRAM an RFC 5802 §7 server-error-value where one fits.
   */
  | {
      readonly kind: 'failure';
      readonly reason: SaslFailure;
      readonly identity?: string;
      readonly detail?: string;
    };

export interface SaslExchange {
  readonly mechanism: SaslMechanism;
  /** initial: the AUTH command's initial response (empty for "="), or undefined when absent. */
  start(initial: Buffer | undefined): Promise<SaslStep>;
  next(response: Buffer): Promise<SaslStep>;
}

export interface SaslOptions {
  readonly credentials: SaslCredentials;
  /** Our host name, in the CRAM-MD5 challenge (RFC 2195 §2). */
  readonly hostname: string;
  /** Source of randomness for nonces (default crypto.randomBytes). */
  readonly random?: (n: number) => Buffer;
  /** SCRAM iteration count (RFC 7677 §4: at least 4096, the default). */
  readonly scramIterations?: number;
  /**
   * Key for the per-user SCRAM salt, HMAC-SHA-256(key, user): a user sees the same salt on every
   * attempt and unknown users get one just as stable. Replicas should share it; the default is
   * random per process, so the salt then changes across restarts and pods (still correct).
   */
  readonly scramSaltKey?: Buffer;
  /** Test hooks: a fixed salt and server nonce (RFC 7677 §3 test vector). */
  readonly scramSalt?: Buffer;
  readonly scramServerNonce?: string;
}

/** Stable codes for misuse of this module and for failures our client detects. */
export const SaslErrorCode = {
  /** createSaslExchange options out of range. */
  InvalidOptions: 'PETREL_ERR_SASL_INVALID_OPTIONS',
  /** Our client got a server message it cannot accept (syntax, nonce, iteration count). */
  InvalidServerMessage: 'PETREL_ERR_SASL_INVALID_SERVER_MESSAGE',
  /** Our client's steps were called out of order. */
  OutOfOrder: 'PETREL_ERR_SASL_OUT_OF_ORDER',
} as const;
export type SaslErrorCode = (typeof SaslErrorCode)[keyof typeof SaslErrorCode];

export class SaslError extends Error {
  readonly code: SaslErrorCode;
  constructor(code: SaslErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SaslError';
    this.code = code;
  }
}

/** RFC 7677 §4: SCRAM-SHA-256 iteration count SHOULD be at least 4096. */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
/** Our client refuses more, so that a hostile server cannot make it spin. */
export const SCRAM_MAX_ITERATIONS = 1_000_000;
const SCRAM_SALT_LENGTH = 16;
const SCRAM_NONCE_BYTES = 18;
/** Longer than any address (RFC 5321 §4.5.3.1.3: 256 octets path) with room for odd user names. */
const MAX_USERNAME = 512;

/** Default for SaslOptions.scramSaltKey: stable for the life of the process only. */
const PROCESS_SALT_KEY = randomBytes(32);

const pbkdf2Async = promisify(pbkdf2);
const sha256 = (data: string | Buffer): Buffer => createHash('sha256').update(data).digest();
const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();

/** Constant-time equality of two secrets of any length: compare their SHA-256 digests. */
function secretEqual(a: string | Buffer, b: string | Buffer): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

/** Strict UTF-8 (RFC 4616 §2, RFC 5802 §7): undefined for invalid sequences. */
function utf8(buffer: Buffer): string | undefined {
  const text = buffer.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buffer) ? text : undefined;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
const CONTROL = /[\u0000-\u001f\u007f]/;

function validIdentity(user: string): boolean {
  return user !== '' && user.length <= MAX_USERNAME && !CONTROL.test(user);
}

/** Canonical padded base64 (RFC 4648 §4): decodes and re-encodes to the same text. */
function strictBase64(text: string): Buffer | undefined {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const data = Buffer.from(text, 'base64');
  return data.toString('base64') === text ? data : undefined;
}

const fail = (reason: SaslFailure, identity?: string, detail?: string): SaslStep => ({
  kind: 'failure',
  reason,
  ...(identity === undefined ? {} : { identity }),
  ...(detail === undefined ? {} : { detail }),
});
const challenge = (data: string | Buffer): SaslStep => ({
  kind: 'challenge',
  data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data,
});

// RFC 4013 SASLprep (the StringPrep profile of RFC 3454 for user names and passwords).
// Handled: §2.1 mapping (non-ASCII spaces to SPACE, "commonly mapped to nothing" removed), §2.2
// NFKC, §2.3 prohibited output (tables C.1.2, C.2.1, C.2.2, C.3-C.9). Not handled: §2.4 bidi
// rules and A.1 unassigned code points (JavaScript has no Bidi_Class or Unicode 3.2 tables);
// neither can occur in an ASCII-only string, which SASLprep leaves as is unless it has controls.
// Tables are code point ranges rather than regex classes: they list single code points, some of
// them combining or joining characters that a character class would make ambiguous to read.

type Ranges = readonly (readonly [number, number])[];

/** RFC 3454 C.1.2 non-ASCII space characters (RFC 4013 §2.1: map to SPACE). */
const NON_ASCII_SPACE: Ranges = [
  [0x00a0, 0x00a0],
  [0x1680, 0x1680],
  [0x2000, 0x200b],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
];
/** RFC 3454 B.1 commonly mapped to nothing (RFC 4013 §2.1); U+200B is already a space above. */
const MAPPED_TO_NOTHING: Ranges = [
  [0x00ad, 0x00ad],
  [0x034f, 0x034f],
  [0x1806, 0x1806],
  [0x180b, 0x180d],
  [0x200c, 0x200d],
  [0x2060, 0x2060],
  [0xfe00, 0xfe0f],
  [0xfeff, 0xfeff],
];
/** RFC 4013 §2.3 prohibited output. */
const PROHIBITED: Ranges = [
  ...NON_ASCII_SPACE, // C.1.2
  [0x0000, 0x001f], // C.2.1 ASCII control characters
  [0x007f, 0x007f],
  [0x0080, 0x009f], // C.2.2 non-ASCII control characters
  [0x06dd, 0x06dd],
  [0x070f, 0x070f],
  [0x180e, 0x180e],
  [0x200c, 0x200d],
  [0x2028, 0x2029],
  [0x2060, 0x2063],
  [0x206a, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffc],
  [0x1d173, 0x1d17a],
  [0xe000, 0xf8ff], // C.3 private use
  [0xf0000, 0xffffd],
  [0x100000, 0x10fffd],
  [0xfdd0, 0xfdef], // C.4 non-characters (U+nFFFE/U+nFFFF in every plane: isNonCharacter)
  [0xd800, 0xdfff], // C.5 surrogates (lone ones; pairs were combined into code points)
  [0xfff9, 0xfffd], // C.6 inappropriate for plain text
  [0x2ff0, 0x2ffb], // C.7 inappropriate for canonical representation
  [0x0340, 0x0341], // C.8 change display properties or deprecated
  [0x200e, 0x200f],
  [0x202a, 0x202e],
  [0xe0001, 0xe0001], // C.9 tagging characters
  [0xe0020, 0xe007f],
];

const inRanges = (cp: number, ranges: Ranges): boolean => ranges.some(([from, to]) => cp >= from && cp <= to);
const isNonCharacter = (cp: number): boolean => (cp & 0xfffe) === 0xfffe;

/**
 * RFC 4013 SASLprep, as far as described above. Returns undefined when the result contains
 * prohibited output (the caller decides what that means; see `preparePassword`).
 */
export function saslPrep(text: string): string | undefined {
  let mapped = '';
  for (const char of text) {
    const cp = char.codePointAt(0) as number;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped += char;
  }
  const normalized = mapped.normalize('NFKC');
  for (const char of normalized) {
    const cp = char.codePointAt(0) as number;
    if (inRanges(cp, PROHIBITED) || isNonCharacter(cp)) return undefined;
  }
  return normalized;
}

function preparePassword(password: string): string {
  return saslPrep(password) ?? password;
}

/** Checked against when the user is unknown, so that both paths do the same work; fresh per exchange. */
function dummyPassword(options: SaslOptions): string {
  return (options.random ?? randomBytes)(24).toString('base64');
}

async function checkPassword(options: SaslOptions, user: string, given: string): Promise<boolean> {
  const known = await options.credentials.password(user);
  const ok = secretEqual(preparePassword(known ?? dummyPassword(options)), preparePassword(given));
  return ok && known !== undefined;
}

type Handler = (response: Buffer) => Promise<SaslStep>;

/**
 * The shared state machine: `start` once, then `next` while the last step was a challenge.
 * Anything else is malformed, so a misbehaving caller cannot retry a password inside one exchange.
 */
function exchange(
  mechanism: SaslMechanism,
  start: (initial: Buffer | undefined) => Promise<SaslStep>,
  next: Handler,
): SaslExchange {
  let phase: 'new' | 'open' | 'done' = 'new';
  const settle = (step: SaslStep): SaslStep => {
    phase = step.kind === 'challenge' ? 'open' : 'done';
    return step;
  };
  return {
    mechanism,
    async start(initial) {
      if (phase !== 'new') return settle(fail(SaslFailure.Malformed, undefined, 'out-of-order'));
      phase = 'done';
      return settle(await start(initial));
    },
    async next(response) {
      if (phase !== 'open') return settle(fail(SaslFailure.Malformed, undefined, 'out-of-order'));
      phase = 'done';
      return settle(await next(response));
    },
  };
}

/** RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; authcid and passwd non-empty. */
function plainExchange(options: SaslOptions): SaslExchange {
  const verify: Handler = async (response) => {
    const parts = utf8(response)?.split('\0');
    if (parts === undefined || parts.length !== 3) return fail(SaslFailure.Malformed);
    const [authzid = '', user = '', password = ''] = parts;
    if (!validIdentity(user) || password === '') return fail(SaslFailure.Malformed);
    // RFC 4616 §2: an empty authzid means "the authcid"; anything else would be proxy auth.
    if (authzid !== '' && authzid !== user) return fail(SaslFailure.AuthzidMismatch, user);
    return (await checkPassword(options, user, password))
      ? { kind: 'success', identity: user }
      : fail(SaslFailure.BadCredentials, user);
  };
  // Without an initial response: an empty challenge (RFC 4954 §4 "334 " then the client's message).
  return exchange(
    SaslMechanism.Plain,
    async (initial) => (initial === undefined ? challenge('') : verify(initial)),
    verify,
  );
}

/**
 * LOGIN: two challenges, user name then password. The draft suggests "User Name" and "Password";
 * we send "Username:" and "Password:" as most servers do (clients ignore them). An initial
 * response is taken as the user name (common client practice); "=" is then an empty, so
 * malformed, user name.
 */
function loginExchange(options: SaslOptions): SaslExchange {
  let user = '';
  const takeUser: Handler = async (response) => {
    const text = utf8(response);
    if (text === undefined || !validIdentity(text)) return fail(SaslFailure.Malformed);
    user = text;
    return challenge('Password:');
  };
  const takePassword: Handler = async (response) => {
    const password = utf8(response);
    if (password === undefined || password === '') return fail(SaslFailure.Malformed, user);
    return (await checkPassword(options, user, password))
      ? { kind: 'success', identity: user }
      : fail(SaslFailure.BadCredentials, user);
  };
  return exchange(
    SaslMechanism.Login,
    async (initial) => (initial === undefined ? challenge('Username:') : takeUser(initial)),
    (response) => (user === '' ? takeUser(response) : takePassword(response)),
  );
}

/** RFC 2195 §2: challenge "<random.timestamp@host>"; response "user SP lowercase-hex(HMAC-MD5)". */
function cramMd5Exchange(options: SaslOptions): SaslExchange {
  const random = options.random ?? randomBytes;
  const text = `<${random(8).toString('hex')}.${Date.now()}@${options.hostname}>`;
  return exchange(
    SaslMechanism.CramMd5,
    // RFC 4954 §4: an initial response ("=" included) to a server-first mechanism is a 501.
    async (initial) =>
      initial === undefined ? challenge(text) : fail(SaslFailure.Malformed, undefined, 'initial-response'),
    async (response) => {
      const m = /^(.+) ([0-9a-f]{32})$/s.exec(utf8(response) ?? '');
      const user = m?.[1];
      const digest = m?.[2];
      if (user === undefined || digest === undefined || !validIdentity(user)) {
        return fail(SaslFailure.Malformed);
      }
      const known = await options.credentials.password(user);
      const expected = createHmac('md5', known ?? dummyPassword(options))
        .update(text)
        .digest('hex');
      return secretEqual(expected, digest) && known !== undefined
        ? { kind: 'success', identity: user }
        : fail(SaslFailure.BadCredentials, user);
    },
  );
}

/** RFC 5802 §5.1 saslname: "," and "=" escaped as "=2C" and "=3D"; any other "=" is malformed. */
function decodeSaslName(text: string): string | undefined {
  if (text === '' || /=(?!2C|3D)/.test(text) || text.includes(',') || text.includes('\0')) return undefined;
  return text.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

export function encodeSaslName(text: string): string {
  return text.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** RFC 5802 §3: SaltedPassword = Hi(Normalize(password), salt, i), Hi being PBKDF2 with HMAC. */
function saltedPassword(password: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(preparePassword(password), salt, iterations, 32, 'sha256');
}

/** RFC 5802 §7 printable: %x21-2B / %x2D-7E (no comma). */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
/** RFC 5802 §7 attr-val: ALPHA "=" value, value non-empty and without comma. */
const ATTR_VAL = /^[A-Za-z]=[^,]+$/;
/** RFC 5802 §7 cb-name: 1*(ALPHA / DIGIT / "." / "-"). */
const CB_NAME = /^p=[A-Za-z0-9.-]+$/;

/** Optional extensions must be well formed; "m" (mandatory extension) fails (RFC 5802 §5.1). */
function checkExtensions(attrs: readonly string[], user?: string): SaslStep | undefined {
  for (const attr of attrs) {
    if (attr.startsWith('m=')) return fail(SaslFailure.Unsupported, user, 'extensions-not-supported');
    if (!ATTR_VAL.test(attr)) return fail(SaslFailure.Malformed, user, 'invalid-encoding');
  }
  return undefined;
}

interface ScramPending {
  readonly user: string;
  readonly known: boolean;
  readonly gs2Header: string;
  readonly nonce: string;
  /** client-first-message-bare "," server-first-message */
  readonly authPrefix: string;
  readonly salted: Buffer;
}

/** SCRAM-SHA-256 (RFC 5802 §5, RFC 7677) without channel binding. */
function scramExchange(options: SaslOptions): SaslExchange {
  const random = options.random ?? randomBytes;
  const iterations = options.scramIterations ?? SCRAM_DEFAULT_ITERATIONS;
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new SaslError(SaslErrorCode.InvalidOptions, `scramIterations must be a positive integer`);
  }
  let pending: ScramPending | undefined;

  /** client-first-message = gs2-header client-first-message-bare */
  const first: Handler = async (message) => {
    const text = utf8(message);
    if (text === undefined) return fail(SaslFailure.Malformed, undefined, 'invalid-encoding');
    const parts = text.split(',');
    const [flag = '', authzField = ''] = parts;
    // gs2-cbind-flag: "p=" asks for channel binding (SCRAM-SHA-256-PLUS), which we do not offer;
    // "y" says the client could but thinks we cannot (true), "n" says it cannot.
    if (CB_NAME.test(flag)) return fail(SaslFailure.Unsupported, undefined, 'channel-binding-not-supported');
    if ((flag !== 'n' && flag !== 'y') || parts.length < 4) {
      return fail(SaslFailure.Malformed, undefined, 'invalid-encoding');
    }
    const bareAttrs = parts.slice(2);
    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    if (bareAttrs[0]?.startsWith('m=')) {
      return fail(SaslFailure.Unsupported, undefined, 'extensions-not-supported');
    }
    const [userAttr = '', nonceAttr = '', ...extensions] = bareAttrs;
    if (!userAttr.startsWith('n=') || !nonceAttr.startsWith('r=')) {
      return fail(SaslFailure.Malformed, undefined, 'invalid-encoding');
    }
    const user = decodeSaslName(userAttr.slice(2));
    if (user === undefined || !validIdentity(user)) {
      return fail(SaslFailure.Malformed, undefined, 'invalid-username-encoding');
    }
    const clientNonce = nonceAttr.slice(2);
    if (!PRINTABLE.test(clientNonce)) return fail(SaslFailure.Malformed, user, 'invalid-encoding');
    const extensionFailure = checkExtensions(extensions, user);
    if (extensionFailure !== undefined) return extensionFailure;
    // gs2-header authzid: empty, or "a=" saslname equal to the user (no proxy authentication).
    if (authzField !== '') {
      const authzid = authzField.startsWith('a=') ? decodeSaslName(authzField.slice(2)) : undefined;
      if (authzid === undefined) return fail(SaslFailure.Malformed, user, 'invalid-encoding');
      if (authzid !== user) return fail(SaslFailure.AuthzidMismatch, user, 'other-error');
    }

    const password = await options.credentials.password(user);
    // Unknown users get a salt derived the same way, so the salt tells nothing about existence.
    const salt =
      options.scramSalt ??
      hmac(options.scramSaltKey ?? PROCESS_SALT_KEY, `scram-salt\0${user}`).subarray(0, SCRAM_SALT_LENGTH);
    const nonce = clientNonce + (options.scramServerNonce ?? random(SCRAM_NONCE_BYTES).toString('base64'));
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${iterations}`;
    pending = {
      user,
      known: password !== undefined,
      gs2Header: `${flag},${authzField},`,
      nonce,
      authPrefix: `${bareAttrs.join(',')},${serverFirst}`,
      salted: await saltedPassword(password ?? dummyPassword(options), salt, iterations),
    };
    return challenge(serverFirst);
  };

  /** client-final-message = channel-binding "," nonce ["," extensions] "," proof */
  const final: Handler = async (message) => {
    const s = pending as ScramPending;
    const text = utf8(message);
    if (text === undefined) return fail(SaslFailure.Malformed, s.user, 'invalid-encoding');
    const parts = text.split(',');
    const [binding = '', nonceAttr = ''] = parts;
    const proofAttr = parts.at(-1) ?? '';
    if (
      parts.length < 3 ||
      !binding.startsWith('c=') ||
      !nonceAttr.startsWith('r=') ||
      !proofAttr.startsWith('p=')
    ) {
      return fail(SaslFailure.Malformed, s.user, 'invalid-encoding');
    }
    const extensionFailure = checkExtensions(parts.slice(2, -1), s.user);
    if (extensionFailure !== undefined) return extensionFailure;
    // c= is base64 of the gs2 header exactly (no cbind-data without channel binding).
    if (binding.slice(2) !== Buffer.from(s.gs2Header, 'utf8').toString('base64')) {
      return fail(SaslFailure.Malformed, s.user, 'channel-bindings-dont-match');
    }
    if (nonceAttr.slice(2) !== s.nonce) return fail(SaslFailure.Malformed, s.user, 'nonce-mismatch');
    const proof = strictBase64(proofAttr.slice(2));
    if (proof === undefined || proof.length !== 32)
      return fail(SaslFailure.Malformed, s.user, 'invalid-encoding');

    // RFC 5802 §3: AuthMessage, ClientSignature, ClientKey = proof XOR signature, H(ClientKey) = StoredKey.
    const authMessage = `${s.authPrefix},${text.slice(0, text.length - proofAttr.length - 1)}`;
    const storedKey = sha256(hmac(s.salted, 'Client Key'));
    const clientKey = xor(proof, hmac(storedKey, authMessage));
    const valid = timingSafeEqual(sha256(clientKey), storedKey);
    if (!valid || !s.known) return fail(SaslFailure.BadCredentials, s.user, 'invalid-proof');
    const serverSignature = hmac(hmac(s.salted, 'Server Key'), authMessage);
    return {
      kind: 'success',
      identity: s.user,
      data: Buffer.from(`v=${serverSignature.toString('base64')}`),
    };
  };

  // SCRAM is client-first: without an initial response, an empty challenge asks for it. An empty
  // initial response ("=") is not a client-first message, so it is malformed.
  return exchange(
    SaslMechanism.ScramSha256,
    async (initial) => (initial === undefined ? challenge('') : first(initial)),
    (response) => (pending === undefined ? first(response) : final(response)),
  );
}

/** A fresh exchange per AUTH command. Throws SaslError(InvalidOptions) for bad options. */
export function createSaslExchange(mechanism: SaslMechanism, options: SaslOptions): SaslExchange {
  switch (mechanism) {
    case SaslMechanism.Plain:
      return plainExchange(options);
    case SaslMechanism.Login:
      return loginExchange(options);
    case SaslMechanism.CramMd5:
      return cramMd5Exchange(options);
    case SaslMechanism.ScramSha256:
      return scramExchange(options);
  }
}

// Client side: the messages our client sends (no base64; the caller encodes them).

/** RFC 4616 §2 message; authzid empty means "act as user". */
export function plainResponse(user: string, password: string, authzid = ''): Buffer {
  return Buffer.from(`${authzid}\0${user}\0${password}`, 'utf8');
}

/** RFC 2195 §2: "user SP hex(HMAC-MD5(password, challenge))". */
export function cramMd5Response(user: string, password: string, challengeText: Buffer): Buffer {
  return Buffer.from(`${user} ${createHmac('md5', password).update(challengeText).digest('hex')}`, 'utf8');
}

export interface ScramClientOptions {
  /** Client nonce (printable, no comma); random by default. Fixed only in tests. */
  readonly nonce?: string;
  /** Refuse a server-first message asking for more iterations (default SCRAM_MAX_ITERATIONS). */
  readonly maxIterations?: number;
}

export interface ScramClient {
  /** client-first-message: "n,," gs2 header (no channel binding, no authzid), user, nonce. */
  first(): Buffer;
  /** client-final-message for the server-first message; throws SaslError if that is unacceptable. */
  final(serverFirst: Buffer): Promise<Buffer>;
  /** Mutual authentication: true only for the server signature we expect (false for "e=..."). */
  verify(serverFinal: Buffer): boolean;
}

/** SCRAM-SHA-256 client steps (RFC 5802 §5), for tests and our delivery client. */
export function scramClient(user: string, password: string, options: ScramClientOptions = {}): ScramClient {
  const nonce = options.nonce ?? randomBytes(SCRAM_NONCE_BYTES).toString('base64');
  if (!PRINTABLE.test(nonce)) throw new SaslError(SaslErrorCode.InvalidOptions, 'SCRAM nonce not printable');
  const maxIterations = options.maxIterations ?? SCRAM_MAX_ITERATIONS;
  const gs2Header = 'n,,';
  const bare = `n=${encodeSaslName(user)},r=${nonce}`;
  let expected: Buffer | undefined;
  const invalid = (why: string) =>
    new SaslError(SaslErrorCode.InvalidServerMessage, `SCRAM server-first message: ${why}`);
  return {
    first: () => Buffer.from(`${gs2Header}${bare}`, 'utf8'),
    async final(serverFirst) {
      if (expected !== undefined) throw new SaslError(SaslErrorCode.OutOfOrder, 'SCRAM final() called twice');
      const text = utf8(serverFirst);
      // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
      const m =
        text === undefined ? null : /^r=([^,]+),s=([^,]+),i=([1-9][0-9]{0,9})((?:,[^,]+)*)$/.exec(text);
      if (text === undefined || m === null) throw invalid('syntax');
      const [, serverNonce = '', saltText = '', count = '', extensions = ''] = m;
      if (extensions.split(',').some((attr) => attr.startsWith('m='))) throw invalid('mandatory extension');
      if (
        !serverNonce.startsWith(nonce) ||
        serverNonce.length === nonce.length ||
        !PRINTABLE.test(serverNonce)
      ) {
        throw invalid('nonce does not extend ours');
      }
      const salt = strictBase64(saltText);
      if (salt === undefined) throw invalid('salt is not base64');
      const iterations = Number(count);
      if (iterations > maxIterations) throw invalid(`iteration count ${iterations} over ${maxIterations}`);
      const salted = await saltedPassword(password, salt, iterations);
      const withoutProof = `c=${Buffer.from(gs2Header).toString('base64')},r=${serverNonce}`;
      const authMessage = `${bare},${text},${withoutProof}`;
      const clientKey = hmac(salted, 'Client Key');
      const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
      expected = Buffer.from(`v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}`);
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
    },
    verify(serverFinal) {
      return expected !== undefined && secretEqual(serverFinal, expected);
    },
  };
}
