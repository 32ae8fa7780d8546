import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ClientPhase, replyText, SmtpClientError, SmtpClientErrorCode } from './client-errors.ts';
import {
  chunkingPayload,
  commandLine,
  type MessageNeeds,
  mailParameters,
  messageNeeds,
  type RecipientSpec,
  recipientParameters,
  recipientSpec,
  type SendEnvelope,
} from './client-message.ts';
import { DEFAULT_REPLY_LIMITS, type ReplyLimits, ReplyReader } from './client-reader.ts';
import { handshake, NO_TLS, type TlsMode, type TlsStatus, tlsStatus } from './client-tls.ts';
import { Enhanced, ReplyCode } from './codes.ts';
import { dotStuff } from './data.ts';
import { type Reply, reply } from './reply.ts';
import { plainResponse } from './sasl.ts';

export { ClientPhase, SmtpClientError, SmtpClientErrorCode } from './client-errors.ts';
export type { RecipientSpec, SendEnvelope } from './client-message.ts';
export type { ReplyLimits } from './client-reader.ts';
export type { TlsMode, TlsStatus } from './client-tls.ts';

/**
 * Timeouts in milliseconds. The SMTP ones are RFC 5321 §4.5.3.2's minimums, which are also
 * our defaults; the others are ours.
 */
export interface ClientTimeouts {
  /** TCP connect (ours: 30 s). */
  connect: number;
  /** §4.5.3.2.1 initial 220: 5 min. */
  greeting: number;
  /** EHLO/HELO/LHLO, STARTTLS, AUTH, RSET, QUIT (§4.5.3.2: 5 min like MAIL). */
  command: number;
  /** The TLS handshake after STARTTLS (ours: 1 min). */
  tlsHandshake: number;
  /** §4.5.3.2.2 MAIL: 5 min. */
  mail: number;
  /** §4.5.3.2.3 RCPT: 5 min. */
  rcpt: number;
  /** §4.5.3.2.4 DATA initiation (the 354): 2 min. */
  dataInit: number;
  /** §4.5.3.2.5 data block: 3 min for each write to be taken by the peer (and each non-last BDAT reply). */
  dataBlock: number;
  /** §4.5.3.2.6 DATA termination (the reply to the final dot or BDAT LAST): 10 min. */
  dataEnd: number;
}

/** The RFC 5321 §4.5.3.2 timeout of each phase; the others use `command`. */
const PHASE_TIMEOUT: Partial<Record<ClientPhase, keyof ClientTimeouts>> = {
  [ClientPhase.Connect]: 'connect',
  [ClientPhase.Greeting]: 'greeting',
  [ClientPhase.TlsHandshake]: 'tlsHandshake',
  [ClientPhase.Mail]: 'mail',
  [ClientPhase.Rcpt]: 'rcpt',
  [ClientPhase.DataInit]: 'dataInit',
  [ClientPhase.DataBlock]: 'dataBlock',
  [ClientPhase.DataEnd]: 'dataEnd',
};

export const DEFAULT_TIMEOUTS: Readonly<ClientTimeouts> = {
  connect: 30_000,
  greeting: 5 * 60_000,
  command: 5 * 60_000,
  tlsHandshake: 60_000,
  mail: 5 * 60_000,
  rcpt: 5 * 60_000,
  dataInit: 2 * 60_000,
  dataBlock: 3 * 60_000,
  dataEnd: 10 * 60_000,
};

export type AuthMechanismName = 'PLAIN' | 'LOGIN';

export interface ClientAuth {
  readonly username: string;
  readonly password: string;
  /** In order of preference; the first the server offers is used. Default PLAIN, LOGIN. */
  readonly mechanisms?: readonly AuthMechanismName[];
  /** Allows AUTH without TLS (credentials in clear). Default false: no TLS → AuthUnavailable. */
  readonly allowPlaintext?: boolean;
}

export interface ClientOptions {
  host: string;
  port: number;
  /** Our name for EHLO/HELO/LHLO. */
  localName: string;
  /** 'lmtp': LHLO and one reply per accepted recipient after the data (RFC 2033). Default 'smtp'. */
  protocol?: 'smtp' | 'lmtp';
  /** Default 'opportunistic'. */
  tls?: TlsMode;
  /** SNI and the name the certificate must match; default the host (unless it is an IP address). */
  servername?: string;
  /** CAs to validate against instead of Node's bundled roots. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * Refuse a certificate that does not validate (a Tls error, no fallback to plaintext).
   * Default: true with tls 'required' (false when `verifyPeer` is given), false with
   * 'opportunistic' (then it is used and reported).
   */
  rejectUnauthorized?: boolean;
  /**
   * Judges the server after the TLS handshake, before anything else is said over TLS: an Error (or
   * a throw) refuses it — the connection fails with a Tls error (phase 'starttls') before EHLO, AUTH
   * or MAIL FROM, and is never retried in plaintext, whatever `tls` says. For authentication that
   * is not PKIX, e.g. DANE (RFC 7672 §3). It runs only when TLS is used: pair it with
   * `tls: 'required'` so that a server without STARTTLS fails too; `rejectUnauthorized` then
   * defaults to false. Accepted: `tls.peerVerified` is true (and REQUIRETLS may be used).
   */
  verifyPeer?: (socket: TLSSocket) => Error | undefined;
  /** AUTH PLAIN/LOGIN after EHLO (after STARTTLS when TLS is used), RFC 4954. */
  auth?: ClientAuth;
  /** BDAT chunk size (RFC 3030) when the server offers CHUNKING. Default 1 MiB. */
  chunkSize?: number;
  /** One bound for every phase (the earlier single timeout); `timeouts` entries take precedence. */
  timeoutMs?: number;
  timeouts?: Partial<ClientTimeouts>;
  replyLimits?: Partial<ReplyLimits>;
}

