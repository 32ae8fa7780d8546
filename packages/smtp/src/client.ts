import { connect as netConnect, type Socket } from 'node:net';
import { dotStuff } from './data.ts';
import { InputReader } from './reader.ts';
import { parseReplyLines, type Reply } from './reply.ts';

/** Stable codes of client-side failures (a reply from the server is not a failure). */
export const SmtpClientErrorCode = {
  Connect: 'PETREL_ERR_SMTP_CONNECT',
  Timeout: 'PETREL_ERR_SMTP_TIMEOUT',
  ConnectionLost: 'PETREL_ERR_SMTP_CONNECTION_LOST',
  Protocol: 'PETREL_ERR_SMTP_PROTOCOL',
  Rejected: 'PETREL_ERR_SMTP_REJECTED',
} as const;
export type SmtpClientErrorCode = (typeof SmtpClientErrorCode)[keyof typeof SmtpClientErrorCode];

export class SmtpClientError extends Error {
  readonly code: SmtpClientErrorCode;
  /** The server's reply, when the failure is a reply at the connection level (greeting, EHLO, MAIL). */
  readonly reply: Reply | undefined;
  constructor(code: SmtpClientErrorCode, message: string, options?: ErrorOptions & { reply?: Reply }) {
    super(message, options);
    this.name = 'SmtpClientError';
    this.code = code;
    this.reply = options?.reply;
  }
}

export interface ClientOptions {
  host: string;
  port: number;
  /** Our name for EHLO. */
  localName: string;
  /** RFC 5321 §4.5.3.2: the initial 220 (5 min); we use one bound for connect and each reply. */
  timeoutMs?: number;
}

export interface RecipientResult {
  readonly address: string;
  readonly reply: Reply;
}

export interface SendResult {
  readonly accepted: RecipientResult[];
  readonly rejected: RecipientResult[];
  /** The reply to MAIL FROM when it was refused (then every recipient is in rejected). */
  readonly mailReply: Reply;
  /** The reply to the final dot; undefined when no recipient was accepted. */
  readonly dataReply: Reply | undefined;
}

const MAX_REPLY_LINE = 4096;

/** An SMTP client connection (RFC 5321 §3, RFC 2920 pipelining when offered). */
export class SmtpClient {
  readonly #socket: Socket;
  readonly #reader: InputReader;
  readonly #timeoutMs: number;
  readonly extensions = new Map<string, string>();
  readonly remoteAddress: string;

  private constructor(socket: Socket, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    this.#reader = new InputReader(socket);
    this.remoteAddress = socket.remoteAddress ?? '';
  }

