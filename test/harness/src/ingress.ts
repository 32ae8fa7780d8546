import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@petrel/localenv';
import type { After } from './servers.ts';

const INGRESS_MAIN = fileURLToPath(new URL('../../../services/ingress/src/main.ts', import.meta.url));

/** One ingress process (services/ingress/src/main.ts), started as a pod runs it, on loopback. */
export interface IngressProcess {
  readonly child: ChildProcess;
  /** The MX listener's port once the ingress reports ready; rejects if it exits before that. */
  readonly mxPort: Promise<number>;
  readonly healthPort: number;
  readonly exited: Promise<number | null>;
}

export interface IngressProcessOptions {
  natsUrl: string;
  /** A runtime-config file, or the operator's Object Store bucket with its key file. */
  config: { file: string } | { store: string; keyFile: string };
  /** Holds the ingress's self-signed certificate. */
  dataDir: string;
  /** host:port of the DNS server the SPF/DKIM/DMARC checks ask. */
  dnsServer: string;
  /** Registers the SIGKILL of the process, e.g. node:test's `t.after.bind(t)`. */
  after: After;
  /** More environment; wins over the defaults (PETREL_LOG_LEVEL=warn, submission and SMTPS off). */
  env?: Record<string, string>;
  /** 'pipe' to read the JSON log from `child.stdout`; ignored by default. */
  stdout?: 'ignore' | 'pipe';
}

export async function forkIngress(options: IngressProcessOptions): Promise<IngressProcess> {
  const healthPort = await freePort();
  const source =
    'file' in options.config
      ? { PETREL_RUNTIME_CONFIG: options.config.file }
      : {
          PETREL_RUNTIME_CONFIG_STORE: options.config.store,
          PETREL_CONFIG_KEY_FILE: options.config.keyFile,
        };
  const child = fork(INGRESS_MAIN, [], {
    env: {
      ...process.env,
      PETREL_NATS_URL: options.natsUrl,
      ...source,
      PETREL_SMTP_HOST: '127.0.0.1',
      PETREL_SMTP_PORT: '0',
      PETREL_SUBMISSION_PORT: 'off',
      PETREL_SMTPS_PORT: 'off',
      PETREL_HEALTH_HOST: '127.0.0.1',
      PETREL_HEALTH_PORT: String(healthPort),
      PETREL_TLS_DIR: join(options.dataDir, 'tls'),
      PETREL_TLS_SELF_SIGNED: 'true',
      PETREL_DNS_SERVERS: options.dnsServer,
      PETREL_LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', options.stdout ?? 'ignore', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  options.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const mxPort = new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type?: string; ports?: Record<string, number> }) => {
      if (m.type === 'ready' && m.ports?.['mx'] !== undefined) resolve(m.ports['mx']);
    });
    void exited.then((code) => reject(new Error(`the ingress exited (${code}) before it was ready`)));
  });
  // Handled here so that a test which never awaits the port is not failed by the rejection.
  mxPort.catch(() => undefined);
  return { child, mxPort, healthPort, exited };
}
