/**
 * Support for the engine's property tests (src/fuzz.test.ts): a seeded PRNG, a generator of SMTP
 * input whose replies are known in advance (a small model of RFC 5321 / 3030 / 1870 / 6531
 * sequencing and of the engine's documented limits), random byte streams, a splitter that cuts
 * input at random TCP boundaries, a driver that feeds one stream to a ServerSession over an
 * in-memory duplex pair, and a checker for reply syntax (RFC 5321 §4.2, RFC 2034).
 */
import type { Socket } from 'node:net';
import { type Duplex, duplexPair } from 'node:stream';
import { EXTENSION_COMMAND_ALLOWANCE, MAX_AUTH_LINE, MAX_COMMAND_LINE, MAX_TEXT_LINE } from '../src/codes.ts';
import type { BareLineEndings } from '../src/data.ts';
import { reply } from '../src/reply.ts';
import { ServerSession, type ServerSessionOptions, type SessionHandler } from '../src/server.ts';

/** The engine's options for every fuzzed session: errors never end a session, so every line is answered. */
export const FUZZ_HOSTNAME = 'fuzz.test';
export const MAX_SIZE = 64 * 1024;
export const MAX_RECIPIENTS = 5;
const BASE_OPTIONS = {
  hostname: FUZZ_HOSTNAME,
  maxMessageSize: MAX_SIZE,
  maxRecipients: MAX_RECIPIENTS,
  maxErrors: 1e9,
} as const satisfies ServerSessionOptions;

/** A command line with its CRLF may be this long (RFC 5321 §4.5.3.1.4 plus the extensions' allowance). */
const COMMAND_LIMIT = MAX_COMMAND_LINE + EXTENSION_COMMAND_ALLOWANCE;
/** RFC 5321 §6.3 loop detection: more Received fields than this are refused. */
const MAX_RECEIVED = 100;

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

// ---------------------------------------------------------------------------------------------
// PRNG

/** mulberry32: small, fast and seedable; the same seed gives the same streams on every machine. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** Picks a key of a weight table (see `weights`) with probability proportional to its weight. */
  weighted<K extends string>(table: WeightTable<K>): K {
    let r = this.int(table.total);
    for (const [key, w] of table.entries) {
      if (r < w) return key;
      r -= w;
    }
    throw new Error('weighted pick with no weight');
  }
}

export interface WeightTable<K extends string> {
  readonly entries: readonly (readonly [K, number])[];
  readonly total: number;
}

/** A weight table, built once (picking from it is on the hot path). */
export function weights<K extends string>(table: Readonly<Record<K, number>>): WeightTable<K> {
  const entries = Object.entries(table) as [K, number][];
  return { entries, total: entries.reduce((sum, [, w]) => sum + w, 0) };
}

/** The seed of stream `index`: a hash, so that each stream can be replayed on its own. */
export function streamSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Message data: the properties the engine must find, computed independently of data.ts

/** Bare CR or bare LF anywhere (RFC 5321 §2.3.8, RFC 5322 §2.3); a trailing CR is bare too. */
export function hasBareLineEnding(data: Buffer): boolean {
  for (let i = 0; i < data.length; i++) {
    const b = data[i];
    if (b === CR && data[i + 1] !== LF) return true;
    if (b === LF && (i === 0 || data[i - 1] !== CR)) return true;
  }
  return false;
}

/** 'normalize' mode: every bare CR and bare LF becomes CRLF. */
export function normalizeLineEndings(data: Buffer): Buffer {
  if (!hasBareLineEnding(data)) return data;
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) {
    const b = data[i] as number;
    if (b === CR) {
      out.push(CR, LF);
      if (data[i + 1] === LF) i++;
    } else if (b === LF) {
      out.push(CR, LF);
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out);
}

/** A line (between CRLFs, the last one unterminated) longer than RFC 5321 §4.5.3.1.6 allows. */
export function hasLongLine(data: Buffer): boolean {
  if (data.length <= MAX_TEXT_LINE) return false;
  let start = 0;
  for (let i = data.indexOf(LF); i !== -1; i = data.indexOf(LF, i + 1)) {
    if (i === 0 || data[i - 1] !== CR) continue;
    if (i - 1 - start > MAX_TEXT_LINE) return true;
    start = i + 1;
  }
  return data.length - start > MAX_TEXT_LINE;
}

/** Received fields in the header section (up to the first empty line). */
export function receivedFields(data: Buffer): number {
  let count = 0;
  let start = 0;
  while (start < data.length) {
    let end = start;
    for (;;) {
      end = data.indexOf(LF, end);
      if (end === -1 || (end > start && data[end - 1] === CR)) break;
      end++;
    }
    const stop = end === -1 ? data.length : end - 1;
    if (stop === start) break;
    // Cheap first-octet test before the regular expression: this runs for every modelled message.
    if (((data[start] as number) | 0x20) === 0x72 && RECEIVED.test(data.toString('latin1', start, stop)))
      count++;
    if (end === -1) break;
    start = end + 1;
  }
  return count;
}

const RECEIVED = /^received[ \t]*:/i;

// ---------------------------------------------------------------------------------------------
// The model: command streams with known replies

export interface ExpectedReply {
  readonly code: number;
  /** The enhanced status code (RFC 3463) the reply must carry; undefined for HELO/EHLO and 354. */
  readonly enhanced: string | undefined;
  /** What the reply answers, for failure messages. */
  readonly what: string;
}

export interface ModelStream {
  readonly wire: Buffer;
  readonly bareLineEndings: BareLineEndings;
  /** Replies after the greeting, in order. */
  readonly replies: readonly ExpectedReply[];
  /** Bodies the handler must receive, in order, octet for octet. */
  readonly messages: readonly Buffer[];
  /** The units the stream was built from, for failure messages. */
  readonly units: readonly string[];
}

interface Sender {
  readonly path: string;
  readonly utf8: boolean;
}
interface Recipient {
  readonly path: string;
  readonly utf8: boolean;
  /** The fuzz handler refuses local parts starting with "refuse". */
  readonly refused: boolean;
}
interface Param {
  readonly text: string;
  /** The reply when the parameter is refused (undefined: accepted). */
  readonly refusal?: readonly [number, string];
  readonly binary?: boolean;
  readonly utf8?: boolean;
}