  static async connect(options: ClientOptions): Promise<SmtpClient> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: options.host, port: options.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(
          new SmtpClientError(
            SmtpClientErrorCode.Timeout,
            `connect to ${options.host}:${options.port} timed out`,
          ),
        );
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (error) => {
        clearTimeout(timer);
        reject(
          new SmtpClientError(
            SmtpClientErrorCode.Connect,
            `connect to ${options.host}:${options.port}: ${error.message}`,
            {
              cause: error,
            },
          ),
        );
      });
    });
    socket.on('error', () => socket.destroy());
    const client = new SmtpClient(socket, timeoutMs);
    try {
      const greeting = await client.#readReply();
      if (greeting.code !== 220) {
        throw new SmtpClientError(
          SmtpClientErrorCode.Rejected,
          `greeting: ${greeting.code} ${greeting.lines.join(' ')}`,
          {
            reply: greeting,
          },
        );
      }
      await client.#hello(options.localName);
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  async #hello(localName: string): Promise<void> {
    let r = await this.#command(`EHLO ${localName}`);
    if (r.code === 250) {
      for (const line of r.lines.slice(1)) {
        const [keyword = '', ...rest] = line.split(' ');
        this.extensions.set(keyword.toUpperCase(), rest.join(' '));
      }
      return;
    }
    r = await this.#command(`HELO ${localName}`);
    if (r.code !== 250) {
      throw new SmtpClientError(SmtpClientErrorCode.Rejected, `HELO: ${r.code} ${r.lines.join(' ')}`, {
        reply: r,
      });
    }
  }

  async #readReply(): Promise<Reply> {
    const lines: string[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#socket.destroy();
    }, this.#timeoutMs);
    try {
      for (;;) {
        const next = await this.#reader.nextLine(MAX_REPLY_LINE);
        if (next.kind === 'eof') {
          if (timedOut) {
            throw new SmtpClientError(SmtpClientErrorCode.Timeout, `no reply within ${this.#timeoutMs} ms`);
          }
          throw new SmtpClientError(
            SmtpClientErrorCode.ConnectionLost,
            'connection closed while waiting for a reply',
          );
        }
        if (next.kind === 'overflow')
          throw new SmtpClientError(SmtpClientErrorCode.Protocol, 'reply line too long');
        const text = next.line.toString('utf8');
        lines.push(text);
        if (text.length < 4 || text[3] === ' ') break;
        if (text[3] !== '-')
          throw new SmtpClientError(SmtpClientErrorCode.Protocol, `malformed reply: ${text}`);
      }
    } finally {
      clearTimeout(timer);
    }
    const r = parseReplyLines(lines);
    if (r === undefined)
      throw new SmtpClientError(SmtpClientErrorCode.Protocol, `malformed reply: ${lines.join(' | ')}`);
    return r;
  }

  #write(text: string | Buffer): void {
    this.#socket.write(text);
  }

  async #command(line: string): Promise<Reply> {
    this.#write(`${line}\r\n`);
    return await this.#readReply();
  }

  /**
   * One mail transaction. Per-recipient replies are returned, not thrown; only connection-level
   * failures throw. The message must use CRLF line endings.
   */
  async send(
    envelope: { from: string; to: readonly string[]; mailParams?: readonly string[] },
    message: Buffer,
  ): Promise<SendResult> {
    const params = [...(envelope.mailParams ?? [])];
    if (this.extensions.has('SIZE')) params.push(`SIZE=${message.length}`);
    const mail = `MAIL FROM:<${envelope.from}>${params.length > 0 ? ` ${params.join(' ')}` : ''}`;
    const rcpts = envelope.to.map((to) => `RCPT TO:<${to}>`);
    const accepted: RecipientResult[] = [];
    const rejected: RecipientResult[] = [];
    let mailReply: Reply;
    let dataStart: Reply | undefined;

    if (this.extensions.has('PIPELINING')) {
      // RFC 2920 §3.1: MAIL, RCPTs and DATA in one go; replies come back in order.
      this.#write(`${[mail, ...rcpts, 'DATA'].join('\r\n')}\r\n`);
      mailReply = await this.#readReply();
      for (const to of envelope.to) {
        const r = await this.#readReply();
        (r.code >= 200 && r.code < 300 && mailReply.code === 250 ? accepted : rejected).push({
          address: to,
          reply: r,
        });
      }
      dataStart = await this.#readReply();
      if (dataStart.code === 354 && accepted.length === 0) {
        // The server took DATA although nothing was accepted: end it empty and discard.
        this.#write('.\r\n');
        await this.#readReply();
        await this.#command('RSET');
        dataStart = undefined;
      }
    } else {
      mailReply = await this.#command(mail);
      if (mailReply.code === 250) {
        for (const to of envelope.to) {
          const r = await this.#command(`RCPT TO:<${to}>`);
          (r.code >= 200 && r.code < 300 ? accepted : rejected).push({ address: to, reply: r });
        }
        if (accepted.length > 0) dataStart = await this.#command('DATA');
      }
    }

    if (mailReply.code !== 250) {
      const refused = envelope.to.map((address) => ({ address, reply: mailReply }));
      if (this.extensions.has('PIPELINING')) rejected.splice(0, rejected.length, ...refused);
      else rejected.push(...refused);
      await this.#command('RSET').catch(() => undefined);
      return { accepted: [], rejected, mailReply, dataReply: undefined };
    }
    if (accepted.length === 0 || dataStart === undefined) {
      // The accepted MAIL opened a transaction on the server: close it, unless the pipelined
      // path above already did (dataStart cleared after its RSET).
      if (!this.extensions.has('PIPELINING') || dataStart !== undefined) await this.#command('RSET');
      return { accepted: [], rejected, mailReply, dataReply: undefined };
    }
    if (dataStart.code !== 354) {
      await this.#command('RSET').catch(() => undefined);
      return {
        accepted: [],
        rejected: [...rejected, ...accepted.map((a) => ({ address: a.address, reply: dataStart }))],
        mailReply,
        dataReply: dataStart,
      };
    }
    this.#write(dotStuff(message));
    const dataReply = await this.#readReply();
    return { accepted, rejected, mailReply, dataReply };
  }

  async quit(): Promise<void> {
    try {
      await this.#command('QUIT');
    } catch {
      // The server may close first; QUIT is a courtesy.
    } finally {
      this.close();
    }
  }

  close(): void {
    this.#reader.detach();
    this.#socket.destroy();
  }
}
