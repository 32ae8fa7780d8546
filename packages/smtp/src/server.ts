import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import { TLSSocket, type TlsOptions } from 'node:tls';
import { type Mailbox, type PathArgument, parseDomain, parsePathArgument } from './address.ts';
import { asciiUpper } from './ascii.ts';
import {
  DEFAULT_MAX_RECIPIENTS,
  Enhanced,
  EXTENSION_COMMAND_ALLOWANCE,
  Extension,
  MAX_AUTH_LINE,
  MAX_COMMAND_LINE,
  MAX_RECEIVED_FIELDS,
  ReplyCode,
} from './codes.ts';
import { type BareLineEndings, DataDecoder } from './data.ts';
import {
  type BodyType,
  type MailParameters,
  parseMailParameters,
  parseRecipientParameters,
  type RecipientParameters,
} from './params.ts';
import { type ProxyParse, parseProxyHeader } from './proxy.ts';
import { InputReader } from './reader.ts';
import { countReceived } from './received.ts';
import { formatReply, isPositive, type Reply, reply } from './reply.ts';
import { createSaslExchange, parseSaslMechanism, type SaslCredentials, type SaslMechanism } from './sasl.ts';

/**
 * Listener semantics: 'mx' is port 25 (STARTTLS offered, AUTH only after TLS), 'submission' is
 * port 587 (STARTTLS then AUTH required for every transaction, RFC 6409), 'smtps' is port 465
 * (implicit TLS, RFC 8314, AUTH required).
 */
/** RFC 5321 §4.1.1.3: "<Postmaster>" without a domain, any case, with or without parameters. */
const POSTMASTER = /^to: ?<postmaster>( |$)/i;
const POSTMASTER_PATH = /<postmaster>/i;

export const ListenerMode = { Mx: 'mx', Submission: 'submission', Smtps: 'smtps' } as const;
export type ListenerMode = (typeof ListenerMode)[keyof typeof ListenerMode];

export interface TlsInfo {
  readonly protocol: string;
  readonly cipher: string;
  readonly servername: string | undefined;
}

export interface AuthInfo {
  readonly identity: string;
  readonly mechanism: SaslMechanism;
}

/** The connection as the policy sees it. */
export interface SessionInfo {
  readonly id: string;
  readonly mode: ListenerMode;
  /** The client's address: from the PROXY header when the listener takes one, else the socket's. */
  remoteAddress: string;
  remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  helo: string | undefined;
  esmtp: boolean;
  tls: TlsInfo | undefined;
  auth: AuthInfo | undefined;
}

export interface Recipient {
  readonly mailbox: Mailbox;
  readonly params: ReadonlyMap<string, string | undefined>;
  readonly dsn: RecipientParameters;
}

/** The mail transaction being built (RFC 5321 §3.3). */
export interface Transaction {
  readonly sender: Mailbox | undefined;
  readonly mailParams: ReadonlyMap<string, string | undefined>;
  readonly parameters: MailParameters;
  readonly recipients: Recipient[];
  /** BODY= value, upper-cased; '7BIT' when absent. */
  readonly bodyType: BodyType;
  readonly smtputf8: boolean;
  /** How the message was transferred; set by the first DATA or BDAT. */
  transfer: 'DATA' | 'BDAT' | undefined;
}

/** Authentication: credentials plus the throttle that slows down and locks out guessing. */
export interface AuthHandler {
  readonly credentials: SaslCredentials;
  /** Key of the per-user SCRAM salt; the same on every replica keeps a user's salt stable. */
  readonly scramSaltKey?: Buffer;
  /** Before an exchange: a reply (e.g. 454 4.7.0 while locked out) refuses it. */
  check?(session: SessionInfo, username: string | undefined): Reply | undefined;
  /** After a failed exchange: milliseconds to wait before the failure reply. */
  failed?(session: SessionInfo, username: string | undefined): number;
  succeeded?(session: SessionInfo, identity: string): void;
}

/** Things worth a log line and a metric; the engine itself neither logs nor counts. */
export const SessionEvent = {
  Connected: 'connected',
  Refused: 'refused',
  ProxyError: 'proxy-error',
  TlsFailed: 'tls-failed',
  TlsEstablished: 'tls-established',
  PlaintextDiscarded: 'plaintext-discarded',
  LineTooLong: 'line-too-long',
  BadCommand: 'bad-command',
  AuthSucceeded: 'auth-succeeded',
  AuthFailed: 'auth-failed',
  BareLineEnding: 'bare-line-ending',
  LongTextLine: 'long-text-line',
  Oversized: 'oversized',
  RoutingLoop: 'routing-loop',
  Timeout: 'timeout',
  SlowClient: 'slow-client',
  TooManyErrors: 'too-many-errors',
  TooManyCommands: 'too-many-commands',
  Closed: 'closed',
} as const;
export type SessionEvent = (typeof SessionEvent)[keyof typeof SessionEvent];

/**
 * Policy and storage, plugged in by the service. The engine validates syntax and sequence; the
 * handler decides who may send what and where it goes. A handler returns the reply to send;
 * undefined means the engine's default positive reply.
 */
