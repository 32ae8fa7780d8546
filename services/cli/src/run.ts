/**
 * Runs one API command: finds the API (discovery.ts), makes the client, runs the command, and
 * turns any failure into one message on stderr (with its code and a next step) and an exit code.
 * stdout gets only the result, so that `petrel ... --json | jq` never sees an error or progress.
 */
import { Agent } from 'undici';
import { ApiClient } from './api-client.ts';
import { processAlive, resolveApi } from './discovery.ts';
import { ApiRequestError, CliError, ExitCode } from './errors.ts';
import { clean } from './format.ts';
import type { ProgressStream } from './progress.ts';

export interface Io {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: ProgressStream;
  readonly now: () => number;
}

/** What every API command takes (main.ts adds these options to each). */
export interface ApiOptions {
  readonly api?: string;
  readonly token?: string;
  readonly dataDir: string;
  readonly json?: boolean;
}

export interface CommandContext {
  readonly client: ApiClient;
  readonly json: boolean;
  /** The result: stdout. */
  out(text: string): void;
  /** Notes for a person (nothing matched, more results than shown): stderr. */
  note(text: string): void;
  readonly stderr: ProgressStream;
  readonly now: () => number;
}

/** A command's body; `check` runs first, before the API is looked for (usage errors first). */
export interface ApiCommand {
  readonly check?: () => void;
  readonly run: (ctx: CommandContext) => Promise<ExitCode>;
}

/** Connecting longer than this: the address does not answer (a firewall dropping packets). */
const CONNECT_TIMEOUT_MS = 10_000;

export async function runApiCommand(io: Io, options: ApiOptions, command: ApiCommand): Promise<ExitCode> {
  let agent: Agent | undefined;
  try {
    command.check?.();
    const target = resolveApi({
      api: options.api,
      token: options.token,
      dataDir: options.dataDir,
      env: io.env,
      cwd: io.cwd,
    });
    agent = new Agent({ connect: { timeout: CONNECT_TIMEOUT_MS } });
    const client = new ApiClient({ target, dispatcher: agent, processAlive });
    return await command.run({
      client,
      json: options.json === true,
      out: (text) => io.stdout.write(text),
      note: (text) => io.stderr.write(`petrel: ${text}\n`),
      stderr: io.stderr,
      now: io.now,
    });
  } catch (error) {
    return report(io, error);
  } finally {
    await agent?.close().catch(() => undefined);
  }
}

/** One line with the message and its code, and the next step on a second line. */
export function report(io: Pick<Io, 'stderr'>, error: unknown): ExitCode {
  if (error instanceof CliError || error instanceof ApiRequestError) {
    // The message may quote the API's answer: escaped like every outside text.
    io.stderr.write(`petrel: ${clean(error.message)} [${error.code}]\n`);
    if (error.hint !== undefined) io.stderr.write(`petrel: ${clean(error.hint)}\n`);
    return error.exitCode;
  }
  io.stderr.write(
    `petrel: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return ExitCode.Failed;
}
