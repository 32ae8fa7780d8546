import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, DomainIndex, parseRuntimeConfig } from '@petrel/config';
import { compileDirectory, writeRuntimeConfig } from './compile.ts';

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
        users: [{ name: 'app@example.org', password: 'change-me', allowedSenders: ['*@example.org'] }],
        inbound: {
          checks: { spf: true, dkim: true, dmarc: true, arc: true, dmarcReject: true },
          greylisting: { enabled: false, delaySeconds: 300, expireSeconds: 36 * 3600 },
          tarpit: { enabled: false, delayMs: 2000 },
        },
        dkimKeys: [],
        outbound: {},
        webhooks: [],
        draining: false,
        hostnames: [],
      },
    ]);
    assert.deepEqual(config.policies, []);
  });
});

test('DKIM keys are resolved from their Secrets; a missing or non-PEM key is reported', async () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n';
  const signed = `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: signed}
spec:
  domain: signed.example
  dkim:
    keys:
      - {selector: ed2026, algorithm: ed25519-sha256, privateKeySecretRef: {name: signed-dkim, key: ed}}
---
apiVersion: v1
kind: Secret
metadata: {name: signed-dkim}
stringData:
  ed: ${JSON.stringify(pem)}
  junk: "not a key"
`;
  await withDir({ 'signed.yaml': signed }, async (dir) => {
    const config = await compileDirectory(dir, 1);
    assert.deepEqual(config.domains[0]?.dkimKeys, [
      { selector: 'ed2026', algorithm: 'ed25519-sha256', privateKeyPem: pem },
    ]);
  });
  const broken = signed
    .replace('key: ed}', 'key: junk}')
    .replace(
      'keys:\n',
      'keys:\n      - {selector: rsa, algorithm: rsa-sha256, privateKeySecretRef: {name: nowhere, key: k}}\n',
    );
  await withDir({ 'broken.yaml': broken }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /DKIM key rsa: Secret nowhere not found/);
      assert.match(
        error.message,
        /DKIM key ed2026: Secret signed-dkim key junk is not an unencrypted PEM private key/,
      );
      return true;
    });
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
      assert.match(error.message, /a\.yaml#2: MailDomain nosecret: user u: Secret missing not found/);
      assert.match(error.message, /a\.yaml#3: unsupported kind "ConfigMap"/);
      assert.match(error.message, /c\.yaml#1: domain example\.org is already declared in b\.yml#1/);
      return true;
    });
  });
});

const tuned = `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: tuned, namespace: mail}
spec:
  domain: tuned.example
  inbound:
    checks: {arc: false, dmarcReject: false}
    greylisting: {enabled: true, expireHours: 2}
    tarpit: {enabled: true, delayMs: 50}
  submission:
    users:
      - name: bot@tuned.example
        passwordSecretRef: {name: tuned-smtp, key: bot}
        allowedSenders: ["bot@tuned.example"]
---
apiVersion: v1
kind: Secret
metadata: {name: tuned-smtp}
data: {bot: "czNjcjN0IHcwcmQ="}
`;

test('fills inbound defaults, converts hours to seconds and decodes base64 Secret data', async () => {
  await withDir({ 'tuned.yaml': tuned }, async (dir) => {
    const config = await compileDirectory(dir, 1);
    const domain = config.domains[0];
    assert.equal(domain?.source, 'mail/tuned');
    assert.deepEqual(domain?.inbound, {
      checks: { spf: true, dkim: true, dmarc: true, arc: false, dmarcReject: false },
      greylisting: { enabled: true, delaySeconds: 300, expireSeconds: 7200 },
      tarpit: { enabled: true, delayMs: 50 },
    });
    assert.deepEqual(domain?.users, [
      { name: 'bot@tuned.example', password: 's3cr3t w0rd', allowedSenders: ['bot@tuned.example'] },
    ]);
    const index = new DomainIndex(config);
    assert.equal(index.user('bot@tuned.example')?.domain.domain, 'tuned.example');
    assert.equal(index.user('bot@tuned.example')?.user.password, 's3cr3t w0rd');
    assert.equal(index.user('nobody@tuned.example'), undefined);
    assert.equal(index.managed('TUNED.example')?.domain, 'tuned.example');
  });
});

test('stringData wins over data for the same key, as in Kubernetes', async () => {
  const both = tuned.replace(
    'data: {bot: "czNjcjN0IHcwcmQ="}',
    'data: {bot: "b2xk"}\nstringData: {bot: new}',
  );
  await withDir({ 'tuned.yaml': both }, async (dir) => {
    const config = await compileDirectory(dir, 1);
    assert.equal(config.domains[0]?.users[0]?.password, 'new');
  });
});

