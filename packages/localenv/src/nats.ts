import { execFile } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LocalEnvError, LocalEnvErrorCode } from './errors.ts';
import { buildWithGo, cacheDir } from './go-build.ts';
import { freePort } from './ports.ts';
import { ManagedProcess } from './process.ts';

const run = promisify(execFile);

/** The nats-server release built when none new enough is on PATH (2.12: atomic batch publish, priority groups). */
export const NATS_SERVER_VERSION = 'v2.12.15';
const MINIMUM = [2, 12, 0] as const;
const MODULE = 'github.com/nats-io/nats-server/v2';

function newEnough(versionText: string): boolean {
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(versionText);
  if (!match) return false;
  const found = [Number(match[1]), Number(match[2]), Number(match[3])];
  for (let i = 0; i < 3; i++) {
    const a = found[i] ?? 0;
    const b = MINIMUM[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

async function versionOf(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ['--version'], { timeout: 10_000 });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export interface FindNatsServerOptions {
  /** Called with progress lines while building. */
  log?: (line: string) => void;
}

/**
 * Returns the path of a nats-server >= 2.12: PETREL_NATS_SERVER, then the one on PATH if new
 * enough, then a cached build, else builds it with `go install` into the cache (atomically,
 * so concurrent callers are safe). Never starts or uses a running server.
 */
export async function findNatsServer(options: FindNatsServerOptions = {}): Promise<string> {
  const explicit = process.env['PETREL_NATS_SERVER'];
  if (explicit) {
    const version = await versionOf(explicit);
    if (version && newEnough(version)) return explicit;
    throw new LocalEnvError(
      LocalEnvErrorCode.NatsServerUnavailable,
      `PETREL_NATS_SERVER=${explicit} is not a nats-server >= ${MINIMUM.join('.')} (got: ${version ?? 'no version'})`,
    );
  }
  const onPath = await versionOf('nats-server');
  if (onPath && newEnough(onPath)) return 'nats-server';

  const dir = join(cacheDir(), `nats-server-${NATS_SERVER_VERSION}`);
  const binary = join(dir, 'nats-server');
  if (await exists(binary)) return binary;

  await buildWithGo({
    dir,
    what: `nats-server ${NATS_SERVER_VERSION}`,
    takes: 'about a minute',
    build: async (staging) => {
      await run('go', ['install', '-trimpath', `${MODULE}@${NATS_SERVER_VERSION}`], {
        env: { ...process.env, GOBIN: staging, CGO_ENABLED: '0' },
        timeout: 15 * 60_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    },
    complete: () => exists(binary),
    error: (kind, cause) =>
      new LocalEnvError(
        LocalEnvErrorCode.NatsServerUnavailable,
        kind === 'no-go'
          ? `nats-server >= ${MINIMUM.join('.')} is needed (found on PATH: ${onPath ?? 'none'}) and Go is not ` +
              `available to build it. Either install Go (https://go.dev/doc/install) so that Petrel can run ` +
              `\`go install ${MODULE}@${NATS_SERVER_VERSION}\`, or put nats-server ${NATS_SERVER_VERSION} on PATH, ` +
              'or set PETREL_NATS_SERVER to its path.'
          : `building nats-server ${NATS_SERVER_VERSION} failed; check that the Go module proxy is reachable ` +
              `(go env GOPROXY), or put nats-server >= ${MINIMUM.join('.')} on PATH or in PETREL_NATS_SERVER`,
        { cause },
      ),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  return binary;
}

export interface NatsServerOptions {
  binary: string;
  /** Holds the config file, the log and (under jetstream/) the JetStream store. */
  dir: string;
  name: string;
  host?: string;
  /** Client port; a free one when absent. */
  port?: number;
  /** Cluster membership: the cluster name, this node's route port and every node's route URL. */
  cluster?: { name: string; port: number; routes: readonly string[] };
  /** Largest message payload in bytes (nats-server default 1 MiB). */
  maxPayload?: number;
  detached?: boolean;
}

export interface NatsServerHandle {
  readonly name: string;
  /** Config, log and JetStream store. */
  readonly dir: string;
  readonly url: string;
  readonly port: number;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** Starts it again with the same config and data (after stop or kill). */
  restart(): Promise<void>;
}

/** Starts one nats-server with JetStream (file store) and waits until it is ready for clients. */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerHandle> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  await mkdir(join(options.dir, 'jetstream'), { recursive: true });
  const lines = [
    `server_name: ${JSON.stringify(options.name)}`,
    `listen: "${host}:${port}"`,
    `max_payload: ${options.maxPayload ?? 1024 * 1024}`,
    'jetstream {',
    `  store_dir: ${JSON.stringify(join(options.dir, 'jetstream'))}`,
    '  max_memory_store: 256MB',
    '}',
  ];
  if (options.cluster) {
    lines.push(
      'cluster {',
      `  name: ${JSON.stringify(options.cluster.name)}`,
      `  listen: "${host}:${options.cluster.port}"`,
      `  routes: [${options.cluster.routes.map((r) => JSON.stringify(r)).join(', ')}]`,
      '}',
    );
  }
  const configFile = join(options.dir, 'nats-server.conf');
  await writeFile(configFile, `${lines.join('\n')}\n`);
  const spawnProcess = (): ManagedProcess =>
    new ManagedProcess({
      name: `nats-server ${options.name}`,
      command: options.binary,
      args: ['-c', configFile],
      logFile: join(options.dir, 'nats-server.log'),
      readyPattern: /Server is ready/,
      detached: options.detached ?? false,
    });
  let proc = spawnProcess();
  await proc.start();
  const handle: NatsServerHandle = {
    name: options.name,
    dir: options.dir,
    url: `nats://${host}:${port}`,
    port,
    get process() {
      return proc;
    },
    stop: () => proc.stop('SIGTERM'),
    kill: () => proc.kill(),
    restart: async () => {
      await proc.stop('SIGTERM');
      proc = spawnProcess();
      await proc.start();
    },
  };
  return handle;
}
