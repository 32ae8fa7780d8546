import { MAX_TEXT_LINE } from './codes.ts';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

const State = {
  /** After CRLF (or at the start): a dot here is stuffing or the terminator. */
  LineStart: 0,
  /** Inside a line. */
  Mid: 1,
  /** The previous octet was a CR inside a line (the previous chunk ended with it). */
  Cr: 2,
  /** A dot at the line start was seen (and dropped). */
  Dot: 3,
  /** Dot then CR at the line start; the CR is held back until we know whether LF follows. */
  DotCr: 4,
} as const;
type State = (typeof State)[keyof typeof State];

/** What to do with bare CR / bare LF in message data (SMTP smuggling vectors). */
export type BareLineEndings = 'reject' | 'normalize';

export interface DataDecoderOptions {
  /** Octets of message data kept; beyond it the message is marked oversized (RFC 1870). */
  maxSize: number;
  maxLineLength?: number;
  /**
   * 'reject' (default): bare CR/LF are recorded in problems and the server refuses the message.
   * 'normalize': they are turned into CRLF in the output (still recorded, for logs and metrics).
   */
  bareLineEndings?: BareLineEndings;
  /**
   * true (DATA, RFC 5321 §4.5.2): dot-stuffed, ends at <CRLF>.<CRLF>. false (BDAT, RFC 3030):
   * octets as they are, the caller decides where the message ends; line checks still apply.
   */
  dotStuffed?: boolean;
  /** false for BODY=BINARYMIME (RFC 3030 §3): no line structure to check. */
  checkLines?: boolean;
}

/** What was wrong with a message body, decided once the terminator arrived. */
export interface DataProblems {
  oversized: boolean;
  bareLf: boolean;
  bareCr: boolean;
  longLine: boolean;
}

/**
 * Streaming decoder for message data: finds the end of DATA, which is only ever <CRLF>.<CRLF>
 * (the CRLF before the dot belongs to the message), removes dot-stuffing, and records (or
 * normalises) bare CR / bare LF, over-long lines and oversize — whatever the TCP segmentation.
 * Scans with indexOf between line ends rather than octet by octet (the engine's CPU budget per
 * message). Output buffers are views of the input chunks.
 */
export class DataDecoder {
  readonly #maxSize: number;
  readonly #maxLine: number;
  readonly #normalize: boolean;
  readonly #dotStuffed: boolean;
  readonly #checkLines: boolean;
  #state: State = State.LineStart;
  #lineLength = 0;
  #size = 0;
  /** A CR after a leading dot at the very end of the previous chunk, not yet emitted. */
  #heldCr = false;
  readonly #parts: Buffer[] = [];
  readonly problems: DataProblems = { oversized: false, bareLf: false, bareCr: false, longLine: false };
  done = false;

  constructor(options: DataDecoderOptions) {
    this.#maxSize = options.maxSize;
    this.#maxLine = options.maxLineLength ?? MAX_TEXT_LINE;
    this.#normalize = options.bareLineEndings === 'normalize';
    this.#dotStuffed = options.dotStuffed ?? true;
    this.#checkLines = options.checkLines ?? true;
  }

  /** Octets of message data seen so far (also beyond maxSize). */
  get size(): number {
    return this.#size;
  }