test('a missing Secret key names the MailDomain, the Secret and the key', async () => {
  const noKey = tuned.replace('data: {bot: "czNjcjN0IHcwcmQ="}', 'data: {other: "eA=="}');
  await withDir({ 'tuned.yaml': noKey }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /MailDomain tuned: user bot@tuned\.example: Secret tuned-smtp has no key bot/,
      );
      return true;
    });
  });
});

test('a user name declared in two domains is refused', async () => {
  const twin = minimal
    .replace('name: example-org}', 'name: example-net}')
    .replace('domain: Example.ORG', 'domain: example.net');
  await withDir({ 'a.yaml': minimal, 'b.yaml': twin.split('---')[0] ?? '' }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /b\.yaml#1: MailDomain example-net: user app@example\.org: user name is already declared in a\.yaml#1/,
      );
      return true;
    });
  });
});

test('writeRuntimeConfig writes a loadable file readable by its owner only', async () => {
  await withDir({ 'example.yaml': minimal }, async (dir) => {
    const config = await compileDirectory(dir, 3);
    const path = join(dir, 'runtime.json');
    await writeFile(`${path}.${process.pid}.tmp`, 'stale', { mode: 0o644 });
    await writeRuntimeConfig(path, config);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const loaded = parseRuntimeConfig(JSON.parse(await readFile(path, 'utf8')), path);
    assert.deepEqual(loaded, config);
  });
});

test('the examples/local directory compiles', async () => {
  const config = await compileDirectory(new URL('../../../examples/local', import.meta.url).pathname, 1);
  const index = new DomainIndex(config);
  assert.ok(index.managed('example.org'));
  assert.equal(index.user('app@example.org')?.user.password, 'change-me');
});

