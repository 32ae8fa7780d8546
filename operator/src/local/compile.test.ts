import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '@petrel/config';
import { compileDirectory } from './compile.ts';

async function withDir(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-compile-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const minimal = `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: example-org}
spec:
  domain: Example.ORG
  inbound:
    routes: [{host: mailstore.example.internal, port: 25}]
  submission:
    users:
      - name: app@example.org
        passwordSecretRef: {name: example-org-smtp, key: app}
        allowedSenders: ["*@example.org"]
---
apiVersion: v1
kind: Secret
metadata: {name: example-org-smtp}
stringData: {app: "change-me"}
`;

test('compiles the minimal MailDomain form of the architecture brief', async () => {
  await withDir({ 'example.yaml': minimal }, async (dir) => {
    const config = await compileDirectory(dir, 7);
    assert.equal(config.generation, 7);
    assert.deepEqual(config.domains, [
      {
        source: 'default/example-org',
        domain: 'example.org',
        inboundRoutes: [{ host: 'mailstore.example.internal', port: 25, protocol: 'smtp' }],
        users: [{ name: 'app@example.org', allowedSenders: ['*@example.org'] }],
      },
    ]);
  });
});

test('reports every problem with its file and document', async () => {
  const bad = `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: broken}
spec: {domain: "not a domain"}
---
apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: nosecret}
spec:
  domain: other.example
  submission:
    users: [{name: u, passwordSecretRef: {name: missing, key: k}, allowedSenders: ["*@other.example"]}]
---
kind: ConfigMap
`;
  await withDir({ 'a.yaml': bad, 'b.yml': minimal, 'c.yaml': minimal.split('---')[0] ?? '' }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'PETREL_ERR_INVALID_MANIFEST');
      assert.match(error.message, /a\.yaml#1: invalid MailDomain:[\s\S]*fully qualified domain name/);
      assert.match(error.message, /a\.yaml#2: user u: Secret missing not found/);
      assert.match(error.message, /a\.yaml#3: unsupported kind "ConfigMap"/);
      assert.match(error.message, /c\.yaml#1: domain example\.org is already declared in b\.yml#1/);
      return true;
    });
  });
});
