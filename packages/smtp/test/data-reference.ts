import { MAX_TEXT_LINE } from '../src/codes.ts';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

const State = { LineStart: 0, Mid: 1, Cr: 2, Dot: 3, DotCr: 4 } as const;
type State = (typeof State)[keyof typeof State];

interface DataDecoderOptions {
  /** Octets of message data kept; beyond it the message is marked oversized (RFC 1870). */
  maxSize: number;
  maxLineLength?: number;
}

/** What was wrong with a message body, decided once the terminator arrived. */
interface DataProblems {
  oversized: boolean;
  bareLf: boolean;
  bareCr: boolean;
  longLine: boolean;
}

/**
 * The first, octet-by-octet DATA decoder, kept as the oracle for the differential test of the
 * indexOf-based DataDecoder. Streaming decoder for the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): finds the end of data,
 * which is only ever <CRLF>.<CRLF> (the CRLF before the dot belongs to the message), removes
 * dot-stuffing, and records bare CR / bare LF (SMTP smuggling vectors), over-long lines and
 * oversize — whatever the TCP segmentation. Output buffers are views of the input chunks.
 */
export class ReferenceDecoder {
  readonly #maxSize: number;
  readonly #maxLine: number;
  #state: State = State.LineStart;
  #lineLength = 0;
  #size = 0;
  /** A CR seen after a leading dot at the very end of the previous chunk, not yet emitted. */
  #heldCr = false;
  readonly #parts: Buffer[] = [];
  readonly problems: DataProblems = { oversized: false, bareLf: false, bareCr: false, longLine: false };
  done = false;

  constructor(options: DataDecoderOptions) {
    this.#maxSize = options.maxSize;
    this.#maxLine = options.maxLineLength ?? MAX_TEXT_LINE;
  }

  /** Octets of message data seen so far (also beyond maxSize). */
  get size(): number {
    return this.#size;
  }

  /** The message (valid once done; empty parts dropped when oversized). */
  body(): Buffer {
    return Buffer.concat(this.#parts, Math.min(this.#size, this.#maxSize));
  }

  #emit(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.#size += end - start;
    if (this.#size > this.#maxSize) {
      this.problems.oversized = true;
      return;
    }
    this.#parts.push(start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end));
  }

  #releaseHeldCr(): void {
    if (!this.#heldCr) return;
    this.#heldCr = false;
    this.#emit(CR_BUFFER, 0, 1);
  }

  /**
   * Feeds one chunk. Returns the number of octets consumed: the whole chunk, or (once the
   * terminator was found) the octets up to and including it; the rest belongs to the next command.
   */
  push(chunk: Buffer): number {
    let runStart = 0;
    let state = this.#state;
    let lineLength = this.#lineLength;
    const maxLine = this.#maxLine;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      switch (state) {
        case State.LineStart:
          if (b === DOT) {
            // Tentatively drop the dot: either dot-stuffing or the start of the terminator.
            this.#emit(chunk, runStart, i);
            runStart = i + 1;
            state = State.Dot;
            continue;
          }
          break;
        case State.Dot:
          if (b === CR) {
            state = State.DotCr;
            continue;
          }
          break;
        case State.DotCr:
          if (b === LF) {
            // <CRLF>.<CRLF>: the dot and its CRLF are not message data.
            this.#heldCr = false;
            this.#state = State.LineStart;
            this.#lineLength = 0;
            this.done = true;
            return i + 1;
          }
          // ".<CR>x": a bare CR after a leading dot; the CR is data.
          this.#releaseHeldCr();
          this.problems.bareCr = true;
          state = State.Mid;
          lineLength = 1;
          break;
        case State.Cr:
          if (b === LF) {
            state = State.LineStart;
            lineLength = 0;
            continue;
          }
          this.problems.bareCr = true;
          if (++lineLength > maxLine) this.problems.longLine = true; // the bare CR is an octet of the line
          state = State.Mid;
          break;
        case State.Mid:
          break;
      }
      // Ordinary position inside a line.
      if (b === CR) {
        state = State.Cr;
      } else if (b === LF) {
        // A bare LF never starts a line: a following "." cannot end the data (smuggling).
        this.problems.bareLf = true;
        state = State.Mid;
        lineLength = 0;
      } else {
        state = State.Mid;
        if (++lineLength > maxLine) this.problems.longLine = true;
      }
    }
    if (state === State.DotCr && runStart < chunk.length) {
      // The CR after a leading dot is the last octet: hold it until we know whether LF follows.
      this.#emit(chunk, runStart, chunk.length - 1);
      this.#heldCr = true;
    } else {
      this.#emit(chunk, runStart, chunk.length);
    }
    this.#state = state;
    this.#lineLength = lineLength;
    return chunk.length;
  }
}

const CR_BUFFER = Buffer.from([CR]);
