import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeError, KubeErrorCode } from './errors.ts';

/** Where pods find their service-account credentials (projected volume). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubeConfigSource = 'flag' | 'env' | 'in-cluster';

export interface LoadKubeConfigOptions {
  /** The --kubeconfig path; wins over everything else. */
  kubeconfig?: string | undefined;
  /** Environment to read KUBECONFIG and KUBERNETES_SERVICE_HOST/PORT from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Service-account directory (default SERVICE_ACCOUNT_DIR); tests point it elsewhere. */
  serviceAccountDir?: string;
}

export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  source: KubeConfigSource;
  /** The current context's namespace (in a pod: the pod's namespace), if any. */
  namespace: string | undefined;
}

/**
 * Loads the API server connection: --kubeconfig, else KUBECONFIG (a path list, merged like kubectl),
 * else the pod's service account. Unlike client-node's loadFromDefault it never falls back to
 * ~/.kube/config or http://localhost:8080, so an operator cannot silently talk to the wrong cluster.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): LoadedKubeConfig {
  const env = options.env ?? process.env;
  if (options.kubeconfig) return fromFiles([options.kubeconfig], 'flag');
  const list = (env['KUBECONFIG'] ?? '').split(delimiter).filter((path) => path !== '');
  if (list.length > 0) return fromFiles(list, 'env');
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const dir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (host && port && existsSync(join(dir, 'token'))) return inCluster(host, port, dir);
  throw new KubeError(
    KubeErrorCode.NoConfig,
    'no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account',
  );
}

function fromFiles(paths: string[], source: KubeConfigSource): LoadedKubeConfig {
  const [first, ...rest] = paths.map(readKubeConfig);
  if (!first) throw new KubeError(KubeErrorCode.NoConfig, 'no kubeconfig path given');
  // Later files only add entries, as kubectl does; the first file's current-context stays.
  for (const [index, next] of rest.entries()) {
    try {
      first.mergeConfig(next, true);
    } catch (error) {
      // client-node refuses duplicate cluster/user/context names across files.
      throw new KubeError(
        KubeErrorCode.InvalidConfig,
        `kubeconfig ${paths[index + 1]}: ${error instanceof Error ? error.message : String(error)}`,
        {},
        { cause: error },
      );
    }
  }
  return checked(first, source, paths.join(delimiter));
}

function readKubeConfig(path: string): KubeConfig {
  try {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(path);
    return kubeConfig;
  } catch (error) {
    throw new KubeError(
      KubeErrorCode.InvalidConfig,
      `kubeconfig ${path}: ${error instanceof Error ? error.message : String(error)}`,
      {},
      { cause: error },
    );
  }
}

function inCluster(host: string, port: string, dir: string): LoadedKubeConfig {
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const namespacePath = join(dir, 'namespace');
  const namespace = existsSync(namespacePath) ? readFileSync(namespacePath, 'utf8').trim() : undefined;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    // tokenFile (not a token string): projected tokens rotate; client-node rereads the file every minute.
    users: [
      { name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile: join(dir, 'token') } } },
    ],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster', namespace }],
    currentContext: 'in-cluster',
  });
  return checked(kubeConfig, 'in-cluster', server);
}

function checked(kubeConfig: KubeConfig, source: KubeConfigSource, from: string): LoadedKubeConfig {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster?.server) {
    throw new KubeError(
      KubeErrorCode.InvalidConfig,
      `kubeconfig ${from}: the current context (${kubeConfig.getCurrentContext() || 'none'}) names no cluster with a server`,
    );
  }
  const namespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace || undefined;
  return { kubeConfig, source, namespace };
}
