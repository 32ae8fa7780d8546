// `npm run crds:gen`: writes operator/crds/*.yaml from the schemas (crds.test.ts checks they agree).
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { crdFileName, crdManifests, crdYaml } from './crds.ts';

const dir = fileURLToPath(new URL('../../../crds/', import.meta.url));
for (const crd of crdManifests()) {
  await writeFile(`${dir}${crdFileName(crd)}`, crdYaml(crd));
  process.stdout.write(`wrote operator/crds/${crdFileName(crd)}\n`);
}
