import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@petrel/localenv';
import { tempDir, trackProcessGroup, untrackProcessGroup } from './cleanup.ts';
import { startDnsServer } from './dns-server.ts';
import type { After } from './servers.ts';
import { waitFor } from './wait.ts';

const PETREL_BIN = fileURLToPath(new URL('../../../services/cli/bin/petrel.js', import.meta.url));

export interface PetrelDevOptions {
  configDir: string;
  /** Reused across restarts to test persistence; a fresh temporary one when absent. */
  dataDir?: string;
  smarthost?: string;
  /** MX hosts on this port instead of 25 (with dnsServer naming loopback MX hosts). */
  mxPort?: number;
  natsUrl?: string;
  databaseUrl?: string;
  smtpPort?: number;
  submissionPort?: number;
  smtpsPort?: number;
  httpPort?: number;
  apiPort?: number;
  dnsServer?: string;
  /** Extra environment for all components (e.g. PETREL_RETRY_DELAYS_MS). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

export interface PetrelDev {
  readonly smtpPort: number;
  readonly submissionPort: number;
  readonly smtpsPort: number;
  readonly httpPort: number;
  /** The recorder's trace API. */
  readonly apiPort: number;
  readonly dataDir: string;
  /** The local-mode certificate (self-signed) the TLS listeners serve, PEM; a CA for clients. */
  readonly certificatePath: string;
  /** The process group of `petrel dev` and everything it started. */
  readonly pgid: number;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves with the supervisor's exit code when it exits by itself (or is stopped). */
  readonly exited: Promise<number | null>;
  /** Sends a signal to the supervisor and waits for the whole process group to be gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL to the whole process group, as a crash of the machine's processes would. */
  killGroup(): Promise<void>;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the real `petrel dev` (the same entry point as `npx petrel dev`) in its own process
 * group on free loopback ports, and waits for its "accepting mail" line.
 */
export async function startPetrelDev(after: After, options: PetrelDevOptions): Promise<PetrelDev> {
  const dataDir = options.dataDir ?? (await tempDir('dev'));
  const smtpPort = options.smtpPort ?? (await freePort());
  const submissionPort = options.submissionPort ?? (await freePort());
  const smtpsPort = options.smtpsPort ?? (await freePort());
  const httpPort = options.httpPort ?? (await freePort());
  const apiPort = options.apiPort ?? (await freePort());
  const args = [
    PETREL_BIN,
    'dev',
    '--config-dir',
    options.configDir,
    '--data-dir',
    dataDir,
    '--smtp-port',
    String(smtpPort),
    '--submission-port',
    String(submissionPort),
    '--smtps-port',
    String(smtpsPort),
    '--http-port',
    String(httpPort),
    '--api-port',
    String(apiPort),
  ];
  // Tests never reach the machine's resolvers: without a DNS server of the test's own, an empty
  // one (every name NXDOMAIN) answers the SPF/DKIM/DMARC lookups.
  const dnsServer = options.dnsServer ?? (await startDnsServer({ after })).address;
  args.push('--dns-server', dnsServer);
  if (options.smarthost) args.push('--smarthost', options.smarthost);
  if (options.mxPort !== undefined) args.push('--mx-port', String(options.mxPort));
  if (options.natsUrl) args.push('--nats-url', options.natsUrl);
  if (options.databaseUrl) args.push('--database-url', options.databaseUrl);
  const child: ChildProcess = spawn(process.execPath, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const pgid = child.pid ?? 0;
  trackProcessGroup(pgid);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });

  const dev: PetrelDev = {
    smtpPort,
    submissionPort,
    smtpsPort,
    httpPort,
    apiPort,
    dataDir,
    certificatePath: join(dataDir, 'tls', 'self-signed', 'tls.crt'),
    pgid,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (exitCode === undefined) child.kill(signal);
      const code = await exited;
      await waitFor(() => !groupAlive(pgid), {
        timeoutMs: 30_000,
        message: 'petrel dev process group to exit',
      });
      untrackProcessGroup(pgid);
      return code;
    },
    async killGroup() {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // The group is already gone (ESRCH).
      }
      await exited;
      await waitFor(() => !groupAlive(pgid), {
        timeoutMs: 30_000,
        message: 'killed process group to be gone',
      });
      untrackProcessGroup(pgid);
    },
  };
  after(async () => {
    if (groupAlive(pgid)) await dev.killGroup();
  });
  const state = await waitFor(
    () =>
      exitCode !== undefined ? 'exited' : output.includes('petrel: accepting mail') ? 'ready' : undefined,
    { timeoutMs: options.startTimeoutMs ?? 120_000, intervalMs: 50, message: 'petrel dev to accept mail' },
  ).catch((error: unknown) => {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; output so far:\n${output}`, {
      cause: error,
    });
  });
  if (state === 'exited') {
    untrackProcessGroup(pgid);
    throw new Error(`petrel dev exited (${exitCode}) before accepting mail:\n${output}`);
  }
  return dev;
}
