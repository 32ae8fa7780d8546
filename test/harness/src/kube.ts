import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, ManagedProcess } from '@petrel/localenv';
import { Agent, request } from 'undici';
import { tempDir } from './cleanup.ts';
import { type EnvtestAssets, findEnvtestAssets } from './envtest.ts';
import { waitFor } from './wait.ts';

/** A user the API server authenticates by bearer token (RBAC decides what it may do). */
export interface KubeUser {
  name: string;
  groups?: readonly string[];
}

export interface KubeControlPlaneOptions {
  /** Users besides the admin (`admin`, group system:masters), e.g. the operator's own identity. */
  users?: readonly KubeUser[];
  /** Seconds to wait for the API server to become ready (2 cores under load: generous). */
  startTimeoutSeconds?: number;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubeControlPlane {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly dir: string;
  /** A kubeconfig file for the admin user (system:masters). */
  readonly kubeconfigPath: string;
  readonly assets: EnvtestAssets;
  /** Writes (once) and returns a kubeconfig file for a user declared in the options. */
  kubeconfigFor(user: string): Promise<string>;
  /** Runs kubectl (the envtest build) as the admin or as `user`; never throws on a non-zero exit. */
  kubectl(args: readonly string[], options?: { input?: string; user?: string }): Promise<KubectlResult>;
  /** Stops etcd and the API server (start() brings them back with the same data). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * A real Kubernetes control plane as envtest runs it: etcd and kube-apiserver on free loopback
 * ports in a temporary directory, RBAC on, no kubelet or controller manager (so no garbage
 * collection and no namespace deletion). Users authenticate with static bearer tokens; the API
 * server serves a certificate it generates itself, which the kubeconfigs trust.
 */
export async function startKubeControlPlane(
  options: KubeControlPlaneOptions = {},
): Promise<KubeControlPlane> {
  const assets = await findEnvtestAssets();
  const dir = await tempDir('kube');
  const certDir = join(dir, 'certs');
  await mkdir(certDir, { recursive: true });
  await mkdir(join(dir, 'etcd'), { recursive: true });

  const users: KubeUser[] = [{ name: 'admin', groups: ['system:masters'] }, ...(options.users ?? [])];
  const tokens = new Map(users.map((u) => [u.name, randomBytes(24).toString('hex')]));
  const csv = (s: string): string => `"${s.replaceAll('"', '""')}"`;
  await writeFile(
    join(dir, 'tokens.csv'),
    users
      .map((u) => [tokens.get(u.name), u.name, `uid-${u.name}`, csv((u.groups ?? []).join(','))].join(','))
      .join('\n'),
    { mode: 0o600 },
  );
  // The service-account signing key: required flags even though no pod ever runs.
  const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await writeFile(join(certDir, 'sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(join(certDir, 'sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));

  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const server = `https://127.0.0.1:${apiPort}`;
  const etcd = new ManagedProcess({
    name: 'etcd',
    command: assets.paths.etcd,
    args: [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync=true',
    ],
    logFile: join(dir, 'etcd.log'),
    readyPattern: /ready to serve client requests/,
    readyTimeoutMs: 60_000,
  });
  const timeoutMs = (options.startTimeoutSeconds ?? 90) * 1000;
  const apiserver = new ManagedProcess({
    name: 'kube-apiserver',
    command: assets.paths['kube-apiserver'],
    // envtest's flags (controller-runtime pkg/internal/testing/controlplane/apiserver.go).
    args: [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--secure-port=${apiPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--disable-admission-plugins=ServiceAccount',
      '--authorization-mode=RBAC',
      `--service-account-issuer=${server}/`,
      `--service-account-key-file=${join(certDir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(certDir, 'sa.key')}`,
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
    ],
    logFile: join(dir, 'apiserver.log'),
    readyPattern: /Serving securely on/,
    readyTimeoutMs: timeoutMs,
  });
  const start = async (): Promise<void> => {
    await etcd.start();
    await apiserver.start();
    // Self-signed by the API server (trusted only by the kubeconfigs, which are written later).
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    // /readyz includes the RBAC bootstrap roles and the CRD informers.
    await waitFor(
      async () => {
        const response = await request(`${server}/readyz`, {
          dispatcher: insecure,
          headers: { authorization: `Bearer ${tokens.get('admin')}` },
        });
        await response.body.dump();
        return response.statusCode === 200;
      },
      { timeoutMs, intervalMs: 100, message: `kube-apiserver ${server} ready` },
    ).finally(() => insecure.close());
  };
  const stop = async (): Promise<void> => {
    await apiserver.stop('SIGTERM', 20_000);
    await etcd.stop('SIGTERM', 10_000);
  };
  try {
    await start();
  } catch (error) {
    await stop();
    throw error;
  }

  const ca = (await readFile(join(certDir, 'apiserver.crt'))).toString('base64');
  const kubeconfigs = new Map<string, string>();
  const kubeconfigFor = async (user: string): Promise<string> => {
    const token = tokens.get(user);
    if (token === undefined) throw new Error(`no user ${user} was declared for this control plane`);
    let path = kubeconfigs.get(user);
    if (path === undefined) {
      path = join(dir, `kubeconfig-${user}.yaml`);
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'envtest', cluster: { server, 'certificate-authority-data': ca } }],
        users: [{ name: user, user: { token } }],
        contexts: [{ name: 'envtest', context: { cluster: 'envtest', user, namespace: 'default' } }],
        'current-context': 'envtest',
      };
      await writeFile(path, JSON.stringify(config, null, 2), { mode: 0o600 });
      kubeconfigs.set(user, path);
    }
    return path;
  };
  const kubeconfigPath = await kubeconfigFor('admin');

  const kubectl = async (
    args: readonly string[],
    opts: { input?: string; user?: string } = {},
  ): Promise<KubectlResult> => {
    const config = await kubeconfigFor(opts.user ?? 'admin');
    return await new Promise((resolve) => {
      const child = execFile(
        assets.paths.kubectl,
        [...args],
        { env: { ...process.env, KUBECONFIG: config }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
      child.stdin?.end(opts.input ?? '');
    });
  };

  return {
    server,
    dir,
    kubeconfigPath,
    assets,
    kubeconfigFor,
    kubectl,
    stop,
    start,
  };
}
