import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  findNatsServer,
  type NatsServerHandle,
  type PostgresHandle,
  startNatsServer,
  startPostgres,
} from '@petrel/localenv';
import { compileDirectory, configContent, writeRuntimeConfig } from '@petrel/operator';
import { ensureStreams } from '@petrel/queue';
import { ensureDatabase, migrate } from '@petrel/store';
import { API_TOKEN_FILE, LOCAL_API_FILE } from './local-api.ts';
import { watchConfigDir } from './watch.ts';

export interface DevOptions {
  configDir: string;
  dataDir: string;
  smtpPort: number;
  submissionPort: number;
  smtpsPort: number;
  httpPort: number;
  /** The recorder's HTTP port: the trace API (petrel trace / queue / suppress). */
  apiPort: number;
  dnsServer?: string;
  smarthost?: string;
  mxPort?: number;
  natsUrl?: string;
  databaseUrl?: string;
}

const say = (line: string): void => {
  process.stdout.write(`petrel: ${line}\n`);
};

const servicesDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Component {
  name: string;
  child: ChildProcess;
  ready: boolean;
  exited: Promise<number | null>;
}

/**
 * `petrel dev`: the local mode contract of docs/architecture.md. Starts (or connects to) NATS
 * JetStream and Postgres, compiles the manifests (the operator's local mode), runs the ingress
 * and the delivery worker as child processes, and stops everything on SIGINT/SIGTERM.
 */
