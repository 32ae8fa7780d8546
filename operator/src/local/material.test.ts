import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@petrel/config';
import { compileDirectory } from './compile.ts';

const FULL = fileURLToPath(new URL('../../../examples/full/', import.meta.url));
const LOCAL = fileURLToPath(new URL('../../../examples/local/', import.meta.url));

async function stateDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-local-operator-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('local mode generates the DKIM keys and the certificate examples/full asks for, once', async (t) => {
  const state = await stateDir(t);
  const first = await compileDirectory(FULL, 1, { stateDir: state });
  const domain = first.domains.find((d) => d.domain === 'example.com');
  assert.ok(domain);
  assert.deepEqual(domain.dkimKeys.map((k) => [k.selector, k.algorithm]).sort(), [
    ['petrel-1-ed25519', 'ed25519-sha256'],
    ['petrel-1-rsa', 'rsa-sha256'],
  ]);
  assert.deepEqual(domain.hostnames, ['mx.example.com', 'smtp.example.com']);
  const leaf = new X509Certificate(domain.tls?.certificatePem ?? '');
  const ca = JSON.parse(await readFile(join(state, 'ca.json'), 'utf8')) as { certPem: string };
  assert.ok(leaf.checkIssued(new X509Certificate(ca.certPem)));
  assert.equal(leaf.checkHost('smtp.example.com'), 'smtp.example.com');
  assert.equal(first.policies[0]?.mxHostSuffixes[0], 'google.com');
  // Kept as Secret files of the operator (mode 0600), never in the config directory.
  const secrets = (await readdir(join(state, 'secrets'))).sort();
  assert.deepEqual(secrets, [
    'example-com-dkim-petrel-1-ed25519.json',
    'example-com-dkim-petrel-1-rsa.json',
    'example-com-tls.json',
  ]);

  // A restart (a new compile over the same state): the same keys and certificate.
  const again = await compileDirectory(FULL, 2, { stateDir: state });
  assert.deepEqual(again.domains, first.domains);
});

test('a rotation in local mode: the next generation waits for DNS or activateAfter, the old one keeps signing meanwhile', async (t) => {
  const state = await stateDir(t);
  const dir = await stateDir(t);
  const manifest = (generation: number) => `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: rot}
spec:
  domain: rot.example
  dkim: {generate: {keyGeneration: ${generation}, activateAfter: 1s, retireAfter: 1s}}
`;
  await writeFile(join(dir, 'rot.yaml'), manifest(1));
  let now = Date.parse('2026-11-01T00:00:00Z');
  const selectors = async () =>
    (await compileDirectory(dir, 1, { stateDir: state, now: () => now })).domains[0]?.dkimKeys.map(
      (k) => k.selector,
    );
  assert.deepEqual(await selectors(), ['petrel-1-rsa']);
  await writeFile(join(dir, 'rot.yaml'), manifest(2));
  assert.deepEqual(await selectors(), ['petrel-1-rsa'], 'generation 2 is pending');
  now += 1500;
  assert.deepEqual(await selectors(), ['petrel-2-rsa'], 'generation 2 signs after activateAfter');
  now += 1500;
  await selectors();
  assert.deepEqual(
    (await readdir(join(state, 'secrets'))).sort(),
    ['rot-dkim-petrel-2-rsa.json'],
    'generation 1 retired',
  );
});

test('without dkim and tls nothing is generated; cert-manager asked for locally is a problem', async (t) => {
  const state = await stateDir(t);
  const local = await compileDirectory(LOCAL, 1, { stateDir: state });
  assert.deepEqual(local.domains[0]?.dkimKeys, []);
  assert.equal(local.domains[0]?.tls, undefined);
  const dir = await stateDir(t);
  await writeFile(
    join(dir, 'cm.yaml'),
    `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: cm}
spec:
  domain: cm.example
  tls: {mode: CertManager, issuerRef: {name: letsencrypt, kind: ClusterIssuer}}
`,
  );
  await assert.rejects(compileDirectory(dir, 1, { stateDir: state }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /cm\.yaml#1: MailDomain cm: TLS: spec\.tls\.mode is CertManager but/);
    return true;
  });
});
