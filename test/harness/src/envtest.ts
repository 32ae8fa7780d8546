import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildWithGo, cacheDir } from '@petrel/localenv';

const run = promisify(execFile);

/**
 * The control-plane binaries the operator tests run, built from the Go module proxy by the
 * wrapper modules in tools/envtest (kube-apiserver and kubectl pinned by go.mod; etcd likewise).
 * The directory follows envtest's KUBEBUILDER_ASSETS convention, so a developer with
 * setup-envtest can point the tests at its assets instead.
 */
export const ENVTEST_KUBERNETES_VERSION = 'v1.35.4';
export const ENVTEST_ETCD_VERSION = 'v3.6.16';
export const ENVTEST_BINARIES = ['kube-apiserver', 'etcd', 'kubectl'] as const;
export type EnvtestBinary = (typeof ENVTEST_BINARIES)[number];

const TOOLS = fileURLToPath(new URL('../../../tools/envtest/', import.meta.url));

export interface EnvtestAssets {
  /** The directory holding kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS). */
  readonly dir: string;
  /** Each binary's path (TEST_ASSET_<NAME> overrides the directory per binary, as in envtest). */
  readonly paths: Readonly<Record<EnvtestBinary, string>>;
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** envtest's per-binary override: TEST_ASSET_KUBE_APISERVER, TEST_ASSET_ETCD, TEST_ASSET_KUBECTL. */
function overrideOf(name: EnvtestBinary): string | undefined {
  return process.env[`TEST_ASSET_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] || undefined;
}

async function complete(dir: string): Promise<EnvtestAssets | undefined> {
  const paths = {} as Record<EnvtestBinary, string>;
  for (const name of ENVTEST_BINARIES) {
    const path = overrideOf(name) ?? join(dir, name);
    if (!(await executable(path))) return undefined;
    paths[name] = path;
  }
  return { dir, paths };
}

export interface FindEnvtestAssetsOptions {
  /** Progress lines while building. */
  log?: (line: string) => void;
}

/**
 * Finds the envtest assets: KUBEBUILDER_ASSETS if set (it must then be complete), else the
 * versioned build in Petrel's cache, else builds them there with Go (about 5 minutes on 2
 * cores with an empty Go build cache; the module and build caches are kept for next time).
 * Concurrent callers are safe: the build goes to a staging directory renamed into place.
 */
export async function findEnvtestAssets(options: FindEnvtestAssetsOptions = {}): Promise<EnvtestAssets> {
  const explicit = process.env['KUBEBUILDER_ASSETS'];
  if (explicit) {
    const found = await complete(explicit);
    if (found) return found;
    throw new Error(
      `KUBEBUILDER_ASSETS=${explicit} does not hold executable ${ENVTEST_BINARIES.join(', ')} ` +
        '(unset it to let Petrel build them with Go)',
    );
  }
  const dir = join(cacheDir(), 'envtest', `k8s-${ENVTEST_KUBERNETES_VERSION}-etcd-${ENVTEST_ETCD_VERSION}`);
  const cached = await complete(dir);
  if (cached) return cached;

  const minor = /^v1\.(\d+)\./.exec(ENVTEST_KUBERNETES_VERSION)?.[1] ?? '';
  // Stamped like release builds: kube-apiserver reports this version (and derives its
  // compatibility version from it); unstamped it would say v0.0.0-master.
  const stamp = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']
    .flatMap((pkg) => [
      `-X ${pkg}.gitVersion=${ENVTEST_KUBERNETES_VERSION}`,
      `-X ${pkg}.gitMajor=1`,
      `-X ${pkg}.gitMinor=${minor}`,
    ])
    .join(' ');
  const goEnv = { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false -mod=readonly' };
  const build = async (module: string, args: string[]): Promise<void> => {
    await run('go', ['build', '-trimpath', ...args], {
      cwd: join(TOOLS, module),
      env: goEnv,
      timeout: 40 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  };
  await buildWithGo({
    dir,
    what: `kube-apiserver and kubectl ${ENVTEST_KUBERNETES_VERSION} and etcd ${ENVTEST_ETCD_VERSION}`,
    takes: 'a few minutes, once',
    build: async (staging) => {
      await build('etcd', ['-ldflags', '-s -w', '-o', join(staging, 'etcd'), '.']);
      await build('kubernetes', [
        '-ldflags',
        `-s -w ${stamp} -X k8s.io/component-base/version.gitTreeState=clean`,
        '-o',
        `${staging}/`,
        'k8s.io/kubernetes/cmd/kube-apiserver',
        'k8s.io/kubernetes/cmd/kubectl',
      ]);
    },
    complete: async () => (await complete(dir)) !== undefined,
    error: (kind, cause) =>
      kind === 'no-go'
        ? new Error(
            'the operator tests need kube-apiserver, etcd and kubectl: install Go (https://go.dev/doc/install) so ' +
              `that Petrel can build them from tools/envtest, or set KUBEBUILDER_ASSETS to a directory holding ` +
              `them (e.g. from \`setup-envtest use ${ENVTEST_KUBERNETES_VERSION.slice(1)} -p path\`)`,
            { cause },
          )
        : new Error(
            `building the envtest assets failed; check that the Go module proxy is reachable (go env GOPROXY), ` +
              'or set KUBEBUILDER_ASSETS',
            { cause },
          ),
    ...(options.log === undefined ? {} : { log: options.log }),
  });
  const built = await complete(dir);
  if (!built) throw new Error(`the envtest build left ${dir} incomplete`);
  return built;
}
