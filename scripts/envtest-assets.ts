// `npm run -s envtest:assets`: finds or builds kube-apiserver, etcd and kubectl for the operator
// tests and prints the directory that holds them (usable as KUBEBUILDER_ASSETS).
import { findEnvtestAssets } from '@petrel/test-harness';

const assets = await findEnvtestAssets({ log: (line) => process.stderr.write(`petrel: ${line}\n`) });
process.stdout.write(`${assets.dir}\n`);