const SENDERS: readonly Sender[] = [
  { path: '<a@example.com>', utf8: false },
  { path: '<>', utf8: false },
  { path: '<first.last@mail.example.org>', utf8: false },
  { path: '<user+tag@example.com>', utf8: false },
  { path: '<"john doe"@example.com>', utf8: false },
  { path: '<jøran@example.com>', utf8: true },
];
const BAD_SENDERS: readonly string[] = ['<a@>', '<a example.com>', 'a@example.com', '<a@example.com'];
const RECIPIENTS: readonly Recipient[] = [
  { path: '<b@example.net>', utf8: false, refused: false },
  { path: '<c@[192.0.2.1]>', utf8: false, refused: false },
  { path: '<"x y"@example.net>', utf8: false, refused: false },
  { path: '<refuse1@example.net>', utf8: false, refused: true },
  { path: '<ünï@example.net>', utf8: true, refused: false },
];
const BAD_RECIPIENTS: readonly string[] = ['<>', '<b@example.net', '<b@>', 'b@example.net'];

const MAIL_PARAMS: readonly Param[] = [
  { text: `SIZE=${MAX_SIZE}` },
  { text: 'SIZE=1000' },
  { text: 'BODY=8BITMIME' },
  { text: 'BODY=7BIT' },
  { text: 'BODY=BINARYMIME', binary: true },
  { text: 'SMTPUTF8', utf8: true },
  { text: 'RET=HDRS' },
  { text: 'ENVID=fuzz+2B1' },
  { text: 'BY=3600;N' },
];
const BAD_MAIL_PARAMS: readonly Param[] = [
  { text: `SIZE=${MAX_SIZE + 1}`, refusal: [552, '5.3.4'] },
  { text: 'SIZE=big', refusal: [501, '5.5.4'] },
  { text: 'BODY=9BIT', refusal: [501, '5.5.4'] },
  { text: 'SMTPUTF8=yes', refusal: [501, '5.5.4'] },
  { text: 'FOO=bar', refusal: [555, '5.5.4'] },
  // RFC 8689 §4.1: REQUIRETLS only over TLS.
  { text: 'REQUIRETLS', refusal: [530, '5.7.10'] },
];
const RCPT_PARAMS: readonly Param[] = [
  { text: 'NOTIFY=SUCCESS,FAILURE' },
  { text: 'NOTIFY=NEVER' },
  { text: 'ORCPT=rfc822;b@example.net' },
];
const BAD_RCPT_PARAMS: readonly Param[] = [
  { text: 'NOTIFY=SOMETIMES', refusal: [501, '5.5.4'] },
  { text: 'XYZZY=1', refusal: [555, '5.5.4'] },
];

/** Verbs the engine knows (RFC 5321 §4.1 plus the extensions'). */
const KNOWN_VERBS: ReadonlySet<string> = new Set([
  'EHLO',
  'HELO',
  'MAIL',
  'RCPT',
  'DATA',
  'BDAT',
  'RSET',
  'NOOP',
  'QUIT',
  'VRFY',
  'EXPN',
  'HELP',
  'STARTTLS',
  'AUTH',
  'ETRN',
]);
/**
 * Not commands: SMTP verbs are ASCII keywords (RFC 5321 §2.4, §4.1.1), so a verb with a character
 * whose Unicode upper case is ASCII ("ı" → "I", "ſ" → "S", "ﬆ" → "ST") is unknown.
 */
const LOOKALIKE_VERBS: readonly string[] = [
  'quıt',
  'maıl FROM:<a@example.com>',
  'ſtarttls',
  'ﬆarttls',
  'noop\u00a0',
];

const ALPHABET = Buffer.from(
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .:;,<>@-_=+/"()\t',
  'latin1',
);
/** Bare line endings, including the SMTP smuggling shapes (a dot after a bare LF or CR). */
const BARE_TOKENS: readonly string[] = [
  '\n',
  '\r',
  '\n.',
  '\r.',
  '\n.\n',
  '\r.\r',
  '\n.\nMAIL FROM:<evil@attacker.example>\n',
  '\r.\rRSET\r',
  '.\r',
  '\n\n',
  '\r\r',
];
/** Text that looks like protocol inside BDAT chunks (CRLF dot CRLF means nothing there). */
const BDAT_TOKENS: readonly string[] = [
  '\r\n',
  '\r\n',
  '\r\n.\r\n',
  '.\r\n',
  'QUIT\r\n',
  'MAIL FROM:<x@y.example>\r\n',
  'BDAT 3 LAST\r\n',
  'RSET\r\n',
  '.',
];

type Hello = 'none' | 'helo' | 'ehlo';

/** A reply code and its enhanced status, as the model expects it. */
type Expected = readonly [number, string];

interface Transaction {
  recipients: number;
  readonly binary: boolean;
  readonly utf8: boolean;
  /** BDAT chunks received so far (RFC 3030); undefined until the first one. */
  chunks: Buffer[] | undefined;
}

type Unit =
  | 'noop'
  | 'rset'
  | 'help'
  | 'vrfy'
  | 'notImplemented'
  | 'startTls'
  | 'unknown'
  | 'junk'
  | 'long'
  | 'hello'
  | 'mail'
  | 'rcpt'
  | 'data'
  | 'bdat';

/** Units that fit any state, then the mix per transaction state (mostly the next sensible step). */
const ANY_STATE = {
  noop: 5,
  rset: 4,
  help: 2,
  vrfy: 2,
  notImplemented: 2,
  startTls: 2,
  unknown: 4,
  junk: 4,
  long: 1,
  hello: 2,
} as const;
const UNITS_IDLE = weights<Unit>({ ...ANY_STATE, mail: 45, rcpt: 3, data: 2, bdat: 3 });
const UNITS_MAIL = weights<Unit>({ ...ANY_STATE, mail: 2, rcpt: 60, data: 5, bdat: 5 });
const UNITS_RCPT = weights<Unit>({ ...ANY_STATE, mail: 2, rcpt: 30, data: 30, bdat: 30 });
const UNITS_CHUNKING = weights<Unit>({ ...ANY_STATE, mail: 2, rcpt: 3, data: 3, bdat: 70 });
const PATH_VARIANTS = weights({ ok: 90, badPath: 6, badKeyword: 4 });
const DATA_KINDS = weights({ text: 160, dots: 12, empty: 6, long: 10, oversized: 1, loop: 3, smuggle: 4 });
const CHUNK_KINDS = weights({ text: 160, empty: 10, long: 8, oversized: 1, bytes: 4 });
const CHUNK_KINDS_FIRST = weights({ text: 160, empty: 10, long: 8, oversized: 1, loop: 3, bytes: 4 });
const CHUNK_KINDS_BINARY = weights({ text: 120, empty: 10, long: 8, oversized: 1, bytes: 40 });
const CHUNK_KINDS_BINARY_FIRST = weights({ text: 120, empty: 10, long: 8, oversized: 1, loop: 3, bytes: 40 });
const ENDINGS = weights({ none: 40, quit: 25, bdatSyntax: 5, cutLine: 10, cutData: 12, cutBdat: 8 });

