import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { crdFileName, crdManifests, crdYaml } from './crds.ts';

const DIR = fileURLToPath(new URL('../../../crds/', import.meta.url));

test('the committed CRDs are what the schemas generate (run `npm run crds:gen` after changing a schema)', async () => {
  const crds = crdManifests();
  assert.deepEqual((await readdir(DIR)).sort(), crds.map(crdFileName).sort());
  for (const crd of crds) {
    const committed = await readFile(`${DIR}${crdFileName(crd)}`, 'utf8');
    assert.equal(committed, crdYaml(crd), `operator/crds/${crdFileName(crd)} is stale: run npm run crds:gen`);
  }
});

test('the schemas are structural: every node has a type, nothing structural schemas forbid', () => {
  const problems: string[] = [];
  const walk = (node: Record<string, unknown>, path: string): void => {
    if (typeof node['type'] !== 'string' && node['x-kubernetes-preserve-unknown-fields'] !== true) {
      problems.push(`${path}: no type`);
    }
    for (const forbidden of ['$ref', '$schema', 'anyOf', 'oneOf', 'allOf', 'not', 'const', 'nullable']) {
      if (forbidden in node) problems.push(`${path}: ${forbidden}`);
    }
    if ('additionalProperties' in node && 'properties' in node)
      problems.push(`${path}: additionalProperties beside properties`);
    if (typeof node['description'] !== 'string' && path.split('.').length > 2 && !path.endsWith('[]')) {
      problems.push(`${path}: no description (kubectl explain shows nothing)`);
    }
    for (const [name, child] of Object.entries(
      (node['properties'] as Record<string, Record<string, unknown>>) ?? {},
    )) {
      walk(child, `${path}.${name}`);
    }
    if (node['items']) walk(node['items'] as Record<string, unknown>, `${path}[]`);
  };
  for (const crd of crdManifests()) {
    const version = (crd['spec'] as { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] })
      .versions[0];
    const root = version?.schema.openAPIV3Schema ?? {};
    const props = root['properties'] as Record<string, Record<string, unknown>>;
    for (const part of ['spec', 'status'])
      walk(props[part] ?? {}, `${(crd['metadata'] as { name: string }).name}.${part}`);
  }
  assert.deepEqual(problems, []);
});