export interface RecipientResult {
  readonly address: string;
  /** RCPT's reply for accepted recipients; for refused ones the reply that refused them. */
  readonly reply: Reply;
}

export type RecipientStatus = 'delivered' | 'deferred' | 'failed';

/** The end of one recipient in one transaction. */
export interface RecipientOutcome {
  readonly address: string;
  /** delivered: 2xx after the data; deferred: 4xx anywhere; failed: 5xx anywhere (or a local refusal). */
  readonly status: RecipientStatus;
  /** The reply that decided it (RCPT, MAIL, DATA, the data's reply, or the local refusal). */
  readonly reply: Reply;
}

export const LocalRefusalReason = {
  /** RFC 1870: the message is larger than the server's SIZE (552 5.3.4). */
  MessageTooBig: 'message-too-big',
  /** RFC 6531 §3.7.4.1: the message needs SMTPUTF8, the server lacks it (553 5.6.7). */
  SmtpUtf8Unsupported: 'smtputf8-unsupported',
  /** RFC 3030: BINARYMIME needs CHUNKING and BINARYMIME at the server (554 5.6.3). */
  BinaryMimeUnsupported: 'binarymime-unsupported',
  /** RFC 8689: REQUIRETLS without TLS or with a certificate that did not validate (530 5.7.10). */
  RequireTlsNoTls: 'requiretls-no-tls',
  /** RFC 8689 §5: REQUIRETLS and the server does not offer it (550 5.7.30). */
  RequireTlsUnsupported: 'requiretls-unsupported',
} as const;
export type LocalRefusalReason = (typeof LocalRefusalReason)[keyof typeof LocalRefusalReason];

export interface LocalRefusal {
  readonly reason: LocalRefusalReason;
  /** A reply as the server would have given it, for DSNs and events. */
  readonly reply: Reply;
}

export interface SendResult {
  /** Recipients whose RCPT got 2xx (with that reply). */
  readonly accepted: RecipientResult[];
  /** Recipients refused by RCPT, MAIL, DATA or locally, with that reply. */
  readonly rejected: RecipientResult[];
  /** The reply to MAIL FROM (the local refusal's reply when MAIL was not sent). */
  readonly mailReply: Reply;
  /**
   * SMTP: the reply to the end of the data (final dot or BDAT LAST, or the failed chunk), which
   * applies to every accepted recipient; undefined when no recipient was accepted. LMTP:
   * undefined; each accepted recipient has its own in `recipients`.
   */
  readonly dataReply: Reply | undefined;
  /** Every recipient in envelope order with its outcome. */
  readonly recipients: RecipientOutcome[];
  /** Set when the client refused the message without sending MAIL. */
  readonly localRefusal: LocalRefusal | undefined;
  /** How the message went: BDAT or DATA, with which parameters. */
  readonly transfer: {
    readonly chunking: boolean;
    readonly pipelining: boolean;
    readonly body: MessageNeeds['body'];
    readonly smtputf8: boolean;
    /** DSN parameters were passed on (the server offers DSN). */
    readonly dsn: boolean;
  };
  readonly tls: TlsStatus;
}

export type ClientState = 'idle' | 'busy' | 'closed';

const DEFAULT_CHUNK_SIZE = 1024 * 1024;
const WRITE_BLOCK = 64 * 1024;
const DEFAULT_MECHANISMS: readonly AuthMechanismName[] = ['PLAIN', 'LOGIN'];

/** A transaction as prepared before its first command (see SmtpClient.#prepare). */
interface Prepared {
  readonly specs: RecipientSpec[];
  readonly chunking: boolean;
  readonly pipelining: boolean;
  readonly payload: Buffer;
  readonly base: Pick<SendResult, 'transfer' | 'tls'>;
  readonly refusal: LocalRefusal | undefined;
  readonly mail: string;
  readonly rcpts: string[];
}

/** A transaction waiting behind the one in progress on a connection. */
interface Follower {
  /** Its MAIL, RCPT (and DATA) commands, CRLF-terminated. */
  readonly group: string;
  /** The group went out with the content of the transaction ahead. */
  written: boolean;
  /** Resolves when the transaction ahead is over. */
  readonly turn: PromiseWithResolvers<void>;
}

/** MAIL, every RCPT and, without CHUNKING, DATA: a pipelined group (RFC 2920 §3.1). */
function commandGroup(p: Prepared): string[] {
  return p.chunking ? [p.mail, ...p.rcpts] : [p.mail, ...p.rcpts, 'DATA'];
}

