import type { Duplex } from 'node:stream';
import { type ClientPhase, SmtpClientError, SmtpClientErrorCode } from './client-errors.ts';
import { parseReplyLines, type Reply } from './reply.ts';

const LF = 0x0a;
const REPLY_LINE = /^([2-5]\d\d)([ -]|$)/;

export interface ReplyLimits {
  /** Octets of one reply line including CRLF (RFC 5321 §4.5.3.1.5 says 512; we allow more). */
  readonly maxLineLength: number;
  /** Lines of one multi-line reply. */
  readonly maxLines: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = { maxLineLength: 4096, maxLines: 256 };

/**
 * Reads whole replies (RFC 5321 §4.2.1) from the server, one at a time and strictly in order.
 * Memory is bounded: a line longer than the limit, or a reply with more lines than the limit,
 * fails at once with a protocol error, without waiting for its end; a reply that does not come
 * complete within the phase's timeout fails with a timeout error, however slowly it drips in.
 */
export class ReplyReader {
  #socket: Duplex | undefined;
  #chunks: Buffer[] = [];
  #length = 0;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #limits: ReplyLimits;
  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    this.#notify();
  };
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify();
  };

  constructor(socket: Duplex, limits: ReplyLimits) {
    this.#limits = limits;
    this.attach(socket);
  }

  /** Reads from a (new) socket: the TLS socket after STARTTLS. */
  attach(socket: Duplex): void {
    this.detach();
    this.#socket = socket;
    this.#ended = false;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
  }

  detach(): void {
    const socket = this.#socket;
    if (!socket) return;
    socket.off('data', this.#onData);
    socket.off('end', this.#onEnd);
    socket.off('close', this.#onEnd);
    this.#socket = undefined;
  }

  /** Octets received and not yet read as a reply. */
  get buffered(): number {
    return this.#length;
  }

  /** Drops buffered input (anything after the 220 to STARTTLS arrived in clear: RFC 3207 §5). */
  discard(): void {
    this.#chunks = [];
    this.#length = 0;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next complete line (without CRLF), undefined when incomplete; a protocol error when too long. */
  #takeLine(phase: ClientPhase): Buffer | undefined {
    if (this.#length === 0) return undefined;
    const joined = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    this.#chunks = [joined];
    const lf = joined.indexOf(LF);
    const limit = this.#limits.maxLineLength;
    if (lf === -1 ? joined.length > limit : lf + 1 > limit) {
      throw new SmtpClientError(
        SmtpClientErrorCode.Protocol,
        `reply line longer than ${limit} octets (${phase})`,
        { phase },
      );
    }
    if (lf === -1) return undefined;
    const line = joined.subarray(0, lf + 1);
    const rest = joined.subarray(lf + 1);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    const end = line.length >= 2 && line[line.length - 2] === 0x0d ? line.length - 2 : line.length - 1;
    return line.subarray(0, end);
  }

  /** Reads one whole reply within timeoutMs. */
  async read(phase: ClientPhase, timeoutMs: number): Promise<Reply> {
    const lines: string[] = [];
    let code: string | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#notify();
    }, timeoutMs);
    try {
      for (;;) {
        const raw = this.#takeLine(phase);
        if (raw === undefined) {
          if (timedOut) {
            throw new SmtpClientError(
              SmtpClientErrorCode.Timeout,
              `no complete reply within ${timeoutMs} ms (${phase})`,
              { phase },
            );
          }
          if (this.#ended) {
            throw new SmtpClientError(
              SmtpClientErrorCode.ConnectionLost,
              `connection closed while waiting for a reply (${phase})`,
              { phase },
            );
          }
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
          });
          continue;
        }
        const text = raw.toString('utf8');
        const m = REPLY_LINE.exec(text);
        if (m === null) {
          throw new SmtpClientError(SmtpClientErrorCode.Protocol, `malformed reply: ${text.slice(0, 200)}`, {
            phase,
          });
        }
        if (code !== undefined && m[1] !== code) {
          throw new SmtpClientError(
            SmtpClientErrorCode.Protocol,
            `reply code changes within a multi-line reply: ${code} then ${m[1]}`,
            { phase },
          );
        }
        code = m[1];
        lines.push(text);
        if (m[2] !== '-') break;
        if (lines.length >= this.#limits.maxLines) {
          throw new SmtpClientError(
            SmtpClientErrorCode.Protocol,
            `reply of more than ${this.#limits.maxLines} lines`,
            { phase },
          );
        }
      }
    } finally {
      clearTimeout(timer);
      this.#wake = undefined;
    }
    const r = parseReplyLines(lines);
    if (r === undefined) {
      throw new SmtpClientError(SmtpClientErrorCode.Protocol, `malformed reply: ${lines.join(' | ')}`, {
        phase,
      });
    }
    return r;
  }
}
