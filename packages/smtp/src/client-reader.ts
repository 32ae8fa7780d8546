import type { Duplex } from 'node:stream';
import { type ClientPhase, SmtpClientError, SmtpClientErrorCode } from './client-errors.ts';
import { InputReader } from './reader.ts';
import { parseReplyLines, type Reply } from './reply.ts';

const REPLY_LINE = /^([2-5]\d\d)([ -]|$)/;

export interface ReplyLimits {
  /** Octets of one reply line including CRLF (RFC 5321 §4.5.3.1.5 says 512; we allow more). */
  readonly maxLineLength: number;
  /** Lines of one multi-line reply. */
  readonly maxLines: number;
}

export const DEFAULT_REPLY_LIMITS: ReplyLimits = { maxLineLength: 4096, maxLines: 256 };

/**
 * Reads whole replies (RFC 5321 §4.2.1) from the server, one at a time and strictly in order,
 * over the engine's InputReader. Memory is bounded: a line longer than the limit, or a reply with
 * more lines than the limit, fails at once with a protocol error, without waiting for its end; a
 * reply that does not come complete within the phase's timeout fails with a timeout error,
 * however slowly it drips in.
 */
export class ReplyReader {
  readonly #input: InputReader;
  readonly #limits: ReplyLimits;

  constructor(socket: Duplex, limits: ReplyLimits) {
    this.#limits = limits;
    this.#input = new InputReader(socket);
  }

  /** Reads from a (new) socket: the TLS socket after STARTTLS. */
  attach(socket: Duplex): void {
    this.#input.attach(socket);
  }

  detach(): void {
    this.#input.detach();
  }

  /** Octets received and not yet read as a reply. */
  get buffered(): number {
    return this.#input.buffered;
  }

  /** Drops buffered input (anything after the 220 to STARTTLS arrived in clear: RFC 3207 §5). */
  discard(): void {
    this.#input.discard();
  }

  /** Reads one whole reply within timeoutMs. */
  async read(phase: ClientPhase, timeoutMs: number): Promise<Reply> {
    const fail = (code: SmtpClientErrorCode, message: string) =>
      new SmtpClientError(code, message, { phase });
    const deadline = performance.now() + timeoutMs;
    const lines: string[] = [];
    let code: string | undefined;
    for (;;) {
      const next = await this.#input.nextLine(this.#limits.maxLineLength, { deadline, failFast: true });
      if (next.kind === 'aborted') {
        throw fail(SmtpClientErrorCode.Timeout, `no complete reply within ${timeoutMs} ms (${phase})`);
      }
      if (next.kind === 'eof') {
        throw fail(
          SmtpClientErrorCode.ConnectionLost,
          `connection closed while waiting for a reply (${phase})`,
        );
      }
      if (next.kind === 'overflow') {
        throw fail(
          SmtpClientErrorCode.Protocol,
          `reply line longer than ${this.#limits.maxLineLength} octets (${phase})`,
        );
      }
      const text = next.line.toString('utf8');
      const m = REPLY_LINE.exec(text);
      if (m === null) throw fail(SmtpClientErrorCode.Protocol, `malformed reply: ${text.slice(0, 200)}`);
      if (code !== undefined && m[1] !== code) {
        throw fail(
          SmtpClientErrorCode.Protocol,
          `reply code changes within a multi-line reply: ${code} then ${m[1]}`,
        );
      }
      code = m[1];
      lines.push(text);
      if (m[2] !== '-') break;
      if (lines.length >= this.#limits.maxLines) {
        throw fail(SmtpClientErrorCode.Protocol, `reply of more than ${this.#limits.maxLines} lines`);
      }
    }
    const r = parseReplyLines(lines);
    if (r === undefined) throw fail(SmtpClientErrorCode.Protocol, `malformed reply: ${lines.join(' | ')}`);
    return r;
  }
}