/** Builds one stream: units chosen from the session state, each with the replies it must get. */
class StreamBuilder {
  readonly #rng: Rng;
  readonly #mode: BareLineEndings;
  readonly #parts: Buffer[] = [];
  readonly #replies: ExpectedReply[] = [];
  readonly #messages: Buffer[] = [];
  readonly #units: string[] = [];
  #hello: Hello = 'none';
  #tx: Transaction | undefined;
  /** The session ended (QUIT): what follows is never answered. */
  #closed = false;

  constructor(rng: Rng, mode: BareLineEndings) {
    this.#rng = rng;
    this.#mode = mode;
  }

  build(): ModelStream {
    const rng = this.#rng;
    if (rng.chance(0.05)) {
      for (let i = rng.between(1, 3); i > 0; i--)
        this.#unit(rng.pick(['noop', 'mail', 'rcpt', 'data', 'bdat']));
    }
    this.#helloUnit(rng.chance(0.95), true);
    const units = rng.chance(0.08) ? rng.between(10, 25) : rng.between(1, 8);
    for (let i = 0; i < units && !this.#closed; i++) this.#unit(this.#nextUnit());
    this.#terminal();
    return {
      wire: Buffer.concat(this.#parts),
      bareLineEndings: this.#mode,
      replies: this.#replies,
      messages: this.#messages,
      units: this.#units,
    };
  }

  #nextUnit(): Unit {
    const tx = this.#tx;
    if (tx === undefined) return this.#rng.weighted(UNITS_IDLE);
    if (tx.chunks !== undefined) return this.#rng.weighted(UNITS_CHUNKING);
    if (tx.recipients === 0) return this.#rng.weighted(UNITS_MAIL);
    return this.#rng.weighted(UNITS_RCPT);
  }

  #unit(unit: Unit): void {
    this.#units.push(unit);
    switch (unit) {
      case 'noop':
        this.#command(
          this.#rng.chance(0.8) ? this.#verb('NOOP') : `${this.#verb('NOOP')} ping`,
          250,
          '2.0.0',
        );
        return;
      case 'rset':
        if (this.#rng.chance(0.1)) {
          this.#command(`${this.#verb('RSET')} now`, 501, '5.5.4');
          return;
        }
        this.#tx = undefined;
        this.#command(this.#verb('RSET'), 250, '2.0.0');
        return;
      case 'help':
        this.#command(
          this.#rng.chance(0.5) ? this.#verb('HELP') : `${this.#verb('HELP')} MAIL`,
          214,
          '2.0.0',
        );
        return;
      case 'vrfy':
        if (this.#rng.chance(0.2)) {
          this.#command(this.#verb('VRFY'), 501, '5.5.4');
          return;
        }
        this.#command(
          `${this.#verb('VRFY')} ${this.#rng.pick(['postmaster', 'jøran', '<b@example.net>'])}`,
          252,
          '2.5.0',
        );
        return;
      case 'notImplemented':
        // No AUTH handler, no ETRN handler; EXPN is never offered.
        this.#command(
          this.#rng.pick(['EXPN staff', 'AUTH PLAIN', 'ETRN example.com', 'auth login']),
          502,
          '5.5.1',
        );
        return;
      case 'startTls':
        // No TLS configured: RFC 3207 §4 454, "TLS not available".
        if (this.#rng.chance(0.2)) {
          this.#command(`${this.#verb('STARTTLS')} now`, 501, '5.5.4');
          return;
        }
        this.#command(this.#verb('STARTTLS'), 454, '4.7.0');
        return;
      case 'unknown':
        this.#command(this.#unknownVerb(), 500, '5.5.1');
        return;
      case 'junk':
        this.#junk();
        return;
      case 'long':
        this.#long();
        return;
      case 'hello':
        this.#helloUnit(this.#rng.chance(0.85), this.#rng.chance(0.7));
        return;
      case 'mail':
        this.#mail();
        return;
      case 'rcpt':
        this.#rcpt();
        return;
      case 'data':
        this.#data(false);
        return;
      case 'bdat':
        this.#bdat(false);
        return;
    }
  }

  // --- wire and replies

  #write(bytes: Buffer | string): void {
    this.#parts.push(typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
  }

  #expect(code: number, enhanced: string | undefined, what: string): void {
    this.#replies.push({ code, enhanced, what });
  }

  /** A command line: CRLF, or now and then a bare LF, which the engine also takes as a line end. */
  #line(text: string | Buffer): void {
    this.#write(text);
    const endsWithCr = typeof text === 'string' ? text.endsWith('\r') : text[text.length - 1] === CR;
    this.#write(endsWithCr || !this.#rng.chance(0.05) ? '\r\n' : '\n');
  }

  #command(text: string, code: number, enhanced: string | undefined): void {
    this.#line(text);
    this.#expect(code, enhanced, text.length > 60 ? `${text.slice(0, 60)}…` : text);
  }

  /** Verbs are case-insensitive (RFC 5321 §2.4). */
  #verb(verb: string): string {
    const r = this.#rng.int(10);
    if (r < 6) return verb;
    if (r < 8) return verb.toLowerCase();
    let out = '';
    for (const ch of verb) out += this.#rng.chance(0.5) ? ch.toLowerCase() : ch;
    return out;
  }

  #unknownVerb(): string {
    const rng = this.#rng;
    const r = rng.int(10);
    if (r === 0) return '';
    if (r === 1) return rng.pick(LOOKALIKE_VERBS);
    if (r === 2) return 'MAILFROM:<a@example.com>';
    for (;;) {
      let verb = '';
      for (let n = rng.between(1, 10); n > 0; n--) verb += String.fromCharCode(0x41 + rng.int(26));
      if (!KNOWN_VERBS.has(verb))
        return rng.chance(0.5) ? verb : `${verb} ${rng.pick(['x', 'FROM:<a@b.example>', 'ü'])}`;
    }
  }

  /** NUL, invalid UTF-8 or a control character in a command line: 501 5.5.2, whatever the verb. */
  #junk(): void {
    const rng = this.#rng;
    const head = Buffer.from(
      rng.pick(['NOOP ', 'MAIL FROM:<a@example.com>', 'RSET', 'QUIT', 'DATA', 'x', '']),
      'latin1',
    );
    const bad = rng.pick([
      [0x00],
      [0xff],
      [0xc3],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0x01],
      [0x1b],
      [0x7f],
      [CR],
      [0x08],
    ]);
    const tail = Buffer.from(rng.pick(['', 'tail', ' QUIT', '\x00']), 'latin1');
    const line = Buffer.concat([head, Buffer.from(bad), tail]);
    this.#line(line);
    this.#expect(501, '5.5.2', `junk ${JSON.stringify(line.toString('latin1'))}`);
  }

  /** Over-long command lines (RFC 5321 §4.5.3.1.4): 500 5.5.2 and no part of them is run. */
  #long(): void {
    const rng = this.#rng;
    const limit = COMMAND_LIMIT - 2;
    const length = rng.pick([
      limit,
      limit + 1,
      limit + 50,
      5000,
      MAX_AUTH_LINE - 2,
      MAX_AUTH_LINE - 1,
      20_000,
    ]);
    const eol = rng.chance(0.1) ? '\n' : '\r\n';
    const runs = length <= limit;
    // RFC 4954 §4: only AUTH may be longer (there is no AUTH handler here, so 502).
    const auth = !runs && length + eol.length <= MAX_AUTH_LINE && rng.chance(0.1);
    const head = runs
      ? rng.pick(['NOOP ', 'RSET ', 'QUIT '])
      : auth
        ? 'AUTH '
        : rng.pick(['NOOP ', 'RSET ', 'MAIL FROM:<a@example.com> ', 'QUIT ', 'DATA ']);
    const filler = Buffer.alloc(length - head.length, rng.pick(['x', 'QUIT ', 'A ']));
    this.#write(Buffer.concat([Buffer.from(head), filler]));
    this.#write(eol);
    const what = `${head.trim()} line of ${length} octets`;
    if (!runs) {
      this.#expect(auth ? 502 : 500, auth ? '5.5.1' : '5.5.2', what);
      return;
    }
    // At the limit the command runs.
    if (head === 'NOOP ') {
      this.#expect(250, '2.0.0', what);
      return;
    }
    if (head === 'RSET ') {
      this.#expect(501, '5.5.4', what);
      return;
    }
    this.#expect(221, '2.0.0', what);
    this.#closed = true;
  }

  #helloUnit(valid: boolean, esmtp: boolean): void {
    const verb = this.#verb(esmtp ? 'EHLO' : 'HELO');
    if (!valid) {
      this.#command(this.#rng.pick([verb, `${verb} bad domain!`, `${verb} [unclosed`]), 501, '5.5.4');
      return;
    }
    const name = this.#rng.pick([
      'client.example',
      'mx.example.org',
      '[192.0.2.1]',
      '[IPv6:2001:db8::1]',
      'localhost',
      'a',
    ]);
    this.#hello = esmtp ? 'ehlo' : 'helo';
    this.#tx = undefined;
    this.#command(`${verb} ${name}`, 250, undefined);
  }

  #params(good: readonly Param[], bad: readonly Param[]): Param[] {
    const rng = this.#rng;
    const chosen: Param[] = [];
    const keys = new Set<string>();
    for (let n = rng.chance(0.6) ? 0 : rng.between(1, 3); n > 0; n--) {
      const p = rng.pick(good);
      const key = p.text.split('=')[0] as string;
      if (keys.has(key)) continue;
      keys.add(key);
      chosen.push(p);
    }
    const wrong = rng.chance(0.06) ? rng.pick(bad) : undefined;
    // One parameter per keyword: a repeated one is a different error.
    if (wrong !== undefined && !keys.has(wrong.text.split('=')[0] as string)) chosen.push(wrong);
    return chosen;
  }

  #mail(): void {
    const rng = this.#rng;
    const verb = this.#verb('MAIL');
    const variant = rng.weighted(PATH_VARIANTS);
    const sender = rng.pick(SENDERS);
    const params = variant === 'ok' ? this.#params(MAIL_PARAMS, BAD_MAIL_PARAMS) : [];
    const from = rng.chance(0.8) ? 'FROM:' : 'from:';
    let text: string;
    if (variant === 'badKeyword') text = `${verb} ${rng.pick(['FRM:', 'TO:', ''])}<a@example.com>`;
    else if (variant === 'badPath') text = `${verb} ${from}${rng.pick(BAD_SENDERS)}`;
    else text = [`${verb} ${from}${sender.path}`, ...params.map((p) => p.text)].join(' ');
    const smtputf8 = params.some((p) => p.utf8 === true);
    const refused = this.#mailRefusal(variant, params, sender.utf8 && !smtputf8);
    if (refused !== undefined) {
      this.#command(text, ...refused);
      return;
    }
    this.#tx = {
      recipients: 0,
      binary: params.some((p) => p.binary === true),
      utf8: smtputf8,
      chunks: undefined,
    };
    this.#command(text, 250, '2.1.0');
  }

  /** The reply refusing a MAIL, if any: RFC 5321 §4.1.4 sequence, then syntax, then parameters (RFC 1869 §6: only after EHLO). */
  #mailRefusal(variant: string, params: readonly Param[], needsUtf8: boolean): Expected | undefined {
    if (this.#hello === 'none' || this.#tx !== undefined) return [503, '5.5.1'];
    if (variant === 'badKeyword') return [501, '5.5.4'];
    if (variant === 'badPath') return [501, '5.1.7'];
    if (this.#hello === 'helo' && params.length > 0) return [555, '5.5.4'];
    const refusal = params.find((p) => p.refusal !== undefined)?.refusal;
    if (refusal !== undefined) return refusal;
    // RFC 6531 §3.4: a non-ASCII address needs SMTPUTF8.
    if (needsUtf8) return [553, '5.6.7'];
    return undefined;
  }

  #rcpt(): void {
    const rng = this.#rng;
    const verb = this.#verb('RCPT');
    const variant = rng.weighted(PATH_VARIANTS);
    const recipient = rng.pick(RECIPIENTS);
    const params = variant === 'ok' ? this.#params(RCPT_PARAMS, BAD_RCPT_PARAMS) : [];
    const to = rng.chance(0.8) ? 'TO:' : 'to:';
    let text: string;
    if (variant === 'badKeyword') text = `${verb} ${rng.pick(['TOO:', 'FROM:', ''])}<b@example.net>`;
    else if (variant === 'badPath') text = `${verb} ${to}${rng.pick(BAD_RECIPIENTS)}`;
    else text = [`${verb} ${to}${recipient.path}`, ...params.map((p) => p.text)].join(' ');
    const tx = this.#tx;
    const refused = this.#rcptRefusal(tx, variant, params, recipient);
    if (tx === undefined || refused !== undefined) {
      this.#command(text, ...(refused ?? [503, '5.5.1']));
      return;
    }
    tx.recipients++;
    this.#command(text, 250, '2.1.5');
  }

  /** The reply refusing a RCPT, if any, in the order the engine checks. */
  #rcptRefusal(
    tx: Transaction | undefined,
    variant: string,
    params: readonly Param[],
    recipient: { readonly utf8: boolean; readonly refused: boolean },
  ): Expected | undefined {
    if (tx === undefined) return [503, '5.5.1'];
    // RFC 3030 §2: no RCPT once BDAT chunks have been sent.
    if (tx.chunks !== undefined) return [503, '5.5.1'];
    if (variant === 'badKeyword') return [501, '5.5.4'];
    if (variant === 'badPath') return [501, '5.1.3'];
    // RFC 5321 §4.1.1.11 / RFC 1869 §6: parameters of extensions not in force (no EHLO) get 555
    // (checked before the address, as for MAIL).
    if (this.#hello === 'helo' && params.length > 0) return [555, '5.5.4'];
    if (recipient.utf8 && !tx.utf8) return [553, '5.6.7'];
    const refusal = params.find((p) => p.refusal !== undefined)?.refusal;
    if (refusal !== undefined) return refusal;
    if (tx.recipients >= MAX_RECIPIENTS) return [452, '4.5.3'];
    if (recipient.refused) return [550, '5.1.1'];
    return undefined;
  }

  /** DATA (RFC 5321 §4.1.1.4): 354, the dot-stuffed body, then the reply to the message. */
  #data(truncate: boolean): void {
    const rng = this.#rng;
    const verb = this.#verb('DATA');
    if (!truncate && rng.chance(0.03)) {
      this.#command(`${verb} now`, 501, '5.5.4');
      return;
    }
    const tx = this.#tx;
    if (tx === undefined) {
      this.#command(verb, 503, '5.5.1');
      return;
    }
    if (tx.chunks !== undefined) {
      this.#command(verb, 503, '5.5.1');
      return;
    }
    // RFC 3030 §3: BINARYMIME only with BDAT.
    if (tx.binary) {
      this.#command(verb, 503, '5.5.1');
      return;
    }
    // RFC 2920 §3.1: DATA after only refused recipients.
    if (tx.recipients === 0) {
      this.#command(verb, 554, '5.5.1');
      return;
    }
    this.#command(verb, 354, undefined);
    this.#tx = undefined;
    const { message, wire } = this.#dataMessage();
    if (truncate) {
      // The connection ends inside the data: no reply, no message.
      this.#write(wire.subarray(0, rng.int(wire.length - 2)));
      return;
    }
    this.#write(wire);
    this.#finish(message, false, 'end of DATA');
  }

  /** The verdict on a complete message, in the engine's documented order. */
  #finish(raw: Buffer, binary: boolean, what: string): void {
    const body = binary || this.#mode === 'reject' ? raw : normalizeLineEndings(raw);
    if (body.length > MAX_SIZE) {
      this.#expect(552, '5.3.4', `${what}: oversized`);
      return;
    }
    if (!binary && this.#mode === 'reject' && hasBareLineEnding(raw)) {
      this.#expect(554, '5.6.0', `${what}: bare CR or LF`);
      return;
    }
    if (!binary && hasLongLine(body)) {
      this.#expect(554, '5.6.0', `${what}: line over 998 octets`);
      return;
    }
    if (receivedFields(body) > MAX_RECEIVED) {
      this.#expect(554, '5.4.6', `${what}: mail loop`);
      return;
    }
    this.#messages.push(body);
    this.#expect(250, '2.0.0', `${what}: accepted`);
  }

  /** A message for DATA and its wire form: dot-stuffed (RFC 5321 §4.5.2), with the terminator. */
  #dataMessage(): { message: Buffer; wire: Buffer } {
    const rng = this.#rng;
    const kind = rng.weighted(DATA_KINDS);
    const lines: Buffer[] = [];
    switch (kind) {
      case 'text':
        for (let n = rng.between(1, 8); n > 0; n--)
          lines.push(this.#text(rng.chance(0.9) ? rng.int(60) : rng.int(400)));
        break;
      case 'dots':
        for (let n = rng.between(1, 6); n > 0; n--)
          lines.push(Buffer.from(rng.pick(['.', '..', '.x', '...', '', '. ', 'a.'])));
        break;
      case 'empty':
        break;
      case 'long':
        lines.push(this.#text(20), this.#text(rng.pick([997, 998, 999, 1000, 2048])), this.#text(10));
        break;
      case 'oversized': {
        const line = Buffer.alloc(78, 'y');
        for (let n = Math.ceil(MAX_SIZE / 80) + rng.between(-1, 10); n > 0; n--) lines.push(line);
        break;
      }
      case 'loop':
        lines.push(...this.#receivedFlood(), this.#text(30));
        break;
      case 'smuggle':
        // A whole transaction after a bare-LF or bare-CR dot, then a line that is only a dot.
        lines.push(
          Buffer.from(
            rng.pick(['x\n.\nMAIL FROM:<evil@attacker.example>', 'x\r.\rMAIL FROM:<evil@attacker.example>']),
          ),
          Buffer.from('RCPT TO:<victim@example.net>'),
          Buffer.from('DATA'),
          Buffer.from('.'),
        );
        break;
    }
    if ((kind === 'text' || kind === 'dots') && lines.length > 0 && rng.chance(0.15)) this.#insertBare(lines);
    const message = Buffer.concat(lines.flatMap((l) => [l, CRLF]));
    const wire: Buffer[] = [];
    for (const line of lines) {
      // RFC 5321 §4.5.2: a leading dot is doubled; a single leading dot before other text is
      // also removed by the receiver, so now and then send one that was not needed.
      if (line[0] === 0x2e || (line.length > 0 && rng.chance(0.04))) wire.push(DOT);
      wire.push(line, CRLF);
    }
    wire.push(Buffer.from('.\r\n'));
    return { message, wire: Buffer.concat(wire) };
  }

  #receivedFlood(): Buffer[] {
    const lines: Buffer[] = [];
    const field = Buffer.from('Received: from a.example by b.example; Mon, 1 Jan 2024 00:00:00 +0000');
    for (let n = this.#rng.pick([1, 99, 100, 101, 130]); n > 0; n--) lines.push(field);
    lines.push(Buffer.from('Subject: loop'), Buffer.alloc(0));
    return lines;
  }

  /** Random text without CR or LF. */
  #text(length: number): Buffer {
    const rng = this.#rng;
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) {
      const r = rng.int(40);
      out[i] =
        r === 0 ? 0x80 + rng.int(128) : r === 1 ? 0x00 : (ALPHABET[rng.int(ALPHABET.length)] as number);
    }
    return out;
  }

  /** Puts bare CR/LF tokens into lines; never a CRLF inside a line (that would be a line end). */
  #insertBare(lines: Buffer[]): void {
    const rng = this.#rng;
    for (let n = rng.between(1, 2); n > 0; n--) {
      const i = rng.int(lines.length);
      const line = lines[i] as Buffer;
      const at = rng.int(line.length + 1);
      const joined = Buffer.concat([
        line.subarray(0, at),
        Buffer.from(rng.pick(BARE_TOKENS)),
        line.subarray(at),
      ]);
      for (let k = 0; k + 1 < joined.length; k++)
        if (joined[k] === CR && joined[k + 1] === LF) joined[k + 1] = 0x20;
      lines[i] = joined;
    }
  }

  /** BDAT (RFC 3030): the chunk is read whatever the verdict. */
  #bdat(truncate: boolean): void {
    const rng = this.#rng;
    const tx = this.#tx;
    const binary = tx?.binary ?? false;
    let chunk = this.#chunk(binary, tx?.chunks === undefined);
    if (truncate && chunk.length === 0) chunk = Buffer.from('x');
    const last = truncate
      ? rng.chance(0.5)
      : tx?.chunks !== undefined && tx.chunks.length >= 3
        ? rng.chance(0.8)
        : rng.chance(0.45);
    const verb = this.#verb('BDAT');
    const text = `${verb} ${chunk.length}${last ? rng.pick([' LAST', ' last', '  LAST', ' LAST ']) : rng.pick(['', '', ' '])}`;
    this.#line(text);
    if (truncate) {
      // The connection ends inside the chunk: no reply.
      this.#write(chunk.subarray(0, rng.int(chunk.length)));
      return;
    }
    this.#write(chunk);
    const what = `${text} (${chunk.length} octets)`;
    if (tx === undefined) {
      this.#expect(503, '5.5.1', what);
      return;
    }
    if (tx.recipients === 0) {
      // RFC 3030 §2: a failed chunk ends the transaction.
      this.#tx = undefined;
      this.#expect(554, '5.5.1', what);
      return;
    }
    tx.chunks ??= [];
    tx.chunks.push(chunk);
    const raw = Buffer.concat(tx.chunks);
    if (this.#decodedSize(raw, binary) > MAX_SIZE) {
      this.#tx = undefined;
      this.#expect(552, '5.3.4', `${what}: oversized`);
      return;
    }
    if (!last) {
      this.#expect(250, '2.0.0', what);
      return;
    }
    this.#tx = undefined;
    this.#finish(raw, binary, what);
  }

  /** Octets the engine counts for RFC 1870 after the chunks so far (a final CR may still get its LF). */
  #decodedSize(raw: Buffer, binary: boolean): number {
    if (binary || this.#mode === 'reject') return raw.length;
    return normalizeLineEndings(raw).length - (raw[raw.length - 1] === CR ? 1 : 0);
  }

  #chunk(binary: boolean, first: boolean): Buffer {
    const rng = this.#rng;
    const kind = rng.weighted(
      binary
        ? first
          ? CHUNK_KINDS_BINARY_FIRST
          : CHUNK_KINDS_BINARY
        : first
          ? CHUNK_KINDS_FIRST
          : CHUNK_KINDS,
    );
    switch (kind) {
      case 'empty':
        return Buffer.alloc(0);
      case 'long':
        return Buffer.concat([this.#text(rng.pick([998, 999, 1500])), CRLF]);
      case 'oversized':
        return Buffer.alloc(rng.between(MAX_SIZE / 2, MAX_SIZE + 100), 'z\r\n');
      case 'loop':
        return Buffer.concat(this.#receivedFlood().flatMap((l) => [l, CRLF]));
      case 'bytes': {
        const out = Buffer.allocUnsafe(rng.int(300));
        for (let i = 0; i < out.length; i++) out[i] = rng.int(256);
        return out;
      }
      case 'text': {
        const parts: Buffer[] = [];
        for (let n = rng.between(1, 8); n > 0; n--) {
          const r = rng.int(10);
          if (r < 5) parts.push(this.#text(rng.int(50)));
          else if (r < 9) parts.push(Buffer.from(rng.pick(BDAT_TOKENS)));
          else if (rng.chance(0.5)) parts.push(Buffer.from(rng.pick(BARE_TOKENS)));
        }
        return Buffer.concat(parts);
      }
    }
  }

  /** How the stream ends: QUIT, a BDAT line that cannot be framed, a cut mid-way, or just the close. */
  #terminal(): void {
    const rng = this.#rng;
    if (this.#closed) {
      this.#trailing();
      return;
    }
    const kind = rng.weighted(ENDINGS);
    this.#units.push(`end:${kind}`);
    switch (kind) {
      case 'none':
        return;
      case 'quit':
        this.#command(this.#verb('QUIT'), 221, '2.0.0');
        this.#trailing();
        return;
      case 'bdatSyntax':
        // The chunk size is unknown, so nothing after it can be framed: 501 and the close.
        this.#command(
          this.#rng.pick([
            'BDAT',
            'BDAT x',
            'BDAT -1',
            'BDAT 5 LASTX',
            'BDAT 1234567890123456',
            'BDAT 5 LAST x',
          ]),
          501,
          '5.5.4',
        );
        this.#trailing();
        return;
      case 'cutLine':
        this.#write(
          rng.pick(['NOOP', 'MAIL FROM:<a@example.com>\r', 'QUIT\r', 'D', 'x'.repeat(MAX_AUTH_LINE + 10)]),
        );
        return;
      case 'cutData': {
        const tx = this.#tx;
        if (tx === undefined) this.#mail();
        const now = this.#tx;
        if (now === undefined || now.chunks !== undefined || now.binary) return;
        if (now.recipients === 0) this.#rcptOk();
        if (now.recipients === 0) return;
        this.#data(true);
        return;
      }
      case 'cutBdat':
        this.#bdat(true);
        return;
    }
  }

  /** A recipient the handler accepts, when there is room. */
  #rcptOk(): void {
    const tx = this.#tx;
    if (tx === undefined || tx.recipients >= MAX_RECIPIENTS || tx.chunks !== undefined) return;
    tx.recipients++;
    this.#command(`${this.#verb('RCPT')} TO:<b@example.net>`, 250, '2.1.5');
  }

  /** Input after the session ended: never run. */
  #trailing(): void {
    if (this.#rng.chance(0.5)) this.#write('NOOP\r\nMAIL FROM:<late@example.com>\r\nRSET\r\n');
  }
}