/** The result of a transaction refused before any command (SMTPUTF8, SIZE, REQUIRETLS, BINARYMIME). */
function refusedResult(p: Prepared, refusal: LocalRefusal): SendResult {
  return {
    ...p.base,
    accepted: [],
    rejected: p.specs.map((s) => ({ address: s.address, reply: refusal.reply })),
    mailReply: refusal.reply,
    dataReply: undefined,
    recipients: p.specs.map((s) => ({
      address: s.address,
      status: status(refusal.reply),
      reply: refusal.reply,
    })),
    localRefusal: refusal,
  };
}

function positive(r: Reply): boolean {
  return r.code >= 200 && r.code < 300;
}

function status(r: Reply): RecipientStatus {
  return positive(r) ? 'delivered' : r.code >= 500 ? 'failed' : 'deferred';
}

interface Resolved {
  readonly options: ClientOptions;
  readonly timeouts: ClientTimeouts;
  readonly tls: TlsMode;
  readonly rejectUnauthorized: boolean;
}

/**
 * An SMTP or LMTP client connection (RFC 5321, RFC 2033) with STARTTLS (RFC 3207), AUTH
 * (RFC 4954), PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531),
 * DSN (RFC 3461), REQUIRETLS (RFC 8689) and CHUNKING/BINARYMIME (RFC 3030). One connection
 * carries any number of transactions, one at a time.
 */
export class SmtpClient {
  #socket: Socket;
  readonly #reader: ReplyReader;
  readonly #r: Resolved;
  #state: ClientState = 'busy';
  #needsReset = false;
  /** A send() is in progress (state 'busy' also covers connecting). */
  #inTransaction = false;
  /** The transaction queued behind the one in progress (see `acceptsFollower`). */
  #follower: Follower | undefined;
  #esmtp = false;
  #tls: TlsStatus = NO_TLS;
  #lastSocketError: Error | undefined;
  #messagesSent = 0;
  #authenticated: AuthMechanismName | undefined;
  /** Extensions of the last EHLO/LHLO reply, keyword (upper case) → parameters. */
  readonly extensions = new Map<string, string>();
  readonly remoteAddress: string;
  /** The greeting's reply. */
  greeting: Reply | undefined;
  /** Resolves when the connection has closed, from either side (e.g. to drop it from a pool). */
  readonly closed: Promise<void>;
  #resolveClosed: () => void = () => undefined;

  private constructor(socket: Socket, r: Resolved) {
    this.#socket = socket;
    this.#r = r;
    this.#reader = new ReplyReader(socket, { ...DEFAULT_REPLY_LIMITS, ...r.options.replyLimits });
    this.remoteAddress = socket.remoteAddress ?? '';
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#watch(socket);
  }

  #watch(socket: Socket): void {
    socket.on('error', (error) => {
      this.#lastSocketError = error;
      socket.destroy();
    });
    socket.on('close', () => {
      if (socket !== this.#socket) return;
      this.#state = 'closed';
      this.#resolveClosed();
    });
  }

  /** 'idle': ready for send(); 'busy': connecting or in a transaction; 'closed'. */
  get state(): ClientState {
    return this.#state;
  }

  /** The connection can take another send() now. */
  get usable(): boolean {
    return this.#state === 'idle' && !this.#socket.destroyed;
  }

  /**
   * Another send() may be called now, while a transaction is in progress: it is pipelined behind
   * it. Its MAIL, RCPT and DATA go out in the same write as the message content of the
   * transaction ahead (RFC 2920 §3.1 lets content be the first "command" of a group, and its §4
   * example sends the next MAIL right after the final dot), so a connection carries one write and
   * one round trip per message instead of two. At most one transaction waits; only when the
   * server offers PIPELINING.
   */
  get acceptsFollower(): boolean {
    return (
      this.#state === 'busy' &&
      this.#inTransaction &&
      this.#follower === undefined &&
      this.extensions.has('PIPELINING') &&
      !this.#socket.destroyed
    );
  }

  /** Transactions on this connection in which the server accepted the message for at least one recipient. */
  get messagesSent(): number {
    return this.#messagesSent;
  }

  get tls(): TlsStatus {
    return this.#tls;
  }

  /** EHLO (or LHLO) was answered; false after the HELO fallback (no extensions). */
  get esmtp(): boolean {
    return this.#esmtp;
  }

  /** The SASL mechanism we authenticated with, if any. */
  get authenticated(): AuthMechanismName | undefined {
    return this.#authenticated;
  }