test('DeliveryPolicy and MailDomain outbound limits compile into the runtime config; conflicts are refused', async () => {
  const policies = `apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: google}
spec:
  match: {mxHostSuffixes: [google.com]}
  ratePerSecond: 20
  maxConnections: 5
  retryDelays: [30s, 10m]
---
apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: partner, namespace: mail}
spec:
  match: {domains: [partner.example, "*.partner.example"]}
  tls: verified
  relay:
    host: relay.partner.example
    port: 587
    auth: {username: petrel, passwordSecretRef: {name: relay, key: password}}
---
apiVersion: v1
kind: Secret
metadata: {name: relay}
stringData: {password: s3cret}
---
apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: tenant}
spec:
  domain: tenant.example
  outbound: {ratePerSecond: 5, queueLifetime: 2d}
`;
  await withDir({ 'p.yaml': policies }, async (dir) => {
    const config = await compileDirectory(dir, 1);
    assert.deepEqual(config.policies, [
      {
        source: 'default/google',
        domains: [],
        mxHostSuffixes: ['google.com'],
        ratePerSecond: 20,
        maxConnections: 5,
        tls: 'opportunistic',
        retryDelaysMs: [30_000, 600_000],
        adaptive: true,
      },
      {
        source: 'mail/partner',
        domains: ['partner.example', '*.partner.example'],
        mxHostSuffixes: [],
        tls: 'verified',
        adaptive: true,
        relay: { host: 'relay.partner.example', port: 587, username: 'petrel', password: 's3cret' },
      },
    ]);
    assert.deepEqual(config.domains[0]?.outbound, { ratePerSecond: 5, queueLifetimeMs: 2 * 86_400_000 });
  });
  const conflicting = `${policies}---
apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: again}
spec:
  match: {domains: [partner.example]}
  ratePerSecond: 0
  retryDelays: [soon]
`;
  await withDir({ 'p.yaml': conflicting.replace('name: relay}', 'name: other}') }, async (dir) => {
    const error = await compileDirectory(dir, 1).then(
      () => assert.fail('compiled'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /DeliveryPolicy[\s\S]*ratePerSecond/);
    assert.match(error.message, /must be a duration/);
  });
  const twice = policies.replace(
    'kind: MailDomain',
    'kind: DeliveryPolicy\nmetadata: {name: x}\nspec: {match: {domains: [partner.example]}}\n---\napiVersion: petrel.dev/v1alpha1\nkind: MailDomain',
  );
  await withDir({ 'p.yaml': twice.replace('name: relay}', 'name: missing}') }, async (dir) => {
    const error = await compileDirectory(dir, 1).then(
      () => assert.fail('compiled'),
      (e: unknown) => e,
    );
    assert.match(String(error), /domain partner.example is already matched by/);
    assert.match(String(error), /Secret relay not found/);
  });
});

const hooked = `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: hooked, namespace: mail}
spec:
  domain: hooked.example
  webhooks:
    - name: ops
      url: https://hooks.example.com/petrel
      events: [delivered, deferred, bounced, expired, suppressed]
      secretRef: {name: hooked-webhooks, key: ops}
    - name: bounces
      url: http://127.0.0.1:8080/bounces
      events: [bounced]
      secretRef: {name: hooked-webhooks, key: bounces}
---
apiVersion: v1
kind: Secret
metadata: {name: hooked-webhooks}
stringData: {ops: "ops-secret-0123456789abcdef", bounces: "bounces-secret-0123456789"}
`;

test('webhook subscriptions compile with their secrets resolved and are found by domain and id', async () => {
  await withDir({ 'hooked.yaml': hooked }, async (dir) => {
    const config = await compileDirectory(dir, 1);
    assert.deepEqual(config.domains[0]?.webhooks, [
      {
        id: 'mail/hooked/ops',
        name: 'ops',
        url: 'https://hooks.example.com/petrel',
        events: ['delivered', 'deferred', 'bounced', 'expired', 'suppressed'],
        secret: 'ops-secret-0123456789abcdef',
      },
      {
        id: 'mail/hooked/bounces',
        name: 'bounces',
        url: 'http://127.0.0.1:8080/bounces',
        events: ['bounced'],
        secret: 'bounces-secret-0123456789',
      },
    ]);
    const index = new DomainIndex(config);
    assert.equal(index.hasWebhooks, true);
    assert.deepEqual(
      index.webhooks('Hooked.Example').map((w) => w.id),
      ['mail/hooked/ops', 'mail/hooked/bounces'],
    );
    assert.equal(index.webhook('mail/hooked/bounces')?.domain.domain, 'hooked.example');
    assert.equal(index.webhook('mail/hooked/bounces')?.webhook.secret, 'bounces-secret-0123456789');
    assert.equal(index.webhook('mail/hooked/nope'), undefined);
    assert.deepEqual(index.webhooks('other.example'), []);
  });
});

test('webhook secrets that are missing, absent or too short, and reused ids, are reported', async () => {
  const broken = hooked
    .replace('key: bounces}', 'key: nope}')
    .replace('ops: "ops-secret-0123456789abcdef"', 'ops: "short"');
  const elsewhere = (hooked.split('---')[0] ?? '')
    .replace('name: hooked, namespace: mail', 'name: elsewhere, namespace: mail')
    .replace('domain: hooked.example', 'domain: elsewhere.example')
    .replace('name: hooked-webhooks, key: ops', 'name: nowhere, key: ops');
  await withDir({ 'a.yaml': broken, 'b.yaml': elsewhere }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'PETREL_ERR_INVALID_MANIFEST');
      assert.match(
        error.message,
        /a\.yaml#1: MailDomain hooked: webhook ops: Secret hooked-webhooks key ops is shorter than 16 characters/,
      );
      assert.match(
        error.message,
        /a\.yaml#1: MailDomain hooked: webhook bounces: Secret hooked-webhooks has no key nope/,
      );
      assert.match(error.message, /b\.yaml#1: MailDomain elsewhere: webhook ops: Secret nowhere not found/);
      return true;
    });
  });
  // The same MailDomain name in one namespace (another domain): the subscription ids would clash.
  const twin = (hooked.split('---')[0] ?? '').replace('domain: hooked.example', 'domain: twin.example');
  await withDir({ 'a.yaml': hooked, 'b.yaml': twin }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /b\.yaml#1: MailDomain hooked: webhook ops: webhook id mail\/hooked\/ops is already declared in a\.yaml#1/,
      );
      return true;
    });
  });
});

test('invalid webhook subscriptions are refused with the field and the reason', async () => {
  const invalid = hooked
    .replace('url: https://hooks.example.com/petrel', 'url: ftp://hooks.example.com/petrel')
    .replace('events: [bounced]', 'events: [bounced, accepted]');
  await withDir({ 'a.yaml': invalid }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /a\.yaml#1: invalid MailDomain:/);
      assert.match(error.message, /must be an http:\/\/ or https:\/\/ URL\s+→ at spec\.webhooks\[0\]\.url/);
      assert.match(
        error.message,
        /must be one of delivered, deferred, bounced, expired, suppressed\s+→ at spec\.webhooks\[1\]\.events\[1\]/,
      );
      return true;
    });
  });
  await withDir({ 'a.yaml': hooked.replace('name: bounces', 'name: ops') }, async (dir) => {
    await assert.rejects(compileDirectory(dir, 1), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /webhook name ops is used twice; names must be unique within the MailDomain\s+→ at spec\.webhooks\[1\]\.name/,
      );
      return true;
    });
  });
});