/** One stream of the model property; mostly 'reject' mode, the default, sometimes 'normalize'. */
export function modelStream(rng: Rng): ModelStream {
  return new StreamBuilder(rng, rng.chance(0.8) ? 'reject' : 'normalize').build();
}

const DOT = Buffer.from('.');

// ---------------------------------------------------------------------------------------------
// Random byte streams

const RANDOM_TOKENS: readonly string[] = [
  '\r',
  '\n',
  '\r\n',
  '.',
  '\r\n.\r\n',
  '.\r\n',
  'DATA\r\n',
  'BDAT 5\r\n',
  'BDAT 3 LAST\r\n',
  'BDAT 0 LAST\r\n',
  'STARTTLS\r\n',
  'EHLO x.example\r\n',
  'HELO x\r\n',
  'MAIL FROM:<a@example.com>\r\n',
  'MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n',
  'RCPT TO:<b@example.net>\r\n',
  'RSET\r\n',
  'QUIT\r\n',
  'AUTH PLAIN\r\n',
  'NOOP\r\n',
  'VRFY x\r\n',
  '\x00',
  '\xff',
  ' ',
];

/** Random bytes biased towards CR, LF, dots and commands that switch the engine's input mode. */
export function randomStream(rng: Rng): { readonly bareLineEndings: BareLineEndings; readonly wire: Buffer } {
  const target = rng.chance(0.9) ? rng.int(384) : rng.int(3072);
  const parts: Buffer[] = [];
  let length = 0;
  if (rng.chance(0.5))
    parts.push(Buffer.from('EHLO fuzz.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n'));
  while (length < target) {
    let part: Buffer;
    const r = rng.int(20);
    if (r < 8) {
      part = Buffer.from(rng.pick(RANDOM_TOKENS), 'latin1');
    } else if (r < 19) {
      part = Buffer.allocUnsafe(rng.int(24));
      for (let i = 0; i < part.length; i++) part[i] = rng.chance(0.5) ? 0x20 + rng.int(95) : rng.int(256);
    } else if (rng.chance(0.7)) {
      // Long runs: over-long lines, and long lines inside data.
      part = Buffer.alloc(rng.between(500, 2000), rng.pick(['a', 'NOOP ', '\r']));
    } else {
      part = Buffer.alloc(rng.between(30, 300), '.\r\n');
    }
    parts.push(part);
    length += part.length;
  }
  return { bareLineEndings: rng.chance(0.8) ? 'reject' : 'normalize', wire: Buffer.concat(parts) };
}

