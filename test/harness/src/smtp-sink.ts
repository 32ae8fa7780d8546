// A scriptable SMTP server that integration tests use as the next hop (smarthost or remote MX).
// It records exactly what it received so tests can assert on the bytes a relay delivered.
import { once } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

export type SinkBehaviour =
  | { kind: 'accept' }
  | { kind: 'tempfail'; code?: number; text?: string }
  | { kind: 'permfail'; code?: number; text?: string }
  | { kind: 'close421' }
  | { kind: 'slow'; delayMs: number }
  | { kind: 'disconnectInData' }
  | { kind: 'dataTempfail'; code?: number; text?: string }
  | { kind: 'dataPermfail'; code?: number; text?: string };

export interface ReceivedMessage {
  mailFrom: string;
  mailParams: string[];
  rcptTo: string[];
  data: Buffer;
  helo: string;
  connectionId: number;
  receivedAt: Date;
}

export interface SinkOptions {
  host?: string;
  hostname?: string;
  behaviour?: (recipient: string) => SinkBehaviour;
  /** Listen on this port instead of a free one (the dev sink of the README uses a fixed port). */
  port?: number;
  /** Leave SMTPUTF8 (RFC 6531) out of the EHLO reply, as older servers do. */
  noSmtpUtf8?: boolean;
  /** Called for each message once its 2xx was sent. */
  onMessage?: (message: ReceivedMessage) => void;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  readonly messages: readonly ReceivedMessage[];
  readonly connections: number;
  /** Messages received in full whose reply a `slow` behaviour is holding back. */
  readonly held: number;
  readonly rejectedRecipients: readonly { recipient: string; code: number }[];
  setBehaviour(fn: (recipient: string) => SinkBehaviour): void;
  messagesTo(recipient: string): ReceivedMessage[];
  clear(): void;
  close(): Promise<void>;
}

type DataBehaviour = Extract<
  SinkBehaviour,
  { kind: 'slow' | 'disconnectInData' | 'dataTempfail' | 'dataPermfail' }
>;

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CR_BUFFER = Buffer.from([CR]);
const EMPTY = Buffer.alloc(0);
// Advertised so clients that honour SIZE have a concrete number; only a declared SIZE= is checked.
const MAX_SIZE = 100 * 1024 * 1024;
const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?:\s|$)/;

/** KumoMTA-style scripting: the recipient's local part prefix selects the behaviour. */
export function behaviourByLocalPart(recipient: string): SinkBehaviour {
  const at = recipient.lastIndexOf('@');
  const local = (at === -1 ? recipient : recipient.slice(0, at)).toLowerCase();
  if (local.startsWith('tempfail-')) return { kind: 'tempfail' };
  if (local.startsWith('permfail-')) return { kind: 'permfail' };
  if (local.startsWith('close421-')) return { kind: 'close421' };
  if (local.startsWith('disconnect-in-data-')) return { kind: 'disconnectInData' };
  if (local.startsWith('datatempfail-')) return { kind: 'dataTempfail' };
  if (local.startsWith('datapermfail-')) return { kind: 'dataPermfail' };
  const slow = /^slow(\d+)-/.exec(local)?.[1];
  if (slow !== undefined) return { kind: 'slow', delayMs: Number(slow) };
  return { kind: 'accept' };
}

/**
 * Builds "<code> <enhanced> <text>". A caller-supplied text that already starts with an enhanced
 * code is used verbatim; otherwise the default enhanced code is prefixed, with its class digit
 * following the reply code so a custom 4xx never carries a 5.x.x detail.
 */
function failureLine(
  code: number | undefined,
  text: string | undefined,
  defaultCode: number,
  defaultEnhanced: string,
  defaultText: string,
): { code: number; line: string } {
  const c = code ?? defaultCode;
  const t = text ?? defaultText;
  if (ENHANCED_CODE.test(t)) return { code: c, line: `${c} ${t}` };
  const enhanced = `${String(c).charAt(0)}${defaultEnhanced.slice(1)}`;
  return { code: c, line: `${c} ${enhanced} ${t}` };
}

function parsePath(args: string, prefix: RegExp): { address: string; params: string[] } | undefined {
  const m = prefix.exec(args);
  if (m === null) return undefined;
  const rest = args.slice(m[0].length);
  let address: string;
  let tail: string;
  if (rest.startsWith('<')) {
    const close = rest.indexOf('>');
    if (close === -1) return undefined;
    address = rest.slice(1, close);
    tail = rest.slice(close + 1);
  } else {
    // Some clients omit the angle brackets; accept a bare address up to the first space.
    const space = rest.search(/\s/);
    address = space === -1 ? rest : rest.slice(0, space);
    tail = space === -1 ? '' : rest.slice(space);
    if (address === '') return undefined;
  }
  if (tail !== '' && !/^\s/.test(tail)) return undefined;
  const params = tail.split(/\s+/).filter((p) => p !== '');
  return { address, params };
}