export interface SessionHandler {
  /** Before the greeting (after PROXY and implicit TLS): a reply refuses the connection. */
  connect?(session: SessionInfo): Promise<Reply | undefined> | Reply | undefined;
  mailFrom?(
    session: SessionInfo,
    path: PathArgument,
    parameters: MailParameters,
  ): Promise<Reply | undefined> | Reply | undefined;
  rcptTo(
    session: SessionInfo,
    tx: Transaction,
    recipient: Recipient,
  ): Promise<Reply | undefined> | Reply | undefined;
  /** Called after the final dot / BDAT LAST with the whole message; the reply answers it. */
  message(session: SessionInfo, tx: Transaction, body: Buffer): Promise<Reply>;
  /** AUTH is offered only when present. */
  auth?: AuthHandler;
  /** RFC 1985 ETRN (offered on the MX listener only when present): the handler decides who may. */
  etrn?(session: SessionInfo, node: string): Promise<Reply> | Reply;
  /** Events for logs and metrics. */
  observe?(session: SessionInfo, event: SessionEvent, detail?: Readonly<Record<string, unknown>>): void;
  /** The session ended (whatever the reason). */
  closed?(session: SessionInfo): void;
}

export interface ServerSessionOptions {
  /** Our host name in the greeting and EHLO reply. */
  hostname: string;
  mode?: ListenerMode;
  maxMessageSize: number;
  maxRecipients?: number;
  /** RFC 5321 §4.5.3.2.7: time for the next command line, at least 5 minutes; partial lines do not extend it. */
  idleTimeoutMs?: number;
  /** RFC 5321 §4.5.3.2.5/6: inactivity while receiving message data, at least 3 minutes. */
  dataTimeoutMs?: number;
  /** Message data slower than this (octets/s, averaged after the first 30 s) is cut off. */
  minDataRate?: number;
  /** Errors tolerated in one session before it is closed. */
  maxErrors?: number;
  /** Commands accepted in one session before it is closed. */
  maxCommands?: number;
  /** TLS server options (certificates, SNI); STARTTLS is offered only with them, 'smtps' needs them. */
  tls?: () => TlsOptions;
  tlsHandshakeTimeoutMs?: number;
  /** The connection starts with a PROXY protocol v1/v2 header (the listener trusts the peer). */
  proxy?: boolean;
  /** Bare CR/LF in message data: refuse the message (default) or normalise to CRLF. */
  bareLineEndings?: BareLineEndings;
  /** SASL mechanisms offered (default: all four). */
  authMechanisms?: readonly SaslMechanism[];
  /**
   * The mailbox that a domainless `RCPT TO:<Postmaster>` stands for (RFC 5321 §4.1.1.3, §4.5.1:
   * it must be accepted); default postmaster@<hostname>. The handler then judges it as any other.
   */
  postmaster?: string;
}

const Defaults = {
  mode: ListenerMode.Mx,
  idleTimeoutMs: 5 * 60_000,
  dataTimeoutMs: 3 * 60_000,
  minDataRate: 128,
  maxErrors: 20,
  maxCommands: 100_000,
  tlsHandshakeTimeoutMs: 30_000,
  bareLineEndings: 'reject',
} as const;