// ---------------------------------------------------------------------------------------------
// TCP segmentation and the driver

/** What happens between two writes: nothing, a tick (the engine sees a partial read), or a loop turn. */
export type Pause = 'none' | 'tick' | 'turn';

export interface Segmented {
  readonly chunks: readonly Buffer[];
  /** pauses[i] follows chunks[i]. */
  readonly pauses: readonly Pause[];
}

/** Cuts `wire` at 0–6 random points, half of them next to a CR or LF; short streams sometimes byte by byte. */
export function segment(rng: Rng, wire: Buffer): Segmented {
  const cuts = new Set<number>();
  if (wire.length <= 96 && rng.chance(0.1)) {
    for (let i = 1; i < wire.length; i++) cuts.add(i);
  } else {
    for (let n = rng.int(7); n > 0; n--) {
      let at = rng.int(wire.length + 1);
      if (rng.chance(0.5)) {
        const cr = wire.indexOf(rng.chance(0.5) ? CR : LF, at);
        if (cr !== -1) at = cr + rng.between(0, 1);
      }
      if (at > 0 && at < wire.length) cuts.add(at);
    }
  }
  const points = [...cuts].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  const pauses: Pause[] = [];
  let start = 0;
  for (const end of [...points, wire.length]) {
    chunks.push(wire.subarray(start, end));
    const r = rng.int(10);
    pauses.push(r < 5 ? 'none' : r < 8 ? 'tick' : 'turn');
    start = end;
  }
  return { chunks, pauses };
}

