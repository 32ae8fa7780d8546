import type { Duplex } from 'node:stream';
import type { DataDecoder } from './data.ts';

const LF = 0x0a;

export type LineResult =
  | { readonly kind: 'line'; readonly line: Buffer }
  /** A line longer than the limit; it was read to its end and discarded, never interpreted. */
  | { readonly kind: 'overflow' }
  | { readonly kind: 'eof' }
  /** The deadline given to nextLine passed first. */
  | { readonly kind: 'aborted' };

export interface LineOptions {
  /**
   * Stops waiting at this time (performance.now()), a deadline that a slow drip of octets does not
   * extend. A plain timer, armed only when there is something to wait for: an AbortSignal.timeout
   * per reply was ~2 % of the delivery worker's CPU.
   */
  readonly deadline?: number;
  /** Report an over-long line as soon as it is too long, not at its end (a client facing a hostile server). */
  readonly failFast?: boolean;
}

export interface InputOptions {
  /** Stop reading from the socket while this many octets are buffered (backpressure). */
  highWaterMark?: number;
}

/**
 * Pull-based reader over a socket: the session asks for the next command line or for the
 * DATA body only when it is ready for it, so pipelined input (RFC 2920) is never split into
 * commands ahead of a mode change (DATA, BDAT, STARTTLS).
 */
export class InputReader {
  #socket: Duplex | undefined;
  #chunks: Buffer[] = [];
  #length = 0;
  #ended = false;
  #paused = false;
  #skipping = false;
  #wake: (() => void) | undefined;
  readonly #highWaterMark: number;
  /** Called each time the reader is about to wait for the peer (the session flushes replies). */
  beforeWait: (() => void) | undefined;
  /** Called with the number of octets of every chunk that arrives (timeouts, slow-drip checks). */
  onBytes: ((n: number) => void) | undefined;
  readonly #onData = (chunk: Buffer): void => {
    this.onBytes?.(chunk.length);
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length > this.#highWaterMark && !this.#paused) {
      this.#paused = true;
      this.#socket?.pause();
    }
    this.#notify();
  };
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify();
  };

  constructor(socket: Duplex, options: InputOptions = {}) {
    this.#highWaterMark = options.highWaterMark ?? 256 * 1024;
    this.attach(socket);
  }

  /** Reads from a (new) socket, e.g. the TLS socket after STARTTLS. */
  attach(socket: Duplex): void {
    this.detach();
    this.#socket = socket;
    this.#ended = false;
    this.#paused = false;
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

  /** Drops everything buffered (plaintext pipelined after STARTTLS must never be run). */
  discard(): void {
    this.#chunks = [];
    this.#length = 0;
  }

  /** Makes pending and later reads see the end of input (e.g. on shutdown). */
  end(): void {
    this.#onEnd();
  }

  get buffered(): number {
    return this.#length;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #more(deadline?: number): Promise<boolean> {
    if (this.#ended) return false;
    this.#resumeIfDrained();
    this.beforeWait?.();
    // The hook may have ended the input (e.g. a write error).
    if (this.#ended) return false;
    if (deadline === undefined) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      return true;
    }
    const ms = deadline - performance.now();
    if (ms <= 0) return true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(() => this.#notify(), Math.ceil(ms));
      });
    } finally {
      clearTimeout(timer);
    }
    return true;
  }

  #resumeIfDrained(): void {
    if (this.#paused && this.#length <= this.#highWaterMark / 2) {
      this.#paused = false;
      this.#socket?.resume();
    }
  }

  #take(n: number): Buffer {
    const all =
      this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    return out;
  }

  /** Next line without its LF (and CR). Lines longer than maxLength (with CRLF) are discarded whole. */
  async nextLine(maxLength: number, options: LineOptions = {}): Promise<LineResult> {
    for (;;) {
      if (this.#length > 0) {
        const joined = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
        this.#chunks = [joined];
        const lf = joined.indexOf(LF);
        if (lf !== -1) {
          const raw = this.#take(lf + 1);
          if (this.#skipping || raw.length > maxLength) {
            this.#skipping = false;
            return { kind: 'overflow' };
          }
          const end = raw.length >= 2 && raw[raw.length - 2] === 0x0d ? raw.length - 2 : raw.length - 1;
          return { kind: 'line', line: raw.subarray(0, end) };
        }
        if (joined.length > maxLength) {
          // Keep no part of an over-long line: skip to its end.
          this.#skipping = true;
          this.discard();
          if (options.failFast === true) return { kind: 'overflow' };
        }
      }
      if (options.deadline !== undefined && performance.now() >= options.deadline) return { kind: 'aborted' };
      if (!(await this.#more(options.deadline))) return { kind: 'eof' };
    }
  }

  /**
   * Reads a header that precedes the protocol (PROXY): `parse` is called with everything buffered
   * until it returns a result other than need-more; the consumed octets are removed.
   */
  async readPrefix<T extends { kind: string; consumed?: number }>(
    parse: (buffer: Buffer) => T,
  ): Promise<T | undefined> {
    for (;;) {
      if (this.#length > 0) {
        const joined = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
        this.#chunks = [joined];
        const result = parse(joined);
        if (result.kind !== 'need-more') {
          if (result.consumed !== undefined) this.#take(result.consumed);
          return result;
        }
      }
      if (!(await this.#more())) return undefined;
    }
  }

  /** Passes exactly n octets (BDAT chunk, RFC 3030) to sink as they arrive. */
  async readExact(n: number, sink: (chunk: Buffer) => void): Promise<'done' | 'eof'> {
    let left = n;
    for (;;) {
      while (left > 0 && this.#chunks.length > 0) {
        const chunk = this.#chunks.shift() as Buffer;
        if (chunk.length <= left) {
          this.#length -= chunk.length;
          left -= chunk.length;
          sink(chunk);
        } else {
          sink(chunk.subarray(0, left));
          const rest = chunk.subarray(left);
          this.#chunks.unshift(rest);
          this.#length -= left;
          left = 0;
        }
      }
      if (left === 0) {
        this.#resumeIfDrained();
        return 'done';
      }
      if (!(await this.#more())) return 'eof';
    }
  }

  /** Feeds buffered and incoming octets to the decoder until the end of data. */
  async readData(decoder: DataDecoder): Promise<'done' | 'eof'> {
    for (;;) {
      while (this.#chunks.length > 0) {
        const chunk = this.#chunks.shift() as Buffer;
        this.#length -= chunk.length;
        const used = decoder.push(chunk);
        if (decoder.done) {
          if (used < chunk.length) {
            const rest = chunk.subarray(used);
            this.#chunks.unshift(rest);
            this.#length += rest.length;
          }
          this.#resumeIfDrained();
          return 'done';
        }
      }
      if (!(await this.#more())) return 'eof';
    }
  }
}