function isDataBehaviour(b: SinkBehaviour): b is DataBehaviour {
  return (
    b.kind === 'slow' ||
    b.kind === 'disconnectInData' ||
    b.kind === 'dataTempfail' ||
    b.kind === 'dataPermfail'
  );
}

/** Shared state the sessions write into; the public SmtpSink is a read-only view over it. */
interface SinkState {
  readonly hostname: string;
  readonly smtputf8: boolean;
  behaviour: (recipient: string) => SinkBehaviour;
  readonly messages: ReceivedMessage[];
  readonly rejectedRecipients: { recipient: string; code: number }[];
  queued: number;
  readonly onMessage: ((message: ReceivedMessage) => void) | undefined;
}

type DataState = 'body' | 'cr' | 'lineStart' | 'dot' | 'dotCr';

class Session {
  readonly #socket: Socket;
  readonly #state: SinkState;
  readonly #id: number;
  #mode: 'command' | 'data' | 'closed' = 'command';
  // A slow reply is pending: input keeps arriving but must be answered after it, in order.
  #busy = false;
  #timer: NodeJS.Timeout | undefined;
  #inbox: Buffer[] = [];
  #commandBuffer: Buffer = EMPTY;
  #helo = '';
  #mailFrom: string | undefined;
  #mailParams: string[] = [];
  #rcptTo: string[] = [];
  #dataBehaviour: DataBehaviour | undefined;
  #dataState: DataState = 'lineStart';
  #dataChunks: Buffer[] = [];

  constructor(socket: Socket, state: SinkState, id: number) {
    this.#socket = socket;
    this.#state = state;
    this.#id = id;
    socket.setNoDelay(true);
    // Clients (and the relay under test) reset connections; that must not crash the test process.
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      if (this.#mode === 'closed') return;
      this.#inbox.push(chunk);
      this.#pump();
    });
    socket.on('close', () => this.#stop());
    this.#reply(`220 ${state.hostname} ESMTP petrel test sink`);
  }

  /** Destroys the connection now; used by SmtpSink.close(). */
  destroy(): void {
    this.#stop();
    this.#socket.destroy();
  }

  /** A received message's reply is held back (the timer runs only for a `slow` reply). */
  get holding(): boolean {
    return this.#timer !== undefined;
  }

