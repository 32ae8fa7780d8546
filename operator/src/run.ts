// `petrel operator`: runs the operator until SIGTERM/SIGINT (exit 0) or until it loses its
// leadership (exit 1, so the pod restarts and stands for election again).
import { parseDuration } from '@petrel/config';
import { createLogger } from '@petrel/telemetry';
import { startOperator } from './operator.ts';

export interface OperatorCommandOptions {
  kubeconfig?: string;
  namespace?: string;
  watchNamespaces?: string;
  natsUrl?: string;
  configKeyFile?: string;
  configBucket?: string;
  databaseUrl?: string;
  dnsServer?: string;
  dnsCheckInterval?: string;
  drainGrace?: string;
  certManagerIssuer?: string;
  identity?: string;
  leaseDuration?: string;
  workers?: number;
}

/** `Issuer/name` or `ClusterIssuer/name`. */
function issuer(value: string | undefined): { kind: 'Issuer' | 'ClusterIssuer'; name: string } | undefined {
  if (value === undefined) return undefined;
  const [kind, name] = value.split('/', 2);
  if ((kind !== 'Issuer' && kind !== 'ClusterIssuer') || !name) {
    throw new Error(`--cert-manager-issuer must be Issuer/<name> or ClusterIssuer/<name>, not ${value}`);
  }
  return { kind, name };
}

export async function runOperatorCommand(
  options: OperatorCommandOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const log = createLogger('operator');
  const natsUrl = options.natsUrl ?? env['PETREL_NATS_URL'];
  const configKeyFile = options.configKeyFile ?? env['PETREL_CONFIG_KEY_FILE'];
  if (!natsUrl || !configKeyFile) {
    process.stderr.write(
      'petrel operator: --nats-url (PETREL_NATS_URL) and --config-key-file (PETREL_CONFIG_KEY_FILE) are required: ' +
        'the runtime config is published to NATS, encrypted with that key\n',
    );
    return 2;
  }
  const leaseDurationMs = options.leaseDuration ? parseDuration(options.leaseDuration) : undefined;
  const handle = await startOperator({
    kubeconfig: options.kubeconfig,
    namespace: options.namespace ?? env['POD_NAMESPACE'],
    watchNamespaces: (options.watchNamespaces ?? env['PETREL_WATCH_NAMESPACES'] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
    natsUrl,
    configKeyFile,
    configBucket: options.configBucket ?? env['PETREL_RUNTIME_CONFIG_STORE'],
    databaseUrl: options.databaseUrl ?? env['PETREL_DATABASE_URL'],
    dnsServer: options.dnsServer ?? env['PETREL_DNS_SERVERS']?.split(',')[0],
    dnsCheckIntervalMs: options.dnsCheckInterval ? parseDuration(options.dnsCheckInterval) : undefined,
    drainGraceMs:
      options.drainGrace === undefined
        ? undefined
        : options.drainGrace === '0'
          ? 0
          : parseDuration(options.drainGrace),
    defaultIssuer: issuer(options.certManagerIssuer ?? env['PETREL_CERT_MANAGER_ISSUER']),
    identity: options.identity,
    ...(leaseDurationMs
      ? {
          // client-go's proportions (15 s / 10 s / 2 s).
          leaseDurationMs,
          renewDeadlineMs: Math.round((leaseDurationMs * 2) / 3),
          retryPeriodMs: Math.max(200, Math.round(leaseDurationMs / 7.5)),
        }
      : {}),
    workers: options.workers,
    logger: log,
  });
  const signalled = new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  const outcome = await Promise.race([handle.done, signalled.then(() => 'signal' as const)]);
  if (outcome === 'signal') {
    await handle.stop();
    return 0;
  }
  return outcome === 'lost' ? 1 : 0;
}
