/**
 * Server-side SASL mechanisms for SMTP AUTH (RFC 4954): PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login), CRAM-MD5 (RFC 2195) and SCRAM-SHA-256 (RFC 5802, RFC 7677),
 * plus the matching client steps (tests, and our own client). Pure: no sockets, no base64 —
 * the session does the 334 lines. Secrets are compared in constant time, and an unknown user
 * takes the same path as a wrong password.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SaslMechanism = {
  ScramSha256: 'SCRAM-SHA-256',
  Plain: 'PLAIN',
  Login: 'LOGIN',
  CramMd5: 'CRAM-MD5',
} as const;
export type SaslMechanism = (typeof SaslMechanism)[keyof typeof SaslMechanism];

const MECHANISMS: ReadonlySet<string> = new Set(Object.values(SaslMechanism));

export function parseSaslMechanism(name: string): SaslMechanism | undefined {
  const upper = name.toUpperCase();
  return MECHANISMS.has(upper) ? (upper as SaslMechanism) : undefined;
}

export interface SaslCredentials {
  /** The user's password, or undefined for an unknown user. */
  password(username: string): Promise<string | undefined> | string | undefined;
}

export const SaslFailure = {
  BadCredentials: 'bad-credentials',
  Malformed: 'malformed',
  /** e.g. SCRAM channel binding or mandatory extensions */
  Unsupported: 'unsupported',
  AuthzidMismatch: 'authzid-mismatch',
} as const;
export type SaslFailure = (typeof SaslFailure)[keyof typeof SaslFailure];

export type SaslStep =
  | { readonly kind: 'challenge'; readonly data: Buffer }
  /** data: additional data with success (SCRAM server-final), sent in a 334 (RFC 4954 §4). */
  | { readonly kind: 'success'; readonly identity: string; readonly data?: Buffer }
  | { readonly kind: 'failure'; readonly reason: SaslFailure; readonly identity?: string };

export interface SaslExchange {
  readonly mechanism: SaslMechanism;
  /** initial: the initial response of the AUTH command (empty buffer for "="), if any. */
  start(initial: Buffer | undefined): Promise<SaslStep>;
  next(response: Buffer): Promise<SaslStep>;
}

export interface SaslOptions {
  readonly credentials: SaslCredentials;
  readonly hostname: string;
  readonly random?: (n: number) => Buffer;
  readonly scramIterations?: number;
  /** Key for the per-user SCRAM salt; a stable user sees a stable salt. */
  readonly scramSaltKey?: Buffer;
  /** Test hooks: fixed salt and server nonce (RFC 7677 test vector). */
  readonly scramSalt?: Buffer;
  readonly scramServerNonce?: string;
}

/** Compared against when the user is unknown, so that both paths cost the same. */
const DUMMY_PASSWORD = randomBytes(24).toString('base64');
const PROCESS_SALT_KEY = randomBytes(32);
const MAX_USERNAME = 512;

function digestEqual(a: string | Buffer, b: string | Buffer): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

const fail = (reason: SaslFailure, identity?: string): SaslStep =>
  identity === undefined ? { kind: 'failure', reason } : { kind: 'failure', reason, identity };
const challenge = (data: string | Buffer): SaslStep => ({
  kind: 'challenge',
  data: typeof data === 'string' ? Buffer.from(data) : data,
});

async function checkPassword(credentials: SaslCredentials, user: string, given: string): Promise<boolean> {
  const known = await credentials.password(user);
  const ok = digestEqual(known ?? DUMMY_PASSWORD, given);
  return ok && known !== undefined;
}

function utf8(buffer: Buffer): string | undefined {
  const text = buffer.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buffer) ? text : undefined;
}

/** RFC 4616: [authzid] NUL authcid NUL passwd. */
function plainExchange(options: SaslOptions): SaslExchange {
  const verify = async (response: Buffer): Promise<SaslStep> => {
    const text = utf8(response);
    const parts = text?.split('\0');
    if (parts === undefined || parts.length !== 3) return fail(SaslFailure.Malformed);
    const [authzid = '', user = '', password = ''] = parts;
    if (user === '' || user.length > MAX_USERNAME) return fail(SaslFailure.Malformed);
    if (authzid !== '' && authzid !== user) return fail(SaslFailure.AuthzidMismatch, user);
    return (await checkPassword(options.credentials, user, password))
      ? { kind: 'success', identity: user }
      : fail(SaslFailure.BadCredentials, user);
  };
  return {
    mechanism: SaslMechanism.Plain,
    start: async (initial) => (initial === undefined ? challenge('') : verify(initial)),
    next: verify,
  };
}