  #stop(): void {
    this.#mode = 'closed';
    this.#inbox = [];
    this.#dataChunks = [];
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #reply(text: string): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    this.#socket.write(`${text}\r\n`);
  }

  #resetTransaction(): void {
    this.#mailFrom = undefined;
    this.#mailParams = [];
    this.#rcptTo = [];
    this.#dataBehaviour = undefined;
    this.#dataChunks = [];
  }

  /** Replies, then closes gracefully so the client still reads the reply. */
  #quit(line: string): void {
    this.#reply(line);
    this.#stop();
    this.#socket.end();
  }

  #pump(): void {
    while (!this.#busy && this.#mode !== 'closed') {
      if (this.#mode === 'data') {
        const chunk = this.#inbox.shift();
        if (chunk === undefined) return;
        this.#feedData(chunk);
        continue;
      }
      const line = this.#nextLine();
      if (line === undefined) return;
      this.#command(line);
    }
  }

  #nextLine(): string | undefined {
    let searchFrom = 0;
    let lf = this.#commandBuffer.indexOf(LF);
    while (lf === -1) {
      const chunk = this.#inbox.shift();
      if (chunk === undefined) return undefined;
      searchFrom = this.#commandBuffer.length;
      this.#commandBuffer =
        this.#commandBuffer.length === 0 ? chunk : Buffer.concat([this.#commandBuffer, chunk]);
      lf = this.#commandBuffer.indexOf(LF, searchFrom);
    }
    // A bare LF ends a command line too; strip the CR when the client sent a proper CRLF.
    const end = lf > 0 && this.#commandBuffer[lf - 1] === CR ? lf - 1 : lf;
    const line = this.#commandBuffer.subarray(0, end).toString('utf8');
    this.#commandBuffer = this.#commandBuffer.subarray(lf + 1);
    return line;
  }

  #command(line: string): void {
    const reply = this.#dispatch(line);
    if (reply !== undefined) this.#reply(reply);
  }

  /** Returns the reply to send, or undefined when the handler already answered (and closed). */
  #dispatch(line: string): string | undefined {
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const args = space === -1 ? '' : line.slice(space + 1).trim();
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        if (args === '') return `501 5.5.4 syntax: ${verb} domain`;
        this.#helo = args;
        this.#resetTransaction();
        if (verb === 'HELO') return `250 ${this.#state.hostname}`;
        return [
          `250-${this.#state.hostname} greets ${args}`,
          '250-PIPELINING',
          '250-8BITMIME',
          `250-SIZE ${MAX_SIZE}`,
          ...(this.#state.smtputf8
            ? ['250-ENHANCEDSTATUSCODES', '250 SMTPUTF8']
            : ['250 ENHANCEDSTATUSCODES']),
        ].join('\r\n');
      case 'MAIL':
        return this.#mail(args);
      case 'RCPT':
        return this.#rcpt(args);
      case 'DATA':
        return this.#data(args);
      case 'RSET':
        this.#resetTransaction();
        return '250 2.0.0 ok';
      case 'NOOP':
        return '250 2.0.0 ok';
      case 'QUIT':
        this.#quit('221 2.0.0 bye');
        return undefined;
      case 'VRFY':
      case 'EXPN':
      case 'HELP':
      case 'STARTTLS':
      case 'AUTH':
      case 'BDAT':
        return '502 5.5.1 not implemented';
      default:
        return '500 5.5.2 unrecognised';
    }
  }

  #mail(args: string): string {
    if (this.#helo === '' || this.#mailFrom !== undefined) return '503 5.5.1 bad sequence';
    const parsed = parsePath(args, /^FROM:\s*/i);
    if (parsed === undefined) return '501 5.5.4 syntax: MAIL FROM:<address>';
    const size = parsed.params.find((p) => p.toUpperCase().startsWith('SIZE='));
    if (size !== undefined && Number(size.slice(5)) > MAX_SIZE)
      return '552 5.3.4 message size exceeds fixed maximum';
    this.#mailFrom = parsed.address;
    this.#mailParams = parsed.params;
    return '250 2.1.0 ok';
  }

  #rcpt(args: string): string | undefined {
    if (this.#mailFrom === undefined) return '503 5.5.1 bad sequence';
    const parsed = parsePath(args, /^TO:\s*/i);
    if (parsed === undefined || parsed.address === '') return '501 5.5.4 syntax: RCPT TO:<address>';
    const recipient = parsed.address;
    let behaviour: SinkBehaviour;
    try {
      behaviour = this.#state.behaviour(recipient);
    } catch (err) {
      // A throwing test script must surface as an SMTP error, not crash the process.
      return `451 4.3.0 sink behaviour failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    switch (behaviour.kind) {
      case 'tempfail':
      case 'permfail': {
        const { code, line } =
          behaviour.kind === 'tempfail'
            ? failureLine(behaviour.code, behaviour.text, 450, '4.2.0', 'mailbox temporarily unavailable')
            : failureLine(behaviour.code, behaviour.text, 550, '5.1.1', 'no such user');
        this.#state.rejectedRecipients.push({ recipient, code });
        return line;
      }
      case 'close421':
        this.#state.rejectedRecipients.push({ recipient, code: 421 });
        this.#quit(`421 4.3.2 ${this.#state.hostname} closing connection`);
        return undefined;
      default:
        this.#rcptTo.push(recipient);
        if (this.#dataBehaviour === undefined && isDataBehaviour(behaviour)) this.#dataBehaviour = behaviour;
        return '250 2.1.5 ok';
    }
  }

  #data(args: string): string {
    if (args !== '') return '501 5.5.4 syntax: DATA';
    if (this.#mailFrom === undefined) return '503 5.5.1 bad sequence';
    if (this.#rcptTo.length === 0) return '554 5.5.1 no valid recipients';
    this.#mode = 'data';
    this.#dataState = 'lineStart';
    this.#dataChunks = [];
    // Bytes already read past "DATA\r\n" belong to the body.
    if (this.#commandBuffer.length > 0) {
      this.#inbox.unshift(this.#commandBuffer);
      this.#commandBuffer = EMPTY;
    }
    return '354 end data with <CR><LF>.<CR><LF>';
  }

  #feedData(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#dataBehaviour?.kind === 'disconnectInData') {
      this.#stop();
      this.#socket.destroy();
      return;
    }
    const end = this.#scanData(chunk);
    if (end === -1) return;
    if (end < chunk.length) this.#inbox.unshift(chunk.subarray(end));
    this.#mode = 'command';
    this.#endOfData();
  }

  /**
   * Appends unstuffed body bytes and returns the index just past the terminating ".\r\n", or -1.
   * A small state machine carries line-start / dot / CR state across chunks, so the terminator is
   * found however TCP splits it, and body bytes are kept as slices rather than copied per chunk.
   */
  #scanData(chunk: Buffer): number {
    let state = this.#dataState;
    let segmentStart = 0;
    let i = 0;
    while (i < chunk.length) {
      const b = chunk[i];
      switch (state) {
        case 'body': {
          const cr = chunk.indexOf(CR, i);
          if (cr === -1) {
            i = chunk.length;
          } else {
            state = 'cr';
            i = cr + 1;
          }
          break;
        }
        case 'cr':
          if (b === LF) state = 'lineStart';
          else if (b !== CR) state = 'body';
          i++;
          break;
        case 'lineStart':
          if (b === DOT) {
            // Drop the (stuffing or terminating) dot; what follows decides which it was.
            if (i > segmentStart) this.#dataChunks.push(chunk.subarray(segmentStart, i));
            segmentStart = i + 1;
            state = 'dot';
          } else {
            state = b === CR ? 'cr' : 'body';
          }
          i++;
          break;
        case 'dot':
          if (b === CR) {
            // Hold the CR back: it is part of the terminator if an LF follows.
            segmentStart = i + 1;
            state = 'dotCr';
            i++;
          } else {
            state = 'body';
          }
          break;
        case 'dotCr':
          if (b === LF) {
            this.#dataState = 'lineStart';
            return i + 1;
          }
          this.#dataChunks.push(CR_BUFFER);
          state = 'body';
          break;
      }
    }
    if (segmentStart < chunk.length) this.#dataChunks.push(chunk.subarray(segmentStart));
    this.#dataState = state;
    return -1;
  }

  #endOfData(): void {
    const behaviour = this.#dataBehaviour;
    if (behaviour?.kind === 'slow') {
      this.#acceptLater(performance.now() + behaviour.delayMs);
    } else if (behaviour?.kind === 'dataTempfail') {
      this.#reply(failureLine(behaviour.code, behaviour.text, 451, '4.3.0', 'temporary failure').line);
      this.#resetTransaction();
    } else if (behaviour?.kind === 'dataPermfail') {
      this.#reply(failureLine(behaviour.code, behaviour.text, 554, '5.6.0', 'message rejected').line);
      this.#resetTransaction();
    } else {
      this.#accept();
    }
  }

  /**
   * Holds the reply until the deadline. setTimeout may fire a fraction of a millisecond early by
   * performance.now(), so re-arm until the full delay has really passed; tests assert elapsed >= delay.
   */
  #acceptLater(deadline: number): void {
    this.#busy = true;
    const remaining = deadline - performance.now();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#mode === 'closed') return;
        if (performance.now() < deadline) {
          this.#acceptLater(deadline);
          return;
        }
        this.#busy = false;
        this.#accept();
        this.#pump();
      },
      Math.max(0, Math.ceil(remaining)),
    );
  }

  #accept(): void {
    const message: ReceivedMessage = {
      mailFrom: this.#mailFrom ?? '',
      mailParams: this.#mailParams,
      rcptTo: this.#rcptTo,
      data: Buffer.concat(this.#dataChunks),
      helo: this.#helo,
      connectionId: this.#id,
      receivedAt: new Date(),
    };
    this.#state.queued++;
    // Recorded only when the 2xx is actually sent: the reply is the commit point a client relies on.
    this.#state.messages.push(message);
    this.#state.onMessage?.(message);
    this.#reply(`250 2.0.0 queued as ${this.#state.queued}`);
    this.#resetTransaction();
  }
}

