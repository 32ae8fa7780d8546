/**
 * A progress display on stderr for operations that may take a while (bounce and purge walk every
 * deferred entry): a spinner with the seconds elapsed on a terminal, one "working…" line
 * otherwise (a log file gets no carriage returns). Never on stdout: that is the result's.
 */
import { clean } from './format.ts';

export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface Progress {
  /** Removes the spinner line (a terminal) and stops the timer; safe to call twice. */
  stop(): void;
}

export interface ProgressOptions {
  readonly stream: ProgressStream;
  readonly label: string;
  readonly now?: () => number;
  /** How often the spinner moves. */
  readonly intervalMs?: number;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** Carriage return and erase line: the spinner redraws itself in place. */
const CLEAR_LINE = '\r\u001b[2K';

export function startProgress(options: ProgressOptions): Progress {
  const { stream } = options;
  const label = clean(options.label);
  if (stream.isTTY !== true) {
    stream.write(`petrel: ${label}… (working; this can take a while)\n`);
    return { stop: () => undefined };
  }
  const now = options.now ?? Date.now;
  const started = now();
  let frame = 0;
  const draw = () => {
    const seconds = Math.floor((now() - started) / 1000);
    stream.write(`${CLEAR_LINE}${FRAMES[frame % FRAMES.length]} ${label}… ${seconds}s`);
    frame++;
  };
  draw();
  const timer = setInterval(draw, options.intervalMs ?? 100);
  // The spinner alone must not keep the process alive.
  timer.unref();
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      stream.write(CLEAR_LINE);
    },
  };
}
