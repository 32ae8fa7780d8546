// The generated CRDs on a real kube-apiserver: accepted, the examples valid, bad resources refused
// with the schemas' own messages, `kubectl explain` and the printer columns as documented.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DeliveryPolicySchema, MailDomainSchema } from '@petrel/config';
import { type KubeControlPlane, startKubeControlPlane, waitFor } from '@petrel/test-harness';
import { crdsYaml } from './crds.ts';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
let plane: KubeControlPlane;

before(async () => {
  plane = await startKubeControlPlane();
  const applied = await plane.kubectl(['apply', '-f', '-'], { input: crdsYaml() });
  assert.equal(applied.code, 0, applied.stderr);
  const established = await plane.kubectl([
    'wait',
    '--for=condition=Established',
    'crd/maildomains.petrel.dev',
    'crd/deliverypolicies.petrel.dev',
  ]);
  assert.equal(established.code, 0, established.stderr);
  // Discovery may lag Established: an apply meanwhile fails with "no matches for kind".
  await waitFor(
    async () => {
      const listed = await plane.kubectl(['api-resources', '--api-group=petrel.dev', '-o', 'name']);
      const names = listed.stdout.split('\n');
      return names.includes('maildomains.petrel.dev') && names.includes('deliverypolicies.petrel.dev');
    },
    { timeoutMs: 60_000, intervalMs: 200, message: 'the petrel.dev kinds in discovery' },
  );
});
after(() => plane?.stop());

async function apply(yaml: string): Promise<{ code: number; stderr: string }> {
  return await plane.kubectl(['apply', '-f', '-'], { input: yaml });
}

const domain = (spec: string, name = 'd') => `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: ${name}}
spec:
${spec}`;

test('petrel crds output is what operator/crds holds, and the examples apply as they are', async () => {
  const { execFile } = await import('node:child_process');
  const printed = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [`${ROOT}services/cli/bin/petrel.js`, 'crds'], (error, stdout) =>
      error ? reject(error) : resolve(stdout),
    ),
  );
  assert.equal(printed, crdsYaml());
  for (const dir of ['examples/local', 'examples/full']) {
    const result = await plane.kubectl(['apply', '-f', `${ROOT}${dir}`]);
    assert.equal(result.code, 0, `${dir}: ${result.stderr}`);
  }
});

test('the API server applies the schema defaults, the same as zod', async () => {
  const applied = await apply(domain('  domain: defaults.example\n  dkim: {generate: {}}\n', 'defaults'));
  assert.equal(applied.code, 0, applied.stderr);
  const got = JSON.parse((await plane.kubectl(['get', 'maildomain', 'defaults', '-o', 'json'])).stdout) as {
    spec: Record<string, unknown>;
  };
  const zod = MailDomainSchema.parse({
    apiVersion: 'petrel.dev/v1alpha1',
    kind: 'MailDomain',
    metadata: { name: 'defaults' },
    spec: { domain: 'defaults.example', dkim: { generate: {} } },
  });
  assert.deepEqual(got.spec['dkim'], zod.spec.dkim);
  // Regression: match.domains / mxHostSuffixes had zod defaults the generated schema dropped.
  const policy = await apply(
    'apiVersion: petrel.dev/v1alpha1\nkind: DeliveryPolicy\nmetadata: {name: defaults}\nspec: {match: {domains: [a.example]}}\n',
  );
  assert.equal(policy.code, 0, policy.stderr);
  const stored = JSON.parse(
    (await plane.kubectl(['get', 'deliverypolicy', 'defaults', '-o', 'json'])).stdout,
  ) as { spec: Record<string, unknown> };
  const parsed = DeliveryPolicySchema.parse({
    apiVersion: 'petrel.dev/v1alpha1',
    kind: 'DeliveryPolicy',
    metadata: { name: 'defaults' },
    spec: { match: { domains: ['a.example'] } },
  });
  assert.deepEqual(stored.spec, JSON.parse(JSON.stringify(parsed.spec)));
});

test('invalid resources are refused by the API server with clear messages', async () => {
  const cases: [string, string, RegExp][] = [
    ['a bad domain', domain('  domain: "not a domain"\n'), /spec\.domain: Invalid value: "not a domain"/],
    [
      'own keys and generated keys',
      domain(
        '  domain: x.example\n  dkim:\n    generate: {}\n    keys: [{selector: s1, algorithm: rsa-sha256, privateKeySecretRef: {name: k, key: k}}]\n',
      ),
      /keys and generate cannot both be given/,
    ],
    [
      'CertManager without an issuer',
      domain('  domain: x.example\n  tls: {mode: CertManager}\n'),
      /issuerRef/,
    ],
    [
      'an unknown TLS mode',
      domain('  domain: x.example\n  tls: {mode: Magic}\n'),
      /spec\.tls\.mode: Unsupported value: "Magic"/,
    ],
    [
      'a DeliveryPolicy matching nothing',
      'apiVersion: petrel.dev/v1alpha1\nkind: DeliveryPolicy\nmetadata: {name: p}\nspec: {match: {}}\n',
      /match needs at least one domain or MX host suffix/,
    ],
    [
      'a relay with MX suffixes',
      'apiVersion: petrel.dev/v1alpha1\nkind: DeliveryPolicy\nmetadata: {name: p}\nspec: {match: {mxHostSuffixes: [google.com]}, relay: {host: r.example}}\n',
      /relay host replaces MX lookup/,
    ],
    // Regression: with reason FieldValueDuplicate the API server printed only "Duplicate value".
    [
      'two keys with one selector',
      domain(
        '  domain: x.example\n  dkim:\n    keys:\n    - {selector: s1, algorithm: rsa-sha256, privateKeySecretRef: {name: k, key: k}}\n    - {selector: S1, algorithm: rsa-sha256, privateKeySecretRef: {name: k, key: j}}\n',
      ),
      /spec\.dkim\.keys: Invalid value: .*selectors must be unique/,
    ],
    [
      'an algorithm twice',
      domain('  domain: x.example\n  dkim: {generate: {algorithms: [ed25519-sha256, ed25519-sha256]}}\n'),
      /must not name an algorithm twice/,
    ],
    [
      'two webhooks with one name',
      domain(
        '  domain: x.example\n  webhooks:\n  - {name: h, url: "https://h.example/", events: [delivered], secretRef: {name: s, key: k}}\n  - {name: h, url: "https://i.example/", events: [bounced], secretRef: {name: s, key: k}}\n',
      ),
      /webhook names must be unique within the MailDomain/,
    ],
    [
      'an event twice',
      domain(
        '  domain: x.example\n  webhooks:\n  - {name: h, url: "https://h.example/", events: [bounced, bounced], secretRef: {name: s, key: k}}\n',
      ),
      /must not name an event twice/,
    ],
  ];
  for (const [what, yaml, message] of cases) {
    const result = await apply(yaml);
    assert.notEqual(result.code, 0, `${what} was accepted`);
    assert.match(result.stderr, message, what);
  }
});

test('kubectl explain reads the descriptions; kubectl get shows the printer columns', async () => {
  const explain = await plane.kubectl(['explain', 'maildomain.spec.dkim.generate']);
  assert.equal(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /keyGeneration/);
  // kubectl wraps the description; compare with the whitespace folded.
  assert.match(explain.stdout.replace(/\s+/g, ' '), /Raising it rotates the keys now/);
  const get = await plane.kubectl(['get', 'maildomains']);
  assert.match(get.stdout.split('\n')[0] ?? '', /NAME\s+DOMAIN\s+READY\s+DKIM\s+CERTIFICATE\s+DNS\s+AGE/);
});