  static async connect(options: ClientOptions): Promise<SmtpClient> {
    const tls = options.tls ?? 'opportunistic';
    const timeouts: ClientTimeouts = { ...DEFAULT_TIMEOUTS };
    if (options.timeoutMs !== undefined) {
      for (const key of Object.keys(timeouts) as (keyof ClientTimeouts)[]) timeouts[key] = options.timeoutMs;
    }
    Object.assign(timeouts, options.timeouts);
    const r: Resolved = {
      options,
      timeouts,
      tls,
      rejectUnauthorized:
        options.rejectUnauthorized ?? (tls === 'required' && options.verifyPeer === undefined),
    };
    try {
      return await SmtpClient.#establish(r, tls !== 'none', undefined);
    } catch (error) {
      // RFC 7435: a failed handshake in opportunistic mode falls back to a new plaintext connection.
      if (
        tls === 'opportunistic' &&
        error instanceof SmtpClientError &&
        error.phase === ClientPhase.TlsHandshake
      ) {
        return await SmtpClient.#establish(r, false, error.message);
      }
      throw error;
    }
  }

  static async #establish(r: Resolved, tryTls: boolean, tlsFailure: string | undefined): Promise<SmtpClient> {
    const { host, port } = r.options;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new SmtpClientError(SmtpClientErrorCode.Timeout, `connect to ${host}:${port} timed out`, {
            phase: ClientPhase.Connect,
          }),
        );
      }, r.timeouts.connect);
      s.once('connect', () => {
        clearTimeout(timer);
        s.setNoDelay(true);
        resolve(s);
      });
      s.once('error', (error) => {
        clearTimeout(timer);
        reject(
          new SmtpClientError(SmtpClientErrorCode.Connect, `connect to ${host}:${port}: ${error.message}`, {
            cause: error,
            phase: ClientPhase.Connect,
          }),
        );
      });
    });
    const client = new SmtpClient(socket, r);
    try {
      const greeting = await client.#read(ClientPhase.Greeting, r.timeouts.greeting);
      client.greeting = greeting;
      if (greeting.code !== ReplyCode.ServiceReady) {
        throw new SmtpClientError(SmtpClientErrorCode.Rejected, `greeting: ${replyText(greeting)}`, {
          reply: greeting,
          phase: ClientPhase.Greeting,
        });
      }
      await client.#hello();
      const offered = client.extensions.has('STARTTLS');
      client.#tls = { ...NO_TLS, offered, failure: tlsFailure };
      if (tryTls) await client.#startTls(offered);
      if (r.tls === 'required' && !client.#tls.used) {
        throw new SmtpClientError(
          SmtpClientErrorCode.Tls,
          `TLS required: ${client.#tls.failure ?? 'STARTTLS not offered'}`,
          {
            phase: ClientPhase.StartTls,
          },
        );
      }
      if (r.options.auth !== undefined) await client.#auth(r.options.auth);
    } catch (error) {
      client.close();
      throw error;
    }
    client.#state = 'idle';
    return client;
  }

  async #hello(): Promise<void> {
    const name = this.#r.options.localName;
    this.extensions.clear();
    const lmtp = this.#r.options.protocol === 'lmtp';
    let r = await this.#command(`${lmtp ? 'LHLO' : 'EHLO'} ${name}`, ClientPhase.Hello);
    if (r.code === ReplyCode.Ok) {
      this.#esmtp = true;
      for (const line of r.lines.slice(1)) {
        const [word = '', ...rest] = line.trim().split(/\s+/);
        const upper = word.toUpperCase();
        // Some servers still announce "AUTH=LOGIN PLAIN" (pre-RFC 4954 form).
        if (upper.startsWith('AUTH=')) {
          if (!this.extensions.has('AUTH')) this.extensions.set('AUTH', [word.slice(5), ...rest].join(' '));
        } else if (upper !== '') this.extensions.set(upper, rest.join(' '));
      }
      return;
    }
    // RFC 5321 §3.2: a server that does not know EHLO answers 500/502; then HELO. LMTP has no fallback.
    if (!lmtp && (r.code === ReplyCode.SyntaxError || r.code === ReplyCode.NotImplemented)) {
      this.#esmtp = false;
      r = await this.#command(`HELO ${name}`, ClientPhase.Hello);
      if (r.code === ReplyCode.Ok) return;
    }
    throw new SmtpClientError(
      SmtpClientErrorCode.Rejected,
      `${lmtp ? 'LHLO' : 'EHLO/HELO'}: ${replyText(r)}`,
      {
        reply: r,
        phase: ClientPhase.Hello,
      },
    );
  }

  async #startTls(offered: boolean): Promise<void> {
    if (!offered) {
      this.#tls = { ...this.#tls, failure: this.#tls.failure ?? 'STARTTLS not offered' };
      return;
    }
    const r = await this.#command('STARTTLS', ClientPhase.StartTls);
    if (r.code !== ReplyCode.ServiceReady) {
      this.#tls = { ...this.#tls, failure: `STARTTLS refused: ${replyText(r)}` };
      if (this.#r.tls === 'required') {
        throw new SmtpClientError(
          SmtpClientErrorCode.Tls,
          `TLS required: STARTTLS refused: ${replyText(r)}`,
          {
            reply: r,
            phase: ClientPhase.StartTls,
          },
        );
      }
      return;
    }
    // RFC 3207 §5 (and CVE-2011-0411): nothing that came in clear after the 220 may be read as a reply.
    this.#reader.discard();
    this.#reader.detach();
    const plain = this.#socket;
    const secure = await handshake(plain, {
      host: this.#r.options.host,
      servername: this.#r.options.servername,
      ca: this.#r.options.ca,
      timeoutMs: this.#r.timeouts.tlsHandshake,
    });
    this.#socket = secure;
    this.#watch(secure);
    this.#reader.attach(secure);
    this.#tls = tlsStatus(secure);
    if (!this.#tls.authorized && this.#r.rejectUnauthorized) {
      throw new SmtpClientError(
        SmtpClientErrorCode.Tls,
        `certificate of ${this.#r.options.servername ?? this.#r.options.host} not valid: ${this.#tls.authorizationError}`,
        { phase: ClientPhase.StartTls },
      );
    }
    const verify = this.#r.options.verifyPeer;
    if (verify !== undefined) {
      let refusal: Error | undefined;
      try {
        refusal = verify(secure);
      } catch (error) {
        refusal = error instanceof Error ? error : new Error(String(error));
      }
      if (refusal !== undefined) {
        // Phase starttls, not tls-handshake: a refused peer is no reason to fall back to plaintext.
        throw new SmtpClientError(
          SmtpClientErrorCode.Tls,
          `${this.#r.options.servername ?? this.#r.options.host} refused by verifyPeer: ${refusal.message}`,
          { cause: refusal, phase: ClientPhase.StartTls },
        );
      }
      this.#tls = { ...this.#tls, peerVerified: true };
    }
    // RFC 3207 §4.2: forget what the server said before TLS, and ask again.
    await this.#hello();
  }

  async #auth(auth: ClientAuth): Promise<void> {
    const phase = ClientPhase.Auth;
    const unavailable = (text: string): SmtpClientError =>
      new SmtpClientError(SmtpClientErrorCode.AuthUnavailable, text, { phase });
    if (!this.#tls.used && auth.allowPlaintext !== true) throw unavailable('AUTH refused without TLS');
    const offered = new Set((this.extensions.get('AUTH') ?? '').toUpperCase().split(/\s+/));
    if (!this.extensions.has('AUTH')) throw unavailable('the server does not offer AUTH');
    const mechanism = (auth.mechanisms ?? DEFAULT_MECHANISMS).find((m) => offered.has(m));
    if (mechanism === undefined)
      throw unavailable(`no common AUTH mechanism (offered: ${[...offered].join(' ')})`);
    const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
    let r: Reply;
    if (mechanism === 'PLAIN') {
      // RFC 4954 §4: initial response with the command (RFC 4616 message).
      r = await this.#command(`AUTH PLAIN ${b64(plainResponse(auth.username, auth.password))}`, phase);
    } else {
      r = await this.#command('AUTH LOGIN', phase);
      if (r.code === ReplyCode.AuthContinue) r = await this.#command(b64(auth.username), phase);
      if (r.code === ReplyCode.AuthContinue) r = await this.#command(b64(auth.password), phase);
    }
    if (r.code === ReplyCode.AuthContinue) {
      // More challenges than the mechanism has: cancel (RFC 4954 §4) and fail.
      r = await this.#command('*', phase);
    }
    if (r.code !== ReplyCode.AuthSuccessful) {
      throw new SmtpClientError(SmtpClientErrorCode.AuthFailed, `AUTH ${mechanism}: ${replyText(r)}`, {
        reply: r,
        phase,
      });
    }
    this.#authenticated = mechanism;
  }

  async #read(phase: ClientPhase, timeoutMs: number): Promise<Reply> {
    let r: Reply;
    try {
      r = await this.#reader.read(phase, timeoutMs);
    } catch (error) {
      if (
        error instanceof SmtpClientError &&
        error.code === SmtpClientErrorCode.ConnectionLost &&
        this.#lastSocketError !== undefined
      ) {
        throw new SmtpClientError(error.code, `${error.message}: ${this.#lastSocketError.message}`, {
          cause: this.#lastSocketError,
          phase,
        });
      }
      throw error;
    }
    // RFC 5321 §3.8: 421 may answer any command; the server closes the connection after it.
    if (r.code === ReplyCode.ServiceUnavailable) {
      throw new SmtpClientError(
        SmtpClientErrorCode.ConnectionLost,
        `server closing (${phase}): ${replyText(r)}`,
        {
          reply: r,
          phase,
        },
      );
    }
    return r;
  }

  #timeout(phase: ClientPhase): number {
    return this.#r.timeouts[PHASE_TIMEOUT[phase] ?? 'command'];
  }

  #write(data: string | Buffer, phase: ClientPhase): void {
    if (this.#socket.destroyed) {
      throw new SmtpClientError(SmtpClientErrorCode.ConnectionLost, `connection closed (${phase})`, {
        phase,
      });
    }
    this.#socket.write(data);
  }

  async #command(line: string, phase: ClientPhase): Promise<Reply> {
    this.#write(`${line}\r\n`, phase);
    return await this.#read(phase, this.#timeout(phase));
  }

  /** Writes message data in blocks; each must be taken by the peer within the data block timeout. */
  async #writeData(data: Buffer): Promise<void> {
    const phase = ClientPhase.DataBlock;
    for (let offset = 0; offset < data.length; offset += WRITE_BLOCK) {
      if (this.#socket.destroyed) {
        throw new SmtpClientError(
          SmtpClientErrorCode.ConnectionLost,
          'connection closed while sending data',
          {
            phase,
          },
        );
      }
      if (!this.#socket.write(data.subarray(offset, offset + WRITE_BLOCK))) await this.#drain();
    }
  }

  /**
   * Message content (after `head`, a BDAT command) in one write with, when `last`, the commands of
   * the transaction queued behind this one (see `acceptsFollower`).
   */
  async #writeContent(data: Buffer, head = '', last = true): Promise<void> {
    const follower = last ? this.#follower : undefined;
    const tail = follower !== undefined && !follower.written ? follower.group : '';
    if (data.length > WRITE_BLOCK) {
      if (head !== '') this.#write(head, ClientPhase.DataBlock);
      await this.#writeData(data);
      if (tail !== '') this.#write(tail, ClientPhase.DataBlock);
    } else {
      if (this.#socket.destroyed) {
        throw new SmtpClientError(
          SmtpClientErrorCode.ConnectionLost,
          'connection closed while sending data',
          {
            phase: ClientPhase.DataBlock,
          },
        );
      }
      // One system call for all of it.
      this.#socket.cork();
      if (head !== '') this.#socket.write(head);
      this.#socket.write(data);
      if (tail !== '') this.#socket.write(tail);
      this.#socket.uncork();
      if (this.#socket.writableNeedDrain) await this.#drain();
    }
    if (follower !== undefined && tail !== '') follower.written = true;
  }

  async #drain(): Promise<void> {
    const socket = this.#socket;
    const phase = ClientPhase.DataBlock;
    const ms = this.#r.timeouts.dataBlock;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: SmtpClientError): void => {
        clearTimeout(timer);
        socket.off('drain', onDrain);
        socket.off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void =>
        done(
          new SmtpClientError(SmtpClientErrorCode.ConnectionLost, 'connection closed while sending data', {
            phase,
          }),
        );
      const timer = setTimeout(
        () =>
          done(
            new SmtpClientError(SmtpClientErrorCode.Timeout, `data block not taken within ${ms} ms`, {
              phase,
            }),
          ),
        ms,
      );
      socket.on('drain', onDrain);
      socket.on('close', onClose);
    });
  }

  /**
   * One mail transaction. Per-recipient replies and local refusals are returned, not thrown; a
   * thrown error (timeout, connection lost, protocol violation) closes the connection. The
   * message must use CRLF line endings (except BINARYMIME).
   */
  async send(envelope: SendEnvelope, message: Buffer): Promise<SendResult> {
    if (this.acceptsFollower) return await this.#sendAfter(envelope, message);
    if (this.#state !== 'idle' || this.#socket.destroyed) {
      throw new SmtpClientError(
        SmtpClientErrorCode.Unusable,
        this.#state === 'busy' ? 'send() while another send() is in progress' : 'connection closed',
      );
    }
    this.#state = 'busy';
    return await this.#run(this.#prepare(envelope, message), false);
  }

  /** A transaction queued behind the one in progress; its commands go out with that one's content. */
  async #sendAfter(envelope: SendEnvelope, message: Buffer): Promise<SendResult> {
    const prepared = this.#prepare(envelope, message);
    // Refused before any command: nothing to queue.
    if (prepared.refusal !== undefined) return refusedResult(prepared, prepared.refusal);
    const follower: Follower = {
      group: `${commandGroup(prepared).join('\r\n')}\r\n`,
      written: false,
      turn: Promise.withResolvers<void>(),
    };
    this.#follower = follower;
    await follower.turn.promise;
    if (this.#state !== 'busy' || this.#socket.destroyed) {
      // Nothing of this message was sent (its content goes only after its own 354): safe to
      // send on another connection at once.
      throw new SmtpClientError(
        SmtpClientErrorCode.Unusable,
        'the transaction ahead on this connection failed; this one was not sent',
      );
    }
    return await this.#run(prepared, follower.written);
  }

  async #run(prepared: Prepared, groupWritten: boolean): Promise<SendResult> {
    this.#inTransaction = true;
    try {
      const result =
        prepared.refusal === undefined
          ? await this.#exchange(prepared, groupWritten)
          : refusedResult(prepared, prepared.refusal);
      this.#handOver();
      return result;
    } catch (error) {
      this.close();
      this.#handOver();
      throw error;
    }
  }

  /** The transaction is over: the queued one (its turn) or the next send() may go. */
  #handOver(): void {
    this.#inTransaction = false;
    const follower = this.#follower;
    this.#follower = undefined;
    if (this.#state === 'busy') {
      // Kept busy for the follower, so that no other send() slips in between.
      this.#state = this.#socket.destroyed ? 'closed' : follower !== undefined ? 'busy' : 'idle';
    }
    follower?.turn.resolve();
  }

  #localRefusal(envelope: SendEnvelope, needs: MessageNeeds, size: number): LocalRefusal | undefined {
    const ext = this.extensions;
    const host = this.#r.options.host;
    if (needs.smtputf8 && !ext.has('SMTPUTF8')) {
      return {
        reason: LocalRefusalReason.SmtpUtf8Unsupported,
        reply: reply(
          ReplyCode.MailboxNameNotAllowed,
          Enhanced.NonAsciiAddress,
          `The message needs SMTPUTF8, which ${host} does not offer`,
        ),
      };
    }
    if (needs.body === 'BINARYMIME' && !(ext.has('CHUNKING') && ext.has('BINARYMIME'))) {
      return {
        reason: LocalRefusalReason.BinaryMimeUnsupported,
        reply: reply(
          ReplyCode.TransactionFailed,
          '5.6.3',
          `The message is binary; ${host} does not offer CHUNKING and BINARYMIME`,
        ),
      };
    }
    if (envelope.requireTls === true) {
      // RFC 8689 §4.2.1: PKIX, or DANE (through verifyPeer).
      if (!this.#tls.used || !(this.#tls.authorized || this.#tls.peerVerified)) {
        return {
          reason: LocalRefusalReason.RequireTlsNoTls,
          reply: reply(
            ReplyCode.AuthRequired,
            Enhanced.RequireTlsNeeded,
            this.#tls.used
              ? `REQUIRETLS: the certificate of ${host} did not validate (${this.#tls.authorizationError})`
              : `REQUIRETLS: no TLS with ${host}`,
          ),
        };
      }
      if (!ext.has('REQUIRETLS')) {
        return {
          reason: LocalRefusalReason.RequireTlsUnsupported,
          reply: reply(
            ReplyCode.MailboxUnavailable,
            '5.7.30',
            `REQUIRETLS support required; ${host} lacks it`,
          ),
        };
      }
    }
    const limit = Number(ext.get('SIZE') ?? '0');
    if (Number.isSafeInteger(limit) && limit > 0 && size > limit) {
      return {
        reason: LocalRefusalReason.MessageTooBig,
        reply: reply(
          ReplyCode.ExceededStorage,
          Enhanced.MessageTooBig,
          `Message size ${size} exceeds the limit of ${limit} of ${host}`,
        ),
      };
    }
    return undefined;
  }

  /** Everything decided before the first command: parameters, content, local refusals. */
  #prepare(envelope: SendEnvelope, message: Buffer): Prepared {
    const ext = this.extensions;
    const specs: RecipientSpec[] = envelope.to.map(recipientSpec);
    const needs = messageNeeds(envelope, message);
    const chunking = ext.has('CHUNKING');
    const pipelining = ext.has('PIPELINING');
    const payload = chunking ? chunkingPayload(message, needs.body) : dotStuff(message);
    const size = chunking ? payload.length : message.length;
    const base = {
      transfer: { chunking, pipelining, body: needs.body, smtputf8: needs.smtputf8, dsn: ext.has('DSN') },
      tls: this.#tls,
    };
    const refusal = this.#localRefusal(envelope, needs, size);
    const mail = commandLine(
      'MAIL FROM',
      envelope.from,
      mailParameters(envelope, { extensions: ext, needs, size, tls: this.#tls.used }),
    );
    const rcpts = specs.map((s) => commandLine('RCPT TO', s.address, recipientParameters(s, ext)));
    return { specs, chunking, pipelining, payload, base, refusal, mail, rcpts };
  }

  async #exchange(prepared: Prepared, groupWritten: boolean): Promise<SendResult> {
    const { specs, chunking, pipelining, payload, base, mail, rcpts } = prepared;
    const lmtp = this.#r.options.protocol === 'lmtp';
    const rcptReplies: Reply[] = [];
    let mailReply: Reply;
    let dataStart: Reply | undefined;
    // Written behind the content of the transaction ahead: that content's end closed the
    // transaction, so no RSET.
    const reset = this.#needsReset && !groupWritten;

    if (pipelining) {
      // RFC 2920 §3.1: RSET, MAIL, every RCPT and DATA in one write; replies come back in order.
      if (!groupWritten) {
        const group = [...(reset ? ['RSET'] : []), ...commandGroup(prepared)];
        this.#write(`${group.join('\r\n')}\r\n`, ClientPhase.Mail);
      }
      if (reset) this.#checkReset(await this.#read(ClientPhase.Rset, this.#r.timeouts.command));
      this.#needsReset = false;
      mailReply = await this.#read(ClientPhase.Mail, this.#r.timeouts.mail);
      for (let i = 0; i < rcpts.length; i++)
        rcptReplies.push(await this.#read(ClientPhase.Rcpt, this.#r.timeouts.rcpt));
      if (!chunking) dataStart = await this.#read(ClientPhase.DataInit, this.#r.timeouts.dataInit);
    } else {
      if (reset) this.#checkReset(await this.#command('RSET', ClientPhase.Rset));
      this.#needsReset = false;
      mailReply = await this.#command(mail, ClientPhase.Mail);
      if (positive(mailReply)) {
        for (const line of rcpts) rcptReplies.push(await this.#command(line, ClientPhase.Rcpt));
        if (!chunking && rcptReplies.some(positive))
          dataStart = await this.#command('DATA', ClientPhase.DataInit);
      }
    }

    const accepted: RecipientResult[] = [];
    const rejected: RecipientResult[] = [];
    const decided = new Map<number, Reply>();
    if (!positive(mailReply)) {
      specs.forEach((s, i) => {
        rejected.push({ address: s.address, reply: mailReply });
        decided.set(i, mailReply);
      });
    } else {
      // From here on the server has a transaction until the end of the data ends it.
      this.#needsReset = true;
      specs.forEach((s, i) => {
        const r = rcptReplies[i] as Reply;
        if (positive(r)) accepted.push({ address: s.address, reply: r });
        else {
          rejected.push({ address: s.address, reply: r });
          decided.set(i, r);
        }
      });
    }
    const finish = (dataReply: Reply | undefined, perRecipient?: Reply[]): SendResult => {
      let k = 0;
      const recipients = specs.map((s, i): RecipientOutcome => {
        const r = decided.get(i) ?? perRecipient?.[k++] ?? dataReply;
        if (r === undefined) throw new Error('unreachable: recipient without a reply');
        return { address: s.address, status: status(r), reply: r };
      });
      if (recipients.some((r) => r.status === 'delivered')) this.#messagesSent++;
      return {
        ...base,
        accepted,
        rejected,
        mailReply,
        dataReply: lmtp ? undefined : dataReply,
        recipients,
        localRefusal: undefined,
      };
    };

    if (accepted.length === 0) {
      if (dataStart?.code === ReplyCode.StartMailInput) {
        // The server took DATA although nothing was accepted: end it empty; it must refuse it.
        this.#write('.\r\n', ClientPhase.DataEnd);
        await this.#read(ClientPhase.DataEnd, this.#r.timeouts.dataEnd);
      }
      return finish(undefined);
    }

    if (chunking) return await this.#sendChunks(payload, accepted.length, lmtp, finish);

    const start = dataStart as Reply;
    if (start.code !== ReplyCode.StartMailInput) {
      // DATA refused: the accepted recipients end with that reply.
      specs.forEach((_s, i) => {
        if (!decided.has(i)) decided.set(i, start);
      });
      rejected.push(...accepted.map((a) => ({ address: a.address, reply: start })));
      accepted.length = 0;
      return finish(start);
    }
    await this.#writeContent(payload);
    return await this.#endOfData(accepted.length, lmtp, finish);
  }

  #checkReset(r: Reply): void {
    if (!positive(r)) {
      throw new SmtpClientError(SmtpClientErrorCode.Rejected, `RSET: ${replyText(r)}`, {
        reply: r,
        phase: ClientPhase.Rset,
      });
    }
  }

  /** The reply (SMTP) or the replies, one per accepted recipient (LMTP, RFC 2033 §4.2), to the end of the data. */
  async #endOfData(
    count: number,
    lmtp: boolean,
    finish: (dataReply: Reply | undefined, perRecipient?: Reply[]) => SendResult,
  ): Promise<SendResult> {
    const timeout = this.#r.timeouts.dataEnd;
    if (!lmtp) {
      const r = await this.#read(ClientPhase.DataEnd, timeout);
      this.#needsReset = false;
      return finish(r);
    }
    const replies: Reply[] = [];
    for (let i = 0; i < count; i++) replies.push(await this.#read(ClientPhase.DataEnd, timeout));
    this.#needsReset = false;
    return finish(undefined, replies);
  }

  /** RFC 3030: BDAT chunks of the configured size, the last one BDAT n LAST; each answered before the next. */
  async #sendChunks(
    payload: Buffer,
    count: number,
    lmtp: boolean,
    finish: (dataReply: Reply | undefined, perRecipient?: Reply[]) => SendResult,
  ): Promise<SendResult> {
    const chunkSize = Math.max(1, this.#r.options.chunkSize ?? DEFAULT_CHUNK_SIZE);
    let offset = 0;
    for (;;) {
      const chunk = payload.subarray(offset, offset + chunkSize);
      offset += chunk.length;
      const last = offset >= payload.length;
      await this.#writeContent(chunk, `BDAT ${chunk.length}${last ? ' LAST' : ''}\r\n`, last);
      if (last) return await this.#endOfData(count, lmtp, finish);
      const r = await this.#read(ClientPhase.DataBlock, this.#r.timeouts.dataBlock);
      if (!positive(r)) {
        // RFC 3030 §2: no further chunks; the transaction failed with this reply for every accepted recipient.
        return finish(r, lmtp ? Array.from({ length: count }, () => r) : undefined);
      }
    }
  }

  /** QUIT (a courtesy: errors are ignored), then close. */
  async quit(): Promise<void> {
    if (this.#state === 'closed' || this.#socket.destroyed) {
      this.close();
      return;
    }
    try {
      await this.#command('QUIT', ClientPhase.Quit);
    } catch {
      // The server may close first.
    } finally {
      this.close();
    }
  }

  close(): void {
    this.#state = 'closed';
    this.#resolveClosed();
    this.#reader.detach();
    this.#socket.destroy();
  }
}