export interface SessionOutcome {
  /** Everything the server wrote, as latin1 text. */
  readonly output: string;
  /** Bodies handed to the handler's message(), copied. */
  readonly delivered: readonly Buffer[];
}

const FAILED_RECIPIENT = reply(550, '5.1.1', 'No such user');
const QUEUED = reply(250, '2.0.0', 'Queued');

const nextTick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs one ServerSession over an in-memory duplex pair: writes the chunks with their pauses,
 * half-closes, and resolves with the output once run() has resolved and the server's side ended.
 * `track` receives the client side so that a watchdog can end a session that hangs.
 */
export async function runSession(
  input: Segmented,
  bareLineEndings: BareLineEndings,
  track?: (client: Duplex) => void,
): Promise<SessionOutcome> {
  const [server, client] = duplexPair();
  track?.(client);
  const delivered: Buffer[] = [];
  const handler: SessionHandler = {
    rcptTo: (_session, _tx, recipient) =>
      recipient.mailbox.localPart.startsWith('refuse') ? FAILED_RECIPIENT : undefined,
    message: async (_session, _tx, body) => {
      delivered.push(Buffer.from(body));
      return QUEUED;
    },
  };
  const session = new ServerSession(server as unknown as Socket, 'fuzz', handler, {
    ...BASE_OPTIONS,
    bareLineEndings,
  });
  const out: Buffer[] = [];
  client.on('data', (chunk: Buffer) => out.push(chunk));
  // Writes after the server closed its side are expected (input after QUIT).
  client.on('error', () => undefined);
  const ended = new Promise<void>((resolve) => {
    client.once('end', resolve);
    client.once('close', resolve);
  });
  const done = session.run();
  for (let i = 0; i < input.chunks.length; i++) {
    if (client.destroyed) break;
    client.write(input.chunks[i] as Buffer);
    const pause = input.pauses[i];
    if (pause === 'tick') await nextTick();
    else if (pause === 'turn') await nextTurn();
  }
  client.end();
  await done;
  await ended;
  return { output: Buffer.concat(out).toString('latin1'), delivered };
}

