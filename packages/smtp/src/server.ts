import type { Socket } from 'node:net';
import { type Mailbox, type PathArgument, parseDomain, parsePathArgument } from './address.ts';
import { DEFAULT_MAX_RECIPIENTS, Enhanced, Extension, MAX_COMMAND_LINE, ReplyCode } from './codes.ts';
import { DataDecoder } from './data.ts';
import { InputReader } from './reader.ts';
import { formatReply, isPositive, type Reply, reply } from './reply.ts';

/** The connection as the policy sees it. */
export interface SessionInfo {
  readonly id: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  helo: string | undefined;
  esmtp: boolean;
}

export interface Recipient {
  readonly mailbox: Mailbox;
  readonly params: ReadonlyMap<string, string | undefined>;
}

/** The mail transaction being built (RFC 5321 §3.3). */
export interface Transaction {
  readonly sender: Mailbox | undefined;
  readonly mailParams: ReadonlyMap<string, string | undefined>;
  readonly recipients: Recipient[];
  /** BODY= value, upper-cased; '7BIT' when absent. */
  readonly bodyType: string;
  readonly smtputf8: boolean;
}

/**
 * Policy and storage, plugged in by the service. The engine validates syntax and sequence; the
 * handler decides who may send what and where it goes. A handler returns the reply to send;
 * undefined means the engine's default positive reply.
 */
export interface SessionHandler {
  mailFrom?(session: SessionInfo, path: PathArgument): Promise<Reply | undefined> | Reply | undefined;
  rcptTo(
    session: SessionInfo,
    tx: Transaction,
    recipient: Recipient,
  ): Promise<Reply | undefined> | Reply | undefined;
  /** Called after the final dot with the whole message; the reply is sent as the answer to it. */
  message(session: SessionInfo, tx: Transaction, body: Buffer): Promise<Reply>;
}

export interface ServerSessionOptions {
  /** Our host name in the greeting and EHLO reply. */
  hostname: string;
  maxMessageSize: number;
  maxRecipients?: number;
  /** RFC 5321 §4.5.3.2.7: server timeout waiting for the next command, at least 5 minutes. */
  idleTimeoutMs?: number;
  /** RFC 5321 §4.5.3.2.5/6: waiting for the next chunk of DATA, at least 3 minutes. */
  dataTimeoutMs?: number;
  /** Errors tolerated in one session before it is closed. */
  maxErrors?: number;
}

const Defaults = {
  idleTimeoutMs: 5 * 60_000,
  dataTimeoutMs: 3 * 60_000,
  maxErrors: 20,
} as const;

/** How long a closed session waits for the peer to close its side of the connection. */
const LINGER_MS = 2_000;

const BODY_TYPES = new Set(['7BIT', '8BITMIME']);

const R = {
  syntax: reply(ReplyCode.SyntaxError, Enhanced.InvalidCommand, 'Command unrecognized'),
  lineTooLong: reply(ReplyCode.SyntaxError, Enhanced.SyntaxError, 'Line too long'),
  badSequence: (text: string) => reply(ReplyCode.BadSequence, Enhanced.InvalidCommand, text),
  paramSyntax: (text: string) => reply(ReplyCode.ParameterSyntaxError, Enhanced.InvalidArguments, text),
  ok: reply(ReplyCode.Ok, Enhanced.Ok, 'OK'),
  senderOk: reply(ReplyCode.Ok, Enhanced.SenderOk, 'Sender OK'),
  recipientOk: reply(ReplyCode.Ok, Enhanced.RecipientOk, 'Recipient OK'),
  startData: reply(ReplyCode.StartMailInput, undefined, 'End data with <CR><LF>.<CR><LF>'),
  bye: reply(ReplyCode.Closing, Enhanced.Ok, 'Bye'),
  idle: reply(ReplyCode.ServiceUnavailable, Enhanced.BadConnection, 'Idle timeout, closing connection'),
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
  vrfy: reply(
    ReplyCode.CannotVerify,
    '2.5.0',
    'Cannot VRFY user, but will accept message and attempt delivery',
  ),
  help: reply(214, '2.0.0', 'See RFC 5321'),
} as const;

type Verb = 'EHLO' | 'HELO' | 'MAIL' | 'RCPT' | 'DATA' | 'RSET' | 'NOOP' | 'QUIT' | 'VRFY' | 'HELP';
type Outcome = 'continue' | 'close';