  /** The message (valid once done; incomplete when oversized). */
  body(): Buffer {
    return this.#parts.length === 1
      ? (this.#parts[0] as Buffer)
      : Buffer.concat(this.#parts, Math.min(this.#size, this.#maxSize));
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

  #longLine(length: number): void {
    if (length > this.#maxLine) this.problems.longLine = true;
  }

  /**
   * Feeds one chunk. Returns the number of octets consumed: the whole chunk, or (once the
   * terminator was found) the octets up to and including it; the rest belongs to the next command.
   */
  push(chunk: Buffer): number {
    const len = chunk.length;
    if (!this.#checkLines && !this.#dotStuffed) {
      this.#emit(chunk, 0, len);
      return len;
    }
    let state = this.#state;
    let lineLength = this.#lineLength;
    let runStart = 0;
    let i = 0;
    while (i < len) {
      if (state === State.LineStart && this.#dotStuffed) {
        if (chunk[i] === DOT) {
          // Tentatively drop the dot: either dot-stuffing or the start of the terminator.
          this.#emit(chunk, runStart, i);
          runStart = ++i;
          state = State.Dot;
          continue;
        }
        state = State.Mid;
      } else if (state === State.Dot) {
        if (chunk[i] === CR) {
          state = State.DotCr;
          i++;
          continue;
        }
        // The dropped dot was stuffing; the line is counted without it.
        state = State.Mid;
        lineLength = 0;
      } else if (state === State.DotCr) {
        if (chunk[i] === LF) {
          // <CRLF>.<CRLF>: the dot and its CRLF are not message data.
          this.#heldCr = false;
          this.#state = State.LineStart;
          this.#lineLength = 0;
          this.done = true;
          return i + 1;
        }
        // ".<CR>x": a bare CR after a leading dot; the CR is data.
        this.problems.bareCr = true;
        if (this.#heldCr) {
          this.#heldCr = false;
          this.#emit(CR_BUFFER, 0, 1);
        }
        if (this.#normalize) {
          this.#emit(chunk, runStart, i);
          runStart = i;
          this.#emit(LF_BUFFER, 0, 1);
          // A line ending we made up is not <CRLF> on the wire: a dot after it is data.
          state = State.Mid;
          lineLength = 0;
          continue;
        }
        state = State.Mid;
        lineLength = 1;
      } else if (state === State.Cr) {
        if (chunk[i] === LF) {
          state = State.LineStart;
          lineLength = 0;
          i++;
          continue;
        }
        this.problems.bareCr = true;
        lineLength++; // the bare CR is an octet of the line
        if (this.#normalize) {
          // The CR went out with the previous chunk; complete it to CRLF. As within a chunk, the
          // made-up line ending does not start a line: a following dot cannot end the data.
          this.#emit(chunk, runStart, i);
          runStart = i;
          this.#emit(LF_BUFFER, 0, 1);
          state = State.Mid;
          lineLength = 0;
          continue;
        }
        state = State.Mid;
      } else {
        state = State.Mid;
      }
      // Inside a line: jump to the next LF and look at the CRs before it.
      if (!this.#checkLines) {
        // BINARYMIME in DATA is refused by the engine; only dot handling would matter here.
        const lf = chunk.indexOf(LF, i);
        if (lf === -1) {
          i = len;
          break;
        }
        i = lf + 1;
        state = lf > 0 && chunk[lf - 1] === CR ? State.LineStart : State.Mid;
        continue;
      }
      const lf = chunk.indexOf(LF, i);
      const end = lf === -1 ? len : lf;
      let cr = chunk.indexOf(CR, i);
      while (cr !== -1 && cr < end) {
        if (cr === end - 1) break; // CRLF, or a CR at the chunk end (decided with the next chunk)
        this.problems.bareCr = true;
        if (this.#normalize) {
          this.#emit(chunk, runStart, cr + 1);
          this.#emit(LF_BUFFER, 0, 1);
          runStart = cr + 1;
          this.#longLine(lineLength + cr - i);
          lineLength = -(cr + 1 - i);
        }
        cr = chunk.indexOf(CR, cr + 1);
      }
      if (lf === -1) {
        if (len > i && chunk[len - 1] === CR) {
          lineLength += len - 1 - i;
          state = State.Cr;
        } else {
          lineLength += len - i;
        }
        this.#longLine(lineLength);
        i = len;
        break;
      }
      if (lf > i && chunk[lf - 1] === CR) {
        this.#longLine(lineLength + lf - 1 - i);
        state = State.LineStart;
      } else {
        // A bare LF never starts a line: a following "." cannot end the data (smuggling).
        this.problems.bareLf = true;
        this.#longLine(lineLength + lf - i);
        if (this.#normalize) {
          this.#emit(chunk, runStart, lf);
          this.#emit(CRLF_BUFFER, 0, 2);
          runStart = lf + 1;
        }
        state = State.Mid;
      }
      lineLength = 0;
      i = lf + 1;
    }
    if (state === State.DotCr && runStart < len) {
      // The CR after a leading dot is the last octet: hold it until we know whether LF follows.
      this.#emit(chunk, runStart, len - 1);
      this.#heldCr = true;
    } else {
      this.#emit(chunk, runStart, len);
    }
    this.#state = state;
    this.#lineLength = lineLength;
    return len;
  }

  /**
   * The end of a BDAT message (RFC 3030): the caller decides where it ends, so a CR held back as
   * the last octet is decided here — a bare CR, recorded, and completed to CRLF when normalising.
   */
  end(): void {
    if (this.#state === State.Cr && this.#checkLines) {
      this.problems.bareCr = true;
      if (this.#normalize) this.#emit(LF_BUFFER, 0, 1);
      this.#state = State.Mid;
    }
    this.done = true;
  }
}

const CR_BUFFER = Buffer.from([CR]);
const LF_BUFFER = Buffer.from([LF]);
const CRLF_BUFFER = Buffer.from([CR, LF]);

/**
 * Client side of §4.5.2: dot-stuffs a message for DATA and appends the terminator. The message
 * must use CRLF line endings; a message not ending in CRLF gets one (RFC 5321 §4.1.1.4).
 */
export function dotStuff(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  if (message.length > 0 && message[0] === DOT) {
    parts.push(DOT_BUFFER);
  }
  let i = message.indexOf(LF_DOT);
  while (i !== -1) {
    parts.push(message.subarray(start, i + 1), DOT_BUFFER);
    start = i + 1;
    i = message.indexOf(LF_DOT, start);
  }
  parts.push(message.subarray(start));
  const endsWithCrlf =
    message.length >= 2 && message[message.length - 2] === CR && message[message.length - 1] === LF;
  parts.push(endsWithCrlf ? TERMINATOR : CRLF_TERMINATOR);
  return Buffer.concat(parts);
}

const DOT_BUFFER = Buffer.from('.');
const LF_DOT = Buffer.from('\n.');
const TERMINATOR = Buffer.from('.\r\n');
const CRLF_TERMINATOR = Buffer.from('\r\n.\r\n');