const DEFAULT_MECHANISMS: readonly SaslMechanism[] = ['SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'CRAM-MD5'];

/** How long a closed session waits for the peer to close its side of the connection. */
const LINGER_MS = 2_000;
/** The rate check starts after this much time in one DATA/BDAT transfer. */
const SLOW_GRACE_MS = 30_000;
const COMMAND_LIMIT = MAX_COMMAND_LINE + EXTENSION_COMMAND_ALLOWANCE;
const NON_ASCII = /[^\p{ASCII}]/u;

/** Control characters other than TAB never belong in a command line. */
function hasControl(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

const R = {
  syntax: reply(ReplyCode.SyntaxError, Enhanced.InvalidCommand, 'Command unrecognized'),
  lineTooLong: reply(ReplyCode.SyntaxError, Enhanced.SyntaxError, 'Line too long'),
  badChars: (what: string) => reply(ReplyCode.ParameterSyntaxError, Enhanced.SyntaxError, what),
  badSequence: (text: string) => reply(ReplyCode.BadSequence, Enhanced.InvalidCommand, text),
  paramSyntax: (text: string) => reply(ReplyCode.ParameterSyntaxError, Enhanced.InvalidArguments, text),
  notImplemented: reply(ReplyCode.NotImplemented, Enhanced.InvalidCommand, 'Command not implemented'),
  ok: reply(ReplyCode.Ok, Enhanced.Ok, 'OK'),
  senderOk: reply(ReplyCode.Ok, Enhanced.SenderOk, 'Sender OK'),
  recipientOk: reply(ReplyCode.Ok, Enhanced.RecipientOk, 'Recipient OK'),
  startData: reply(ReplyCode.StartMailInput, undefined, 'End data with <CR><LF>.<CR><LF>'),
  startTls: reply(ReplyCode.ServiceReady, Enhanced.Ok, 'Ready to start TLS'),
  bye: reply(ReplyCode.Closing, Enhanced.Ok, 'Bye'),
  idle: reply(ReplyCode.ServiceUnavailable, Enhanced.BadConnection, 'Timeout, closing connection'),
  slow: reply(ReplyCode.ServiceUnavailable, Enhanced.BadConnection, 'Data too slow, closing connection'),
  shutdown: reply(
    ReplyCode.ServiceUnavailable,
    Enhanced.NotAccepting,
    'Service shutting down, try again later',
  ),
  tooManyErrors: reply(
    ReplyCode.ServiceUnavailable,
    Enhanced.NotAccepting,
    'Too many errors, closing connection',
  ),
  tooManyCommands: reply(
    ReplyCode.ServiceUnavailable,
    Enhanced.NotAccepting,
    'Too many commands, closing connection',
  ),
  tooManyRecipients: reply(ReplyCode.InsufficientStorage, Enhanced.TooManyRecipients, 'Too many recipients'),
  noRecipients: reply(ReplyCode.TransactionFailed, Enhanced.InvalidCommand, 'No valid recipients'),
  tooBig: reply(
    ReplyCode.ExceededStorage,
    Enhanced.MessageTooBig,
    'Message size exceeds fixed maximum message size',
  ),
  bareLf: reply(
    ReplyCode.TransactionFailed,
    Enhanced.MediaError,
    'Message contains bare CR or LF; lines must end with CRLF (RFC 5321 §2.3.8)',
  ),
  longLine: reply(
    ReplyCode.TransactionFailed,
    Enhanced.MediaError,
    'Message has a line longer than 998 octets',
  ),
  loop: reply(
    ReplyCode.TransactionFailed,
    Enhanced.RoutingLoop,
    'Too many Received fields: mail loop detected',
  ),
  nonAscii: reply(
    ReplyCode.MailboxNameNotAllowed,
    Enhanced.NonAsciiAddress,
    'Non-ASCII address needs SMTPUTF8 (RFC 6531)',
  ),
  binaryNeedsBdat: reply(
    ReplyCode.BadSequence,
    Enhanced.InvalidCommand,
    'BODY=BINARYMIME needs BDAT (RFC 3030)',
  ),
  vrfy: reply(
    ReplyCode.CannotVerify,
    '2.5.0',
    'Cannot VRFY user, but will accept message and attempt delivery',
  ),
  help: reply(
    ReplyCode.HelpMessage,
    '2.0.0',
    'See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT',
  ),
  tlsFirst: reply(ReplyCode.AuthRequired, Enhanced.SecurityRequired, 'Must issue a STARTTLS command first'),
  authFirst: reply(ReplyCode.AuthRequired, Enhanced.SecurityRequired, 'Authentication required'),
  tlsForAuth: reply(
    ReplyCode.EncryptionRequired,
    Enhanced.EncryptionRequired,
    'Encryption required for requested authentication mechanism',
  ),
  tlsUnavailable: reply(ReplyCode.AuthTempFailure, Enhanced.SecurityTemp, 'TLS not available'),
  authOk: reply(ReplyCode.AuthSuccessful, Enhanced.AuthOk, 'Authentication successful'),
  authInvalid: reply(
    ReplyCode.AuthInvalid,
    Enhanced.AuthCredentialsInvalid,
    'Authentication credentials invalid',
  ),
  authCancelled: reply(ReplyCode.ParameterSyntaxError, Enhanced.SyntaxError, 'Authentication cancelled'),
  authMalformed: reply(
    ReplyCode.ParameterSyntaxError,
    Enhanced.SyntaxError,
    'Malformed authentication response',
  ),
  authLineTooLong: reply(ReplyCode.SyntaxError, Enhanced.AuthLineTooLong, 'Authentication line too long'),
  badMechanism: reply(
    ReplyCode.ParameterNotImplemented,
    Enhanced.InvalidArguments,
    'Unrecognized authentication type',
  ),
} as const;

type Verb =
  | 'EHLO'
  | 'HELO'
  | 'MAIL'
  | 'RCPT'
  | 'DATA'
  | 'BDAT'
  | 'RSET'
  | 'NOOP'
  | 'QUIT'
  | 'VRFY'
  | 'EXPN'
  | 'HELP'
  | 'STARTTLS'
  | 'AUTH'
  | 'ETRN';
type Outcome = 'continue' | 'close';

/** Commands allowed on the submission port before STARTTLS (RFC 3207 §4). */
const BEFORE_TLS: ReadonlySet<Verb> = new Set<Verb>([
  'EHLO',
  'HELO',
  'STARTTLS',
  'NOOP',
  'RSET',
  'QUIT',
  'HELP',
]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** One SMTP server session over an established socket (RFC 5321 §4.3.2 state machine). */
export class ServerSession {
  readonly info: SessionInfo;
  #socket: Socket;
  readonly #reader: InputReader;
  readonly #handler: SessionHandler;
  readonly #options: Required<Omit<ServerSessionOptions, 'tls'>> & Pick<ServerSessionOptions, 'tls'>;
  #tx: Transaction | undefined;
  /** The BDAT decoder of the transaction in progress. */
  #chunked: DataDecoder | undefined;
  #errors = 0;
  #commandCount = 0;
  /** Waiting for the next command (no transaction step in progress). */
  #idle = false;
  #shuttingDown = false;
  #out = '';
  #timer: NodeJS.Timeout | undefined;
  #dataStarted = 0;
  #dataOctets = 0;
  #inData = false;
  readonly #commands: Record<Verb, (arg: string) => Promise<Outcome> | Outcome>;

  constructor(socket: Socket, id: string, handler: SessionHandler, options: ServerSessionOptions) {
    this.#socket = socket;
    this.#handler = handler;
    this.#options = {
      maxRecipients: DEFAULT_MAX_RECIPIENTS,
      authMechanisms: DEFAULT_MECHANISMS,
      proxy: false,
      ...Defaults,
      ...options,
      postmaster: options.postmaster ?? `postmaster@${options.hostname}`,
    };
    this.info = {
      id,
      mode: this.#options.mode,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      localPort: socket.localPort ?? 0,
      helo: undefined,
      esmtp: false,
      tls: undefined,
      auth: undefined,
    };
    this.#reader = new InputReader(socket);
    this.#reader.beforeWait = () => this.#flush();
    this.#reader.onBytes = (n) => this.#progress(n);
    // A typed command table: exhaustive over Verb, no string-built method names.
    this.#commands = {
      EHLO: (a) => this.#hello(a, true),
      HELO: (a) => this.#hello(a, false),
      MAIL: (a) => this.#mail(a),
      RCPT: (a) => this.#rcpt(a),
      DATA: (a) => this.#data(a),
      BDAT: (a) => this.#bdat(a),
      RSET: (a) => (a.trim() !== '' ? this.#error(R.paramSyntax('RSET takes no arguments')) : this.#rset()),
      NOOP: () => this.#reply(R.ok),
      QUIT: () => this.#quit(),
      VRFY: (a) =>
        a.trim() === '' ? this.#error(R.paramSyntax('VRFY needs an argument')) : this.#reply(R.vrfy),
      EXPN: () => this.#error(R.notImplemented),
      HELP: () => this.#reply(R.help),
      STARTTLS: (a) => this.#startTls(a),
      AUTH: (a) => this.#auth(a),
      ETRN: (a) => this.#etrn(a),
    };
  }

  /**
   * Asks the session to end: an idle one gets 421 4.3.2 now, a busy one right after the
   * command (e.g. the transaction) in progress completes.
   */
  shutdown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    if (this.#idle) {
      this.#send(R.shutdown);
      this.#flush();
      this.#reader.end();
    }
  }

  #send(r: Reply): void {
    this.#out += formatReply(r);
  }

  /** Writes queued replies: pipelined replies go out together (RFC 2920 §3.2). */
  #flush(): void {
    if (this.#out === '') return;
    if (!this.#socket.destroyed) this.#socket.write(this.#out);
    this.#out = '';
  }

  #observe(event: SessionEvent, detail?: Readonly<Record<string, unknown>>): void {
    this.#handler.observe?.(this.info, event, detail);
  }

  /** One timer per session: the command-line deadline, or DATA inactivity. */
  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#observe(SessionEvent.Timeout, { phase: this.#inData ? 'data' : 'command' });
      this.#abort(R.idle);
    }, ms);
  }

  #abort(r: Reply): void {
    this.#send(r);
    this.#flush();
    this.#reader.end();
    this.#socket.end();
    this.#socket.destroy();
  }

  #progress(n: number): void {
    if (!this.#inData) return;
    this.#dataOctets += n;
    this.#arm(this.#options.dataTimeoutMs);
    const elapsed = performance.now() - this.#dataStarted;
    if (elapsed > SLOW_GRACE_MS && (this.#dataOctets * 1000) / elapsed < this.#options.minDataRate) {
      this.#observe(SessionEvent.SlowClient, { octets: this.#dataOctets, ms: Math.round(elapsed) });
      this.#abort(R.slow);
    }
  }

  #startData(): void {
    this.#inData = true;
    this.#dataStarted = performance.now();
    this.#dataOctets = 0;
    this.#arm(this.#options.dataTimeoutMs);
  }

  #endData(): void {
    this.#inData = false;
  }

  /** Runs the session to its end (QUIT, disconnect, timeout or too many errors). */
  async run(): Promise<void> {
    this.#socket.on('error', () => this.#socket.destroy());
    try {
      if (await this.#open()) await this.#loop();
    } finally {
      clearTimeout(this.#timer);
      this.#flush();
      this.#reader.detach();
      const socket = this.#socket;
      socket.end();
      // Do not wait forever for a peer that never closes its side.
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
      this.#observe(SessionEvent.Closed);
      this.#handler.closed?.(this.info);
    }
  }

  /** PROXY header, implicit TLS, connection policy, greeting. */
  async #open(): Promise<boolean> {
    this.#arm(this.#options.idleTimeoutMs);
    if (this.#options.proxy) {
      const header = await this.#reader.readPrefix<ProxyParse>(parseProxyHeader);
      if (header === undefined) return false;
      if (header.kind !== 'ok') {
        this.#observe(SessionEvent.ProxyError, {
          reason: header.kind === 'error' ? header.reason : header.kind,
        });
        // Nothing is said before a valid header: the peer is a load balancer, not an SMTP client.
        this.#socket.destroy();
        return false;
      }
      if (header.command === 'PROXY' && header.source !== undefined) {
        this.info.remoteAddress = header.source.address;
        this.info.remotePort = header.source.port;
      }
    }
    if (this.info.mode === ListenerMode.Smtps) {
      if (!(await this.#handshake())) return false;
    }
    this.#observe(SessionEvent.Connected);
    const refusal = await this.#handler.connect?.(this.info);
    if (refusal !== undefined) {
      this.#observe(SessionEvent.Refused, { code: refusal.code });
      this.#send(refusal);
      return false;
    }
    this.#send(reply(ReplyCode.ServiceReady, undefined, `${this.#options.hostname} ESMTP Petrel`));
    return true;
  }

  async #loop(): Promise<void> {
    for (;;) {
      if (this.#shuttingDown) {
        this.#send(R.shutdown);
        return;
      }
      this.#idle = true;
      this.#arm(this.#options.idleTimeoutMs);
      const next = await this.#reader.nextLine(MAX_AUTH_LINE);
      this.#idle = false;
      // No signal is given: 'aborted' cannot happen; the session's own timer ends idle peers.
      if (next.kind === 'eof' || next.kind === 'aborted') return;
      if (++this.#commandCount > this.#options.maxCommands) {
        this.#observe(SessionEvent.TooManyCommands);
        this.#send(R.tooManyCommands);
        return;
      }
      let outcome: Outcome;
      if (next.kind === 'overflow') {
        this.#observe(SessionEvent.LineTooLong);
        outcome = this.#error(R.lineTooLong);
      } else {
        outcome = await this.#dispatch(next.line);
      }
      if (outcome === 'close') return;
    }
  }

  async #dispatch(raw: Buffer): Promise<Outcome> {
    if (raw.includes(0)) return this.#bad(R.badChars('NUL character in command'), 'nul');
    if (!isUtf8(raw)) return this.#bad(R.badChars('Invalid UTF-8 in command'), 'utf8');
    const line = raw.toString('utf8');
    if (hasControl(line)) return this.#bad(R.badChars('Control character in command'), 'control');
    const space = line.indexOf(' ');
    const verb = asciiUpper(space === -1 ? line : line.slice(0, space));
    const arg = space === -1 ? '' : line.slice(space + 1);
    // Only AUTH may use the longer line of RFC 4954 §4; no part of an over-long line is run.
    if (verb !== 'AUTH' && raw.length + 2 > COMMAND_LIMIT) {
      this.#observe(SessionEvent.LineTooLong, { verb });
      return this.#error(R.lineTooLong);
    }
    const command = Object.hasOwn(this.#commands, verb) ? this.#commands[verb as Verb] : undefined;
    if (command === undefined) return this.#bad(R.syntax, 'unknown');
    if (this.#needsTlsFirst(verb as Verb)) return this.#error(R.tlsFirst);
    return await command(arg);
  }

  /** Port 587: nothing but the greeting commands and STARTTLS before TLS (RFC 3207 §4). */
  #needsTlsFirst(verb: Verb): boolean {
    return (
      this.info.mode === ListenerMode.Submission &&
      this.info.tls === undefined &&
      this.#options.tls !== undefined &&
      !BEFORE_TLS.has(verb)
    );
  }

  #bad(r: Reply, reason: string): Outcome {
    this.#observe(SessionEvent.BadCommand, { reason });
    return this.#error(r);
  }

  #error(r: Reply): Outcome {
    this.#send(r);
    if (++this.#errors >= this.#options.maxErrors) {
      this.#observe(SessionEvent.TooManyErrors);
      this.#send(R.tooManyErrors);
      return 'close';
    }
    return 'continue';
  }

  #reply(r: Reply): Outcome {
    this.#send(r);
    return 'continue';
  }

  #rset(): Outcome {
    this.#tx = undefined;
    this.#chunked = undefined;
    return this.#reply(R.ok);
  }

  #quit(): Outcome {
    this.#send(R.bye);
    return 'close';
  }

  #hello(arg: string, esmtp: boolean): Outcome {
    const name = arg.trim();
    // RFC 5321 §4.1.1.1: a domain or an address literal.
    if (
      name === '' ||
      (parseDomain(name) === undefined && !/^\[[^\]\s]+\]$/.test(name) && !/^[\w.-]+$/.test(name))
    ) {
      return this.#error(R.paramSyntax(`${esmtp ? 'EHLO' : 'HELO'} requires a domain or address literal`));
    }
    this.info.helo = name;
    this.info.esmtp = esmtp;
    this.#tx = undefined;
    this.#chunked = undefined;
    const greeting = `${this.#options.hostname} greets ${name}`;
    if (!esmtp) return this.#reply(reply(ReplyCode.Ok, undefined, greeting));
    return this.#reply(reply(ReplyCode.Ok, undefined, greeting, ...this.#extensions()));
  }

  #extensions(): string[] {
    const tls = this.info.tls !== undefined;
    const list: string[] = [
      Extension.Pipelining,
      `${Extension.Size} ${this.#options.maxMessageSize}`,
      Extension.EightBitMime,
      Extension.BinaryMime,
      Extension.Chunking,
      Extension.EnhancedStatusCodes,
      Extension.SmtpUtf8,
      Extension.Dsn,
      Extension.DeliverBy,
    ];
    if (!tls && this.#options.tls !== undefined) list.push(Extension.StartTls);
    if (tls) list.push(Extension.RequireTls);
    // AUTH only over TLS, whatever the listener (credentials never cross the wire in clear).
    if (tls && this.#handler.auth !== undefined && this.info.auth === undefined) {
      list.push(`${Extension.Auth} ${this.#options.authMechanisms.join(' ')}`);
    }
    if (this.info.mode === ListenerMode.Mx && this.#handler.etrn !== undefined) list.push(Extension.Etrn);
    return list;
  }

  async #startTls(arg: string): Promise<Outcome> {
    if (arg !== '') return this.#error(R.paramSyntax('STARTTLS takes no arguments'));
    if (this.info.tls !== undefined) return this.#error(R.badSequence('TLS already active'));
    if (this.#options.tls === undefined) return this.#error(R.tlsUnavailable);
    this.#send(R.startTls);
    this.#flush();
    // RFC 3207 §4.2 / CVE-2011-0411: whatever the client pipelined after STARTTLS in clear is dropped.
    const discarded = this.#reader.buffered;
    this.#reader.discard();
    if (discarded > 0) this.#observe(SessionEvent.PlaintextDiscarded, { octets: discarded });
    if (!(await this.#handshake())) return 'close';
    // RFC 3207 §4.2: forget everything learnt before TLS.
    this.info.helo = undefined;
    this.info.esmtp = false;
    this.info.auth = undefined;
    this.#tx = undefined;
    this.#chunked = undefined;
    return 'continue';
  }

  async #handshake(): Promise<boolean> {
    const provider = this.#options.tls;
    if (provider === undefined) return false;
    const plain = this.#socket;
    this.#reader.detach();
    const secure = new TLSSocket(plain, { ...provider(), isServer: true });
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#options.tlsHandshakeTimeoutMs);
      const done = (result: boolean) => {
        clearTimeout(timer);
        resolve(result);
      };
      secure.once('secure', () => done(true));
      secure.once('error', (error) => {
        this.#observe(SessionEvent.TlsFailed, { error: error.message });
        done(false);
      });
      secure.once('close', () => done(false));
    });
    this.#socket = secure;
    secure.on('error', () => secure.destroy());
    if (!ok) {
      secure.destroy();
      plain.destroy();
      return false;
    }
    this.#reader.attach(secure);
    const cipher = secure.getCipher();
    this.info.tls = {
      protocol: secure.getProtocol() ?? 'unknown',
      cipher: cipher.standardName ?? cipher.name,
      servername: typeof secure.servername === 'string' ? secure.servername : undefined,
    };
    this.#observe(SessionEvent.TlsEstablished, {
      protocol: this.info.tls.protocol,
      cipher: this.info.tls.cipher,
    });
    return true;
  }

  async #auth(arg: string): Promise<Outcome> {
    const auth = this.#handler.auth;
    if (auth === undefined) return this.#error(R.notImplemented);
    if (this.info.helo === undefined || !this.info.esmtp)
      return this.#error(R.badSequence('Send EHLO first'));
    if (this.info.tls === undefined) return this.#error(R.tlsForAuth);
    if (this.info.auth !== undefined) return this.#error(R.badSequence('Already authenticated'));
    if (this.#tx !== undefined)
      return this.#error(R.badSequence('AUTH not allowed during a mail transaction'));
    const [name = '', initial, extra] = arg.split(' ');
    const mechanism = parseSaslMechanism(name);
    if (mechanism === undefined || !this.#options.authMechanisms.includes(mechanism) || extra !== undefined) {
      return this.#error(R.badMechanism);
    }
    const locked = auth.check?.(this.info, undefined);
    if (locked !== undefined) return this.#error(locked);
    let initialData: Buffer | undefined;
    if (initial !== undefined) {
      // RFC 4954 §4: "=" is an empty initial response.
      if (initial !== '=' && !BASE64.test(initial)) return this.#error(R.authMalformed);
      initialData = initial === '=' ? Buffer.alloc(0) : Buffer.from(initial, 'base64');
    }
    const exchange = createSaslExchange(mechanism, {
      credentials: auth.credentials,
      hostname: this.#options.hostname,
      ...(auth.scramSaltKey === undefined ? {} : { scramSaltKey: auth.scramSaltKey }),
    });
    let step = await exchange.start(initialData);
    for (;;) {
      if (step.kind === 'success' && step.data !== undefined) {
        // RFC 4954 §4: additional data with success goes in a 334; the client answers empty.
        this.#send(reply(ReplyCode.AuthContinue, undefined, step.data.toString('base64')));
        const answer = await this.#authLine();
        if (answer === 'close') return 'close';
        if (answer === 'cancel' || answer === 'malformed' || answer.length > 0)
          return this.#error(R.authMalformed);
        step = { kind: 'success', identity: step.identity };
      }
      if (step.kind === 'success') {
        this.info.auth = { identity: step.identity, mechanism };
        auth.succeeded?.(this.info, step.identity);
        this.#observe(SessionEvent.AuthSucceeded, { mechanism, identity: step.identity });
        return this.#reply(R.authOk);
      }
      if (step.kind === 'failure') {
        const delay = auth.failed?.(this.info, step.identity) ?? 0;
        // Never the password, only who and why.
        this.#observe(SessionEvent.AuthFailed, {
          mechanism,
          identity: step.identity,
          reason: step.reason,
          detail: step.detail,
          delay,
        });
        if (delay > 0) {
          this.#flush();
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
        return this.#error(step.reason === 'malformed' ? R.authMalformed : R.authInvalid);
      }
      this.#send(reply(ReplyCode.AuthContinue, undefined, step.data.toString('base64')));
      const answer = await this.#authLine();
      if (answer === 'close') return 'close';
      if (answer === 'cancel') return this.#error(R.authCancelled);
      if (answer === 'malformed') return this.#error(R.authMalformed);
      if (answer === 'too-long') return this.#error(R.authLineTooLong);
      step = await exchange.next(answer);
    }
  }

  /** One SASL response line (RFC 4954 §4): base64, or "*" to cancel. */
  async #authLine(): Promise<Buffer | 'close' | 'cancel' | 'malformed' | 'too-long'> {
    this.#arm(this.#options.idleTimeoutMs);
    const next = await this.#reader.nextLine(MAX_AUTH_LINE);
    if (next.kind === 'eof' || next.kind === 'aborted') return 'close';
    if (next.kind === 'overflow') return 'too-long';
    const text = next.line.toString('latin1');
    if (text === '*') return 'cancel';
    if (!BASE64.test(text)) return 'malformed';
    return Buffer.from(text, 'base64');
  }

  async #etrn(arg: string): Promise<Outcome> {
    const etrn = this.#handler.etrn;
    if (etrn === undefined || this.info.mode !== ListenerMode.Mx) return this.#error(R.notImplemented);
    if (this.info.helo === undefined) return this.#error(R.badSequence('Send EHLO or HELO first'));
    if (this.#tx !== undefined)
      return this.#error(R.badSequence('ETRN not allowed during a mail transaction'));
    // RFC 1985 §4: node name, "@domain" (subdomains too) or "#queue".
    const node = arg.trim();
    const domain = node.startsWith('@') || node.startsWith('#') ? node.slice(1) : node;
    if (parseDomain(domain) === undefined) return this.#error(R.paramSyntax('ETRN needs a domain'));
    const verdict = await etrn(this.info, node.toLowerCase());
    return isPositive(verdict) ? this.#reply(verdict) : this.#error(verdict);
  }

  /** The address forms the engine refuses before policy sees them. */
  #checkMailbox(mailbox: Mailbox | undefined, utf8: boolean): Reply | undefined {
    if (mailbox !== undefined && !utf8 && NON_ASCII.test(mailbox.address)) return R.nonAscii;
    return undefined;
  }

  async #mail(arg: string): Promise<Outcome> {
    if (this.info.helo === undefined) return this.#error(R.badSequence('Send EHLO or HELO first'));
    if (this.#tx !== undefined) return this.#error(R.badSequence('Nested MAIL command'));
    if (
      this.info.mode !== ListenerMode.Mx &&
      this.#handler.auth !== undefined &&
      this.info.auth === undefined
    ) {
      return this.#error(R.authFirst);
    }
    if (!/^from:/i.test(arg)) return this.#error(R.paramSyntax('Syntax: MAIL FROM:<address>'));
    const parsed = parsePathArgument(arg.slice(5), true, { utf8: true });
    if (!parsed.ok)
      return this.#error(reply(ReplyCode.ParameterSyntaxError, Enhanced.BadSenderSyntax, parsed.reason));
    if (!this.info.esmtp && parsed.value.params.size > 0) {
      return this.#error(
        reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, 'Parameters need EHLO'),
      );
    }
    const params = parseMailParameters(parsed.value.params, {
      maxMessageSize: this.#options.maxMessageSize,
      tls: this.info.tls !== undefined,
    });
    if (!params.ok) return this.#error(params.reply);
    const bad = this.#checkMailbox(parsed.value.mailbox, params.value.smtputf8);
    if (bad !== undefined) return this.#error(bad);
    const verdict = await this.#handler.mailFrom?.(this.info, parsed.value, params.value);
    if (verdict !== undefined && !isPositive(verdict)) return this.#error(verdict);
    this.#tx = {
      sender: parsed.value.mailbox,
      mailParams: parsed.value.params,
      parameters: params.value,
      recipients: [],
      bodyType: params.value.body,
      smtputf8: params.value.smtputf8,
      transfer: undefined,
    };
    this.#chunked = undefined;
    return this.#reply(verdict ?? R.senderOk);
  }

  async #rcpt(arg: string): Promise<Outcome> {
    const tx = this.#tx;
    if (tx === undefined) return this.#error(R.badSequence('Send MAIL first'));
    if (tx.transfer !== undefined) return this.#error(R.badSequence('RCPT after message data'));
    if (!/^to:/i.test(arg)) return this.#error(R.paramSyntax('Syntax: RCPT TO:<address>'));
    const path = POSTMASTER.test(arg)
      ? arg.slice(3).replace(POSTMASTER_PATH, `<${this.#options.postmaster}>`)
      : arg.slice(3);
    const parsed = parsePathArgument(path, false, { utf8: true });
    if (!parsed.ok || parsed.value.mailbox === undefined) {
      return this.#error(
        reply(
          ReplyCode.ParameterSyntaxError,
          Enhanced.BadDestinationSyntax,
          parsed.ok ? 'Invalid recipient' : parsed.reason,
        ),
      );
    }
    if (!this.info.esmtp && parsed.value.params.size > 0) {
      return this.#error(
        reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, 'Parameters need EHLO'),
      );
    }
    const bad = this.#checkMailbox(parsed.value.mailbox, tx.smtputf8);
    if (bad !== undefined) return this.#error(bad);
    const dsn = parseRecipientParameters(parsed.value.params, tx.smtputf8);
    if (!dsn.ok) return this.#error(dsn.reply);
    if (tx.recipients.length >= this.#options.maxRecipients) return this.#reply(R.tooManyRecipients);
    const recipient: Recipient = {
      mailbox: parsed.value.mailbox,
      params: parsed.value.params,
      dsn: dsn.value,
    };
    const verdict = await this.#handler.rcptTo(this.info, tx, recipient);
    if (verdict !== undefined && !isPositive(verdict)) return this.#error(verdict);
    tx.recipients.push(recipient);
    return this.#reply(verdict ?? R.recipientOk);
  }

  async #data(arg: string): Promise<Outcome> {
    if (arg !== '') return this.#error(R.paramSyntax('DATA takes no arguments'));
    const tx = this.#tx;
    if (tx === undefined) return this.#error(R.badSequence('Send MAIL first'));
    if (tx.transfer === 'BDAT') return this.#error(R.badSequence('DATA after BDAT'));
    if (tx.bodyType === 'BINARYMIME') return this.#error(R.binaryNeedsBdat);
    // RFC 2920 §3.1: with pipelining, DATA after only refused recipients gets 554.
    if (tx.recipients.length === 0) return this.#error(R.noRecipients);
    tx.transfer = 'DATA';
    this.#send(R.startData);
    const decoder = new DataDecoder({
      maxSize: this.#options.maxMessageSize,
      bareLineEndings: this.#options.bareLineEndings,
    });
    this.#startData();
    const end = await this.#reader.readData(decoder);
    this.#endData();
    if (end === 'eof') return 'close';
    this.#tx = undefined;
    return this.#finish(tx, decoder);
  }

  /** RFC 3030: BDAT <size> [LAST]; the chunk is always read, also when it is refused. */
  async #bdat(arg: string): Promise<Outcome> {
    const m = /^(\d{1,15})( +LAST)? *$/i.exec(arg);
    if (m === null) {
      // The chunk size is unknown, so what follows cannot be told apart from commands: close.
      this.#send(R.paramSyntax('Syntax: BDAT <size> [LAST]'));
      return 'close';
    }
    const size = Number(m[1]);
    const last = m[2] !== undefined;
    const tx = this.#tx;
    let refusal: Reply | undefined;
    if (tx === undefined) refusal = R.badSequence('Send MAIL first');
    else if (tx.transfer === 'DATA') refusal = R.badSequence('BDAT after DATA');
    else if (tx.recipients.length === 0) refusal = R.noRecipients;
    if (refusal !== undefined || tx === undefined) {
      this.#startData();
      const end = await this.#reader.readExact(size, () => undefined);
      this.#endData();
      if (end === 'eof') return 'close';
      // RFC 3030 §2: the transaction is over once a chunk fails.
      this.#tx = undefined;
      this.#chunked = undefined;
      return this.#error(refusal ?? R.badSequence('Send MAIL first'));
    }
    tx.transfer = 'BDAT';
    let decoder = this.#chunked;
    if (decoder === undefined) {
      decoder = new DataDecoder({
        maxSize: this.#options.maxMessageSize,
        bareLineEndings: this.#options.bareLineEndings,
        dotStuffed: false,
        checkLines: tx.bodyType !== 'BINARYMIME',
      });
      this.#chunked = decoder;
    }
    const target = decoder;
    this.#startData();
    const end = await this.#reader.readExact(size, (chunk) => target.push(chunk));
    this.#endData();
    if (end === 'eof') return 'close';
    if (target.problems.oversized) {
      this.#observe(SessionEvent.Oversized, { size: target.size });
      this.#tx = undefined;
      this.#chunked = undefined;
      return this.#error(R.tooBig);
    }
    if (!last) return this.#reply(reply(ReplyCode.Ok, Enhanced.Ok, `${size} octets received`));
    this.#tx = undefined;
    this.#chunked = undefined;
    target.end();
    return this.#finish(tx, target);
  }

  /** The end of the message: refuse what is malformed, else hand it over and send its reply. */
  async #finish(tx: Transaction, decoder: DataDecoder): Promise<Outcome> {
    const p = decoder.problems;
    if (p.oversized) {
      this.#observe(SessionEvent.Oversized, { size: decoder.size });
      return this.#error(R.tooBig);
    }
    if ((p.bareLf || p.bareCr) && this.#options.bareLineEndings === 'reject') {
      this.#observe(SessionEvent.BareLineEnding, { bareLf: p.bareLf, bareCr: p.bareCr });
      return this.#error(R.bareLf);
    }
    if (p.bareLf || p.bareCr) this.#observe(SessionEvent.BareLineEnding, { normalized: true });
    if (p.longLine) {
      this.#observe(SessionEvent.LongTextLine);
      return this.#error(R.longLine);
    }
    const body = decoder.body();
    if (countReceived(body) > MAX_RECEIVED_FIELDS) {
      this.#observe(SessionEvent.RoutingLoop);
      return this.#error(R.loop);
    }
    // The handler may take a while (queue acknowledgement): let earlier replies go out now.
    this.#flush();
    this.#idle = false;
    return this.#reply(await this.#handler.message(this.info, tx, body));
  }
}