/** One SMTP server session over an established socket (RFC 5321 §4.3.2 state machine). */
export class ServerSession {
  readonly info: SessionInfo;
  readonly #socket: Socket;
  readonly #reader: InputReader;
  readonly #handler: SessionHandler;
  readonly #options: Required<ServerSessionOptions>;
  #tx: Transaction | undefined;
  #errors = 0;
  /** Waiting for the next command (no transaction step in progress). */
  #idle = false;
  #shuttingDown = false;
  readonly #commands: Record<Verb, (arg: string) => Promise<Outcome> | Outcome>;

  constructor(socket: Socket, id: string, handler: SessionHandler, options: ServerSessionOptions) {
    this.#socket = socket;
    this.#handler = handler;
    this.#options = {
      maxRecipients: DEFAULT_MAX_RECIPIENTS,
      idleTimeoutMs: Defaults.idleTimeoutMs,
      dataTimeoutMs: Defaults.dataTimeoutMs,
      maxErrors: Defaults.maxErrors,
      ...options,
    };
    this.info = {
      id,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      helo: undefined,
      esmtp: false,
    };
    this.#reader = new InputReader(socket);
    // A typed command table: exhaustive over Verb, no string-built method names.
    this.#commands = {
      EHLO: (a) => this.#hello(a, true),
      HELO: (a) => this.#hello(a, false),
      MAIL: (a) => this.#mail(a),
      RCPT: (a) => this.#rcpt(a),
      DATA: (a) => this.#data(a),
      RSET: () => this.#simple(() => (this.#tx = undefined), R.ok),
      NOOP: () => this.#simple(() => undefined, R.ok),
      QUIT: () => this.#quit(),
      VRFY: () => this.#simple(() => undefined, R.vrfy),
      HELP: () => this.#simple(() => undefined, R.help),
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
      this.#reader.end();
    }
  }

  #send(r: Reply): void {
    if (!this.#socket.destroyed) this.#socket.write(formatReply(r));
  }

  /** Runs the session to its end (QUIT, disconnect, timeout or too many errors). */
  async run(): Promise<void> {
    const socket = this.#socket;
    socket.on('error', () => socket.destroy());
    socket.setTimeout(this.#options.idleTimeoutMs, () => {
      this.#send(R.idle);
      socket.end();
      socket.destroy();
    });
    this.#send(reply(ReplyCode.ServiceReady, undefined, `${this.#options.hostname} ESMTP Petrel`));
    try {
      for (;;) {
        if (this.#shuttingDown) {
          this.#send(R.shutdown);
          break;
        }
        this.#idle = true;
        const next = await this.#reader.nextLine(MAX_COMMAND_LINE);
        this.#idle = false;
        if (next.kind === 'eof') break;
        let outcome: Outcome;
        if (next.kind === 'overflow') {
          outcome = this.#error(R.lineTooLong);
        } else {
          outcome = await this.#dispatch(next.line);
        }
        if (outcome === 'close') break;
      }
    } finally {
      this.#reader.detach();
      socket.setTimeout(0);
      socket.end();
      // Do not wait forever for a peer that never closes its side.
      const linger = setTimeout(() => socket.destroy(), LINGER_MS);
      linger.unref();
      socket.once('close', () => clearTimeout(linger));
    }
  }

  async #dispatch(raw: Buffer): Promise<Outcome> {
    const line = raw.toString('utf8');
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const arg = space === -1 ? '' : line.slice(space + 1);
    const command = Object.hasOwn(this.#commands, verb) ? this.#commands[verb as Verb] : undefined;
    if (command === undefined) return this.#error(R.syntax);
    return await command(arg);
  }

  #error(r: Reply): Outcome {
    this.#send(r);
    if (++this.#errors >= this.#options.maxErrors) {
      this.#send(R.tooManyErrors);
      return 'close';
    }
    return 'continue';
  }

  #simple(effect: () => void, r: Reply): Outcome {
    effect();
    this.#send(r);
    return 'continue';
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
    const greeting = `${this.#options.hostname} greets ${name}`;
    if (!esmtp) {
      this.#send(reply(ReplyCode.Ok, undefined, greeting));
      return 'continue';
    }
    this.#send(
      reply(
        ReplyCode.Ok,
        undefined,
        greeting,
        Extension.Pipelining,
        `${Extension.Size} ${this.#options.maxMessageSize}`,
        Extension.EightBitMime,
        Extension.EnhancedStatusCodes,
        Extension.SmtpUtf8,
      ),
    );
    return 'continue';
  }

  async #mail(arg: string): Promise<Outcome> {
    if (this.info.helo === undefined) return this.#error(R.badSequence('Send EHLO or HELO first'));
    if (this.#tx !== undefined) return this.#error(R.badSequence('Nested MAIL command'));
    if (!/^from:/i.test(arg)) return this.#error(R.paramSyntax('Syntax: MAIL FROM:<address>'));
    const parsed = parsePathArgument(arg.slice(5), true);
    if (!parsed.ok)
      return this.#error(reply(ReplyCode.ParameterSyntaxError, Enhanced.BadSenderSyntax, parsed.reason));
    const { params } = parsed.value;
    let bodyType = '7BIT';
    let smtputf8 = false;
    for (const [key, value] of params) {
      if (!this.info.esmtp)
        return this.#error(
          reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, 'Parameters need EHLO'),
        );
      if (key === 'SIZE') {
        if (value === undefined || !/^\d{1,20}$/.test(value))
          return this.#error(R.paramSyntax('Invalid SIZE'));
        if (Number(value) > this.#options.maxMessageSize) return this.#error(R.tooBig);
      } else if (key === 'BODY') {
        const body = value?.toUpperCase();
        if (body === undefined || !BODY_TYPES.has(body)) return this.#error(R.paramSyntax('Invalid BODY'));
        bodyType = body;
      } else if (key === 'SMTPUTF8') {
        if (value !== undefined) return this.#error(R.paramSyntax('SMTPUTF8 takes no value'));
        smtputf8 = true;
      } else {
        return this.#error(
          reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, `Unsupported parameter ${key}`),
        );
      }
    }
    const verdict = await this.#handler.mailFrom?.(this.info, parsed.value);
    if (verdict !== undefined && !isPositive(verdict)) return this.#error(verdict);
    this.#tx = { sender: parsed.value.mailbox, mailParams: params, recipients: [], bodyType, smtputf8 };
    this.#send(verdict ?? R.senderOk);
    return 'continue';
  }

  async #rcpt(arg: string): Promise<Outcome> {
    const tx = this.#tx;
    if (tx === undefined) return this.#error(R.badSequence('Send MAIL first'));
    if (!/^to:/i.test(arg)) return this.#error(R.paramSyntax('Syntax: RCPT TO:<address>'));
    const parsed = parsePathArgument(arg.slice(3), false);
    if (!parsed.ok || parsed.value.mailbox === undefined) {
      return this.#error(
        reply(
          ReplyCode.ParameterSyntaxError,
          Enhanced.BadDestinationSyntax,
          parsed.ok ? 'Invalid recipient' : parsed.reason,
        ),
      );
    }
    for (const key of parsed.value.params.keys()) {
      return this.#error(
        reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, `Unsupported parameter ${key}`),
      );
    }
    if (tx.recipients.length >= this.#options.maxRecipients) {
      this.#send(R.tooManyRecipients);
      return 'continue';
    }
    const recipient: Recipient = { mailbox: parsed.value.mailbox, params: parsed.value.params };
    const verdict = await this.#handler.rcptTo(this.info, tx, recipient);
    if (verdict !== undefined && !isPositive(verdict)) return this.#error(verdict);
    tx.recipients.push(recipient);
    this.#send(verdict ?? R.recipientOk);
    return 'continue';
  }

  async #data(arg: string): Promise<Outcome> {
    if (arg !== '') return this.#error(R.paramSyntax('DATA takes no arguments'));
    const tx = this.#tx;
    if (tx === undefined) return this.#error(R.badSequence('Send MAIL first'));
    // RFC 2920 §3.1: with pipelining, DATA after only refused recipients gets 554.
    if (tx.recipients.length === 0) return this.#error(R.noRecipients);
    this.#send(R.startData);
    const socket = this.#socket;
    socket.setTimeout(this.#options.dataTimeoutMs);
    const decoder = new DataDecoder({ maxSize: this.#options.maxMessageSize });
    const end = await this.#reader.readData(decoder);
    socket.setTimeout(this.#options.idleTimeoutMs);
    if (end === 'eof') return 'close';
    this.#tx = undefined;
    const p = decoder.problems;
    if (p.oversized) this.#send(R.tooBig);
    else if (p.bareLf || p.bareCr) this.#send(R.bareLf);
    else if (p.longLine) this.#send(R.longLine);
    else this.#send(await this.#handler.message(this.info, tx, decoder.body()));
    return 'continue';
  }
}