/** LOGIN: "Username:", "Password:" challenges (draft-murchison-sasl-login). */
function loginExchange(options: SaslOptions): SaslExchange {
  let user: string | undefined;
  const takeUser = (response: Buffer): SaslStep => {
    const text = utf8(response);
    if (text === undefined || text === '' || text.length > MAX_USERNAME || text.includes('\0')) {
      return fail(SaslFailure.Malformed);
    }
    user = text;
    return challenge('Password:');
  };
  return {
    mechanism: SaslMechanism.Login,
    start: async (initial) =>
      initial === undefined || initial.length === 0 ? challenge('Username:') : takeUser(initial),
    next: async (response) => {
      if (user === undefined) return takeUser(response);
      const password = utf8(response);
      if (password === undefined) return fail(SaslFailure.Malformed, user);
      return (await checkPassword(options.credentials, user, password))
        ? { kind: 'success', identity: user }
        : fail(SaslFailure.BadCredentials, user);
    },
  };
}

/** RFC 2195: challenge <random.time@host>; response "user hex(HMAC-MD5(password, challenge))". */
function cramMd5Exchange(options: SaslOptions): SaslExchange {
  const random = options.random ?? randomBytes;
  const text = `<${random(8).toString('hex')}.${Date.now()}@${options.hostname}>`;
  return {
    mechanism: SaslMechanism.CramMd5,
    // RFC 2195 has no initial response.
    start: async (initial) =>
      initial !== undefined && initial.length > 0 ? fail(SaslFailure.Malformed) : challenge(text),
    next: async (response) => {
      const m = /^(.+) ([0-9a-f]{32})$/.exec(utf8(response) ?? '');
      const user = m?.[1];
      if (m === null || user === undefined || user.length > MAX_USERNAME) return fail(SaslFailure.Malformed);
      const known = await options.credentials.password(user);
      const expected = createHmac('md5', known ?? DUMMY_PASSWORD)
        .update(text)
        .digest('hex');
      return digestEqual(expected, m[2] as string) && known !== undefined
        ? { kind: 'success', identity: user }
        : fail(SaslFailure.BadCredentials, user);
    },
  };
}

/** RFC 4013 SASLprep, the part that matters for passwords: non-ASCII spaces to SP, NFKC. */
export function saslPrep(text: string): string {
  return text
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, '')
    .normalize('NFKC');
}

const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) ^ (b[i] as number);
  return out;
}