/**
 * Runs `count` streams, `concurrency` at a time. A stream that makes no progress for `stallMs`
 * while others finished is a hang: the run fails naming it, and its connection is destroyed.
 */
export async function forEachStream(
  count: number,
  concurrency: number,
  stallMs: number,
  body: (index: number, track: (client: Duplex) => void) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: unknown;
  const inFlight = new Map<number, Duplex | undefined>();
  let stalled: ((error: Error) => void) | undefined;
  const stall = new Promise<never>((_, reject) => {
    stalled = reject;
  });
  stall.catch(() => undefined);
  const watchdog = setTimeout(() => {
    const hung = [...inFlight.keys()];
    for (const client of inFlight.values()) client?.destroy();
    stalled?.(new Error(`no progress for ${stallMs} ms; streams still running: ${hung.join(', ')}`));
  }, stallMs);
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < count) {
      const index = next++;
      inFlight.set(index, undefined);
      try {
        await body(index, (client) => inFlight.set(index, client));
      } catch (error) {
        failure ??= error;
      }
      inFlight.delete(index);
      watchdog.refresh();
    }
  };
  try {
    await Promise.race([Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker)), stall]);
  } finally {
    clearTimeout(watchdog);
  }
  if (failure !== undefined) throw failure;
}

// ---------------------------------------------------------------------------------------------
// Reply syntax