export async function startSmtpSink(options: SinkOptions = {}): Promise<SmtpSink> {
  const host = options.host ?? '127.0.0.1';
  const state: SinkState = {
    hostname: options.hostname ?? 'sink.test',
    smtputf8: options.noSmtpUtf8 !== true,
    behaviour: options.behaviour ?? behaviourByLocalPart,
    messages: [],
    rejectedRecipients: [],
    queued: 0,
    onMessage: options.onMessage,
  };
  const sessions = new Set<Session>();
  let connections = 0;
  let closing: Promise<void> | undefined;

  const server: Server = createServer((socket) => {
    if (closing !== undefined) {
      socket.destroy();
      return;
    }
    connections++;
    const session = new Session(socket, state, connections);
    sessions.add(session);
    socket.on('close', () => sessions.delete(session));
  });
  server.listen(options.port ?? 0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  return {
    host,
    port,
    address: `${host}:${port}`,
    get messages() {
      return state.messages;
    },
    get connections() {
      return connections;
    },
    get held() {
      return [...sessions].filter((s) => s.holding).length;
    },
    get rejectedRecipients() {
      return state.rejectedRecipients;
    },
    setBehaviour(fn) {
      state.behaviour = fn;
    },
    messagesTo(recipient) {
      return state.messages.filter((m) => m.rcptTo.includes(recipient));
    },
    clear() {
      state.messages.length = 0;
      state.rejectedRecipients.length = 0;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // server.close() only calls back once every connection is gone, so destroy them all.
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      });
      return closing;
    },
  };
}