/** RFC 5802 §5.1 saslname: "=2C" and "=3D" escapes; any other "=" is malformed. */
function decodeSaslName(text: string): string | undefined {
  if (/=(?!2C|3D)/.test(text)) return undefined;
  return text.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

export function encodeSaslName(text: string): string {
  return text.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(saslPrep(password), salt, iterations, 32, 'sha256');
}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

/** SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding. */
function scramExchange(options: SaslOptions): SaslExchange {
  const random = options.random ?? randomBytes;
  const iterations = options.scramIterations ?? 4096;
  let state:
    | { step: 'first' }
    | {
        step: 'final';
        user: string;
        known: boolean;
        gs2Header: string;
        nonce: string;
        authPrefix: string;
        salted: Buffer;
      }
    | { step: 'done' } = { step: 'first' };

  const first = async (message: Buffer): Promise<SaslStep> => {
    const text = utf8(message);
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const m = text === undefined ? null : /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/.exec(text);
    if (m === null) return fail(SaslFailure.Malformed);
    if ((m[1] as string).startsWith('p=')) return fail(SaslFailure.Unsupported);
    const bare = m[3] as string;
    const attrs = /^n=([^,]+),r=([^,]+)(,.*)?$/.exec(bare);
    if (attrs === null) return fail(SaslFailure.Malformed);
    if ((attrs[3] ?? '').startsWith(',m=')) return fail(SaslFailure.Unsupported);
    const user = decodeSaslName(attrs[1] as string);
    const clientNonce = attrs[2] as string;
    if (user === undefined || user.length > MAX_USERNAME || !PRINTABLE_NONCE.test(clientNonce)) {
      return fail(SaslFailure.Malformed);
    }
    const authzid = m[2] === undefined ? '' : decodeSaslName(m[2].slice(2));
    if (authzid === undefined) return fail(SaslFailure.Malformed);
    if (authzid !== '' && authzid !== user) return fail(SaslFailure.AuthzidMismatch, user);
    const password = await options.credentials.password(user);
    const salt =
      options.scramSalt ?? hmac(options.scramSaltKey ?? PROCESS_SALT_KEY, `salt:${user}`).subarray(0, 16);
    const serverNonce = options.scramServerNonce ?? random(18).toString('base64');
    const nonce = clientNonce + serverNonce;
    const serverFirst = `r=${nonce},s=${salt.toString('base64')},i=${iterations}`;
    state = {
      step: 'final',
      user,
      known: password !== undefined,
      gs2Header: `${m[1]},${m[2] ?? ''},`,
      nonce,
      authPrefix: `${bare},${serverFirst}`,
      salted: saltedPassword(password ?? DUMMY_PASSWORD, salt, iterations),
    };
    return challenge(serverFirst);
  };

  const final = async (message: Buffer): Promise<SaslStep> => {
    if (state.step !== 'final') return fail(SaslFailure.Malformed);
    const s = state;
    state = { step: 'done' };
    const text = utf8(message);
    const m =
      text === undefined ? null : /^c=([^,]*),r=([^,]*)((?:,[a-z]=[^,]*)*),p=([A-Za-z0-9+/=]+)$/.exec(text);
    if (m === null) return fail(SaslFailure.Malformed, s.user);
    if (Buffer.from(m[1] as string, 'base64').toString('utf8') !== s.gs2Header) {
      return fail(SaslFailure.Malformed, s.user);
    }
    if (m[2] !== s.nonce) return fail(SaslFailure.Malformed, s.user);
    const proof = Buffer.from(m[4] as string, 'base64');
    const withoutProof = (text as string).slice(0, (text as string).lastIndexOf(',p='));
    const authMessage = `${s.authPrefix},${withoutProof}`;
    const clientKey = hmac(s.salted, 'Client Key');
    const storedKey = sha256(clientKey);
    const signature = hmac(storedKey, authMessage);
    const ok = proof.length === 32 && timingSafeEqual(sha256(xor(proof, signature)), storedKey) && s.known;
    if (!ok) return fail(SaslFailure.BadCredentials, s.user);
    const serverSignature = hmac(hmac(s.salted, 'Server Key'), authMessage);
    return {
      kind: 'success',
      identity: s.user,
      data: Buffer.from(`v=${serverSignature.toString('base64')}`),
    };
  };

  return {
    mechanism: SaslMechanism.ScramSha256,
    start: async (initial) =>
      initial === undefined || initial.length === 0 ? challenge('') : first(initial),
    next: async (response) => (state.step === 'first' ? first(response) : final(response)),
  };
}

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

// Client side.

export function plainResponse(user: string, password: string, authzid = ''): Buffer {
  return Buffer.from(`${authzid}\0${user}\0${password}`, 'utf8');
}

export function cramMd5Response(user: string, password: string, challengeText: Buffer): Buffer {
  return Buffer.from(`${user} ${createHmac('md5', password).update(challengeText).digest('hex')}`);
}

/** SCRAM-SHA-256 client steps; `verify` checks the server's signature (mutual authentication). */
export function scramClient(
  user: string,
  password: string,
  nonce: string = randomBytes(18).toString('base64'),
): { first(): Buffer; final(serverFirst: Buffer): Buffer; verify(serverFinal: Buffer): boolean } {
  const bare = `n=${encodeSaslName(user)},r=${nonce}`;
  let expected: Buffer | undefined;
  return {
    first: () => Buffer.from(`n,,${bare}`),
    final(serverFirst) {
      const text = serverFirst.toString('utf8');
      const m = /^r=([^,]+),s=([^,]+),i=(\d+)/.exec(text);
      if (m === null || !(m[1] as string).startsWith(nonce))
        throw new Error('invalid SCRAM server-first message');
      const salted = saltedPassword(password, Buffer.from(m[2] as string, 'base64'), Number(m[3]));
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${m[1]}`;
      const authMessage = `${bare},${text},${withoutProof}`;
      const clientKey = hmac(salted, 'Client Key');
      const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
      expected = hmac(hmac(salted, 'Server Key'), authMessage);
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
    },
    verify(serverFinal) {
      return (
        expected !== undefined &&
        digestEqual(serverFinal.toString('utf8'), `v=${expected.toString('base64')}`)
      );
    },
  };
}
