import { copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@petrel/test-harness';

/** The example manifests shipped in examples/local (the minimal MailDomain form of the brief). */
export const EXAMPLE_MANIFEST = fileURLToPath(
  new URL('../../examples/local/example-org.yaml', import.meta.url),
);

/** A config directory holding the example manifest (example.org is managed). */
export async function exampleConfigDir(): Promise<string> {
  const dir = await tempDir('config');
  await copyFile(EXAMPLE_MANIFEST, join(dir, 'example-org.yaml'));
  return dir;
}

export async function writeMailDomain(dir: string, name: string, domain: string): Promise<void> {
  await writeFile(
    join(dir, `${name}.yaml`),
    `apiVersion: petrel.dev/v1alpha1\nkind: MailDomain\nmetadata: {name: ${name}}\nspec: {domain: ${domain}}\n`,
  );
}