export async function runDev(options: DevOptions): Promise<number> {
  const dataDir = resolve(options.dataDir);
  const configDir = resolve(options.configDir);
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const runtimeConfigPath = join(dataDir, 'runtime-config.json');

  let nats: NatsServerHandle | undefined;
  let postgres: PostgresHandle | undefined;
  const components: Component[] = [];
  let stopping = false;
  let generation = Date.now();
  let configWatch: { close(): void } | undefined;
  let periodic: NodeJS.Timeout | undefined;
  /** On every way out, before the components stop: an open fs watcher would keep this process alive. */
  const stopServing = (): void => {
    configWatch?.close();
    clearInterval(periodic);
    rmSync(join(dataDir, LOCAL_API_FILE), { force: true });
  };

  const stopAll = async (): Promise<void> => {
    // Reverse order of start: first stop taking mail, then delivering, then the stores.
    for (const c of [...components].reverse()) {
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
      await c.exited;
      say(`${c.name} stopped`);
    }
    if (nats) {
      await nats.stop();
      say('nats-server stopped');
    }
    if (postgres) {
      await postgres.stop();
      say('postgres stopped');
    }
  };

  let code = 1;
  try {
    // The operator's local mode: generated DKIM keys and certificates live in <data-dir>/operator.
    const local = { stateDir: join(dataDir, 'operator'), log: say };
    let lastContent = '';
    const apply = async (): Promise<void> => {
      const config = await compileDirectory(configDir, generation + 1, local);
      // Unchanged (a periodic pass with nothing due): not rewritten, so nothing reloads.
      const content = configContent(config);
      if (content === lastContent) return;
      generation += 1;
      await writeRuntimeConfig(runtimeConfigPath, config);
      lastContent = content;
    };
    const applyReporting = async (): Promise<void> => {
      try {
        await apply();
      } catch (error) {
        process.stderr.write(
          `petrel: config not applied: ${error instanceof Error ? error.message : String(error)}\n`,
        );
      }
    };
    await apply();
    configWatch = watchConfigDir(configDir, applyReporting);
    // Rotations and renewals fall due with time, not with edits.
    periodic = setInterval(() => void applyReporting(), 60_000);
    periodic.unref();

    let natsUrl = options.natsUrl;
    if (natsUrl === undefined) {
      const binary = await findNatsServer({ log: say });
      nats = await startNatsServer({ binary, dir: join(dataDir, 'nats'), name: 'petrel-dev' });
      natsUrl = nats.url;
    }
    let databaseUrl = options.databaseUrl;
    if (databaseUrl === undefined) {
      postgres = await startPostgres({ dir: join(dataDir, 'postgres') });
      await ensureDatabase(postgres.url, 'petrel');
      databaseUrl = postgres.urlFor('petrel');
    }
    await migrate(databaseUrl);

    const nc = await connect({ servers: natsUrl, name: 'petrel-dev' });
    await ensureStreams(await jetstreamManager(nc), { replicas: 1 });
    await nc.close();

    const env = {
      ...process.env,
      PETREL_NATS_URL: natsUrl,
      PETREL_DATABASE_URL: databaseUrl,
      PETREL_RUNTIME_CONFIG: runtimeConfigPath,
      PETREL_HOSTNAME: process.env['PETREL_HOSTNAME'] ?? 'localhost',
      ...(options.dnsServer ? { PETREL_DNS_SERVERS: options.dnsServer } : {}),
    };
    const start = (name: string, extra: Record<string, string>): Promise<Component> => {
      const log = openSync(join(logDir, `${name}.log`), 'a');
      const child = fork(join(servicesDir, name, 'src', 'main.ts'), [], {
        env: { ...env, ...extra },
        stdio: ['ignore', log, log, 'ipc'],
      });
      closeSync(log);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const component: Component = { name, child, ready: false, exited };
      components.push(component);
      return new Promise((resolveReady, reject) => {
        child.on('message', (m: unknown) => {
          if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ready') {
            component.ready = true;
            resolveReady(component);
          }
        });
        void exited.then((code) => {
          if (!component.ready) {
            const logFile = join(logDir, `${name}.log`);
            reject(new Error(`${name} exited (${code}) during start; see ${logFile}${logTail(logFile)}`));
          }
        });
      });
    };

    // The trace API's token: made once per data dir, readable only by its owner; the CLI reads
    // it from there (LOCAL_API_FILE) when run with the same --data-dir.
    const tokenFile = join(dataDir, API_TOKEN_FILE);
    if (!existsSync(tokenFile))
      writeFileSync(tokenFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    await start('recorder', {
      PETREL_HTTP_HOST: '127.0.0.1',
      PETREL_HTTP_PORT: String(options.apiPort),
      PETREL_API_TOKEN_FILE: tokenFile,
    });
    const apiFile = join(dataDir, LOCAL_API_FILE);
    writeFileSync(
      apiFile,
      `${JSON.stringify({ url: `http://127.0.0.1:${options.apiPort}`, tokenFile, pid: process.pid })}\n`,
    );

    await start('delivery', {
      ...(options.smarthost ? { PETREL_SMARTHOST: options.smarthost } : {}),
      ...(options.mxPort === undefined ? {} : { PETREL_MX_PORT: String(options.mxPort) }),
    });
    await start('ingress', {
      PETREL_SMTP_HOST: '127.0.0.1',
      PETREL_SMTP_PORT: String(options.smtpPort),
      PETREL_SUBMISSION_PORT: String(options.submissionPort),
      PETREL_SMTPS_PORT: String(options.smtpsPort),
      // The supervisor serves health for the whole relay; the ingress's own endpoint is for pods.
      PETREL_HEALTH_PORT: 'off',
      // Local mode: a self-signed certificate when the data dir has none (issue #3).
      PETREL_TLS_DIR: join(dataDir, 'tls'),
      PETREL_TLS_SELF_SIGNED: 'true',
    });

    const http = createServer((req, res) => {
      const ready = !stopping && components.every((c) => c.ready && c.child.exitCode === null);
      if (req.url === '/healthz' || req.url === '/readyz') {
        const ok = req.url === '/healthz' ? !stopping : ready;
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            status: ok ? 'ok' : 'unavailable',
            components: components.map((c) => ({ name: c.name, ready: c.ready })),
          }),
        );
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r, reject) => {
      http.once('error', reject);
      http.listen({ host: '127.0.0.1', port: options.httpPort }, () => r());
    });

    say(
      `accepting mail on smtp://127.0.0.1:${options.smtpPort}` +
        `, submission smtp://127.0.0.1:${options.submissionPort} (STARTTLS+AUTH)` +
        `, smtps://127.0.0.1:${options.smtpsPort}` +
        ` (health http://127.0.0.1:${options.httpPort}/readyz, API http://127.0.0.1:${options.apiPort}, data ${dataDir}` +
        `${options.smarthost ? `, smarthost ${options.smarthost}` : ''})`,
    );

    const signalled = new Promise<string>((r) => {
      process.once('SIGINT', () => r('SIGINT'));
      process.once('SIGTERM', () => r('SIGTERM'));
    });
    const crashed = Promise.race(components.map((c) => c.exited.then((code) => ({ name: c.name, code }))));
    const first = await Promise.race([signalled, crashed]);
    stopping = true;
    if (typeof first === 'string') code = 0;
    else
      process.stderr.write(
        `petrel: ${first.name} exited unexpectedly (${first.code})${logTail(join(logDir, `${first.name}.log`))}\npetrel: stopping\n`,
      );
    http.close();
  } catch (error) {
    process.stderr.write(`petrel: ${error instanceof Error ? error.message : String(error)}\n`);
  } finally {
    // Both ways out: a signal or a crash, and a failed start.
    stopping = true;
    stopServing();
    await stopAll();
  }
  return code;
}

/** The last lines of a component's log, for the error of a failed start (the why, not only where). */
function logTail(file: string, lines = 15): string {
  // Only the end of the file: a log that ran for days can be large.
  const TAIL_BYTES = 16 * 1024;
  let text: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const buffer = Buffer.alloc(Math.min(size, TAIL_BYTES));
      readSync(fd, buffer, 0, buffer.length, size - buffer.length);
      text = buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
  if (text.trim() === '') return '';
  const tail = text.trimEnd().split('\n').slice(-lines);
  return `; its last lines:\n${tail.map((l) => `  ${l}`).join('\n')}`;
}