export interface WireReply {
  readonly code: number;
  /** Text after "ddd-" / "ddd " of each line. */
  readonly lines: readonly string[];
}

const REPLY_LINE = /^([2-5][0-5]\d)([ -])(.*)$/s;
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/**
 * Parses the server's whole output into replies, throwing on anything malformed: every line
 * `ddd-text` / `ddd text` ending in CRLF with no other CR or LF (RFC 5321 §4.2.1), one code per
 * reply, the last reply complete; and enhanced status codes (RFC 2034 §3-4) on every line of every
 * 2xx/4xx/5xx reply except the greeting and the HELO/EHLO reply, of the reply's class.
 */
export function parseReplies(output: string): WireReply[] {
  if (output === '') return [];
  if (!output.endsWith('\r\n')) throw new Error(`output does not end with CRLF: ${tail(output)}`);
  const replies: WireReply[] = [];
  let current: { code: number; lines: string[] } | undefined;
  const raw = output.slice(0, -2).split('\r\n');
  for (const line of raw) {
    if (line.includes('\r') || line.includes('\n'))
      throw new Error(`bare CR or LF in reply line ${JSON.stringify(line)}`);
    const m = REPLY_LINE.exec(line);
    if (m === null) throw new Error(`malformed reply line ${JSON.stringify(line)}`);
    const code = Number(m[1]);
    if (current !== undefined && current.code !== code) {
      throw new Error(`code changes inside a multi-line reply: ${JSON.stringify(line)}`);
    }
    current ??= { code, lines: [] };
    current.lines.push(m[3] as string);
    if (m[2] === ' ') {
      replies.push(current);
      current = undefined;
    }
  }
  if (current !== undefined) throw new Error(`incomplete reply at the end: ${tail(output)}`);
  for (const [i, r] of replies.entries()) checkEnhanced(r, i === 0);
  return replies;
}

function checkEnhanced(r: WireReply, greeting: boolean): void {
  if (greeting || (r.code >= 300 && r.code < 400)) return;
  if (r.code === 250 && r.lines[0]?.startsWith(`${FUZZ_HOSTNAME} greets `)) return;
  const first = ENHANCED.exec(r.lines[0] ?? '');
  if (first === null || first[1] !== String(r.code)[0]) {
    throw new Error(`reply ${r.code} without a matching enhanced status code: ${JSON.stringify(r.lines)}`);
  }
  const prefix = `${first[1]}.${first[2]}.${first[3]}`;
  for (const line of r.lines) {
    if (line !== prefix && !line.startsWith(`${prefix} `)) {
      throw new Error(`enhanced status code not on every line: ${JSON.stringify(r.lines)}`);
    }
  }
}

/** The enhanced status code of a parsed reply, if any. */
export function enhancedOf(r: WireReply): string | undefined {
  const m = ENHANCED.exec(r.lines[0] ?? '');
  return m === null ? undefined : `${m[1]}.${m[2]}.${m[3]}`;
}

function tail(text: string): string {
  return JSON.stringify(text.length > 200 ? `…${text.slice(-200)}` : text);
}
