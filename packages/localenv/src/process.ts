import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { LocalEnvError, LocalEnvErrorCode } from './errors.ts';

export interface ManagedProcessOptions {
  /** Name used in errors and logs. */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Output (stdout and stderr) is appended here. */
  logFile: string;
  /** Resolves start() when a line of output matches. */
  readyPattern: RegExp;
  readyTimeoutMs?: number;
  /** Put the child in its own process group (for SIGKILL of the group); default false. */
  detached?: boolean;
}

/** Every live child we started, so that an exiting parent can kill them (see killAllOnExit). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is the only thing that still works there.
  // First of the exit handlers, so servers are gone before anything removes their directories.
  process.prependListener('exit', () => {
    for (const child of live) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
}

/** A child process that is "started" once its output shows it is ready. */
export class ManagedProcess {
  readonly name: string;
  readonly #options: ManagedProcessOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: WriteStream | undefined;
  #tail: string[] = [];

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.#options = options;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** The last lines of output, for error messages. */
  get tail(): string {
    return this.#tail.join('\n');
  }

  async start(): Promise<void> {
    const o = this.#options;
    installExitHook();
    this.#log = createWriteStream(o.logFile, { flags: 'a' });
    const child = spawn(o.command, [...o.args], {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: o.detached ?? false,
    });
    this.#child = child;
    live.add(child);
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(child);
        resolve();
      });
    });

    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const timeoutMs = o.readyTimeoutMs ?? 30_000;
      const timer = setTimeout(
        () =>
          settle(
            new LocalEnvError(
              LocalEnvErrorCode.ProcessStartTimeout,
              `${o.name} did not become ready within ${timeoutMs} ms; last output:\n${this.tail}`,
            ),
          ),
        timeoutMs,
      );
      let pending = '';
      const onData = (chunk: Buffer): void => {
        this.#log?.write(chunk);
        pending += chunk.toString('utf8');
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          this.#tail.push(line);
          if (this.#tail.length > 20) this.#tail.shift();
          if (o.readyPattern.test(line)) settle();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', (error) =>
        settle(
          new LocalEnvError(LocalEnvErrorCode.ProcessExited, `${o.name} failed to start`, { cause: error }),
        ),
      );
      child.once('exit', (code, signal) =>
        settle(
          new LocalEnvError(
            LocalEnvErrorCode.ProcessExited,
            `${o.name} exited (${signal ?? code}) before it was ready; last output:\n${this.tail}`,
          ),
        ),
      );
    });
  }

  /** Sends a signal and waits for the process to exit; SIGKILL after graceMs. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.#child;
    if (child === undefined || !this.running) {
      await this.#closeLog();
      return;
    }
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
    await this.#closeLog();
  }

  /** SIGKILL, as a crash would. */
  async kill(): Promise<void> {
    await this.stop('SIGKILL', 0);
  }

  async #closeLog(): Promise<void> {
    const log = this.#log;
    this.#log = undefined;
    if (log) await new Promise<void>((resolve) => log.end(resolve));
  }
}
