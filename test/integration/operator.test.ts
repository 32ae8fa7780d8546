// The operator against a real control plane (etcd + kube-apiserver, RBAC on), a real NATS and
// Postgres and a real DNS server: `petrel operator` runs as a child process under the
// least-privilege identity of examples/rbac/operator.yaml, and everything is observed
// through the API server (kubectl), the published runtime config and a running ingress.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import type { RuntimeConfig } from '@petrel/config';
import { reuseConnections } from '@petrel/operator';
import { readRuntimeConfig } from '@petrel/queue';
import { ensurePartitions, migrate } from '@petrel/store';
import {
  type DnsServer,
  forkIngress,
  issueCertificate,
  type KubeControlPlane,
  startDnsServer,
  startKubeControlPlane,
  startNats,
  startPostgres,
  swaks,
  type TestPostgres,
  tempDir,
  waitFor,
} from '@petrel/test-harness';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PETREL = join(ROOT, 'services/cli/bin/petrel.js');
const OPERATOR_USER = 'system:serviceaccount:petrel-system:petrel-operator';
const NS = 'mail';
const WAIT = { timeoutMs: 60_000, intervalMs: 250 };

type Cleanup = () => Promise<void> | void;
const cleanups: Cleanup[] = [];
const afterAll = (fn: Cleanup): void => {
  cleanups.push(fn);
};

let plane: KubeControlPlane;
let nats: { url: string };
let nc: NatsConnection;
let dns: DnsServer;
let postgres: TestPostgres;
let key: Buffer;
let keyFile: string;
let dir: string;

interface OperatorProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

/**
 * The lease is short so that failover is quick, but its renew deadline (2/3 of it) must outlast
 * a lease update on this loaded machine: a leader that misses it exits, and nothing restarts it here.
 */
function startOperator(identity: string, extra: string[] = [], leaseDuration = '8s'): OperatorProcess {
  const child = spawn(
    process.execPath,
    [
      PETREL,
      'operator',
      '--kubeconfig',
      join(dir, 'operator.kubeconfig'),
      '--namespace',
      'petrel-system',
      '--watch-namespaces',
      NS,
      '--nats-url',
      nats.url,
      '--config-key-file',
      keyFile,
      '--dns-server',
      dns.address,
      '--dns-check-interval',
      '1s',
      '--drain-grace',
      '0',
      '--database-url',
      postgres.databaseUrl,
      '--identity',
      identity,
      '--lease-duration',
      leaseDuration,
      ...extra,
    ],
    { env: { ...process.env, PETREL_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const collect = (chunk: Buffer): void => {
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, output, exited };
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const result = await plane.kubectl(args, input === undefined ? {} : { input });
  assert.equal(result.code, 0, `kubectl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function getJson<T = Record<string, unknown>>(
  kind: string,
  name: string,
  namespace = NS,
): Promise<T | undefined> {
  const result = await plane.kubectl(['get', kind, name, '-n', namespace, '-o', 'json']);
  return result.code === 0 ? (JSON.parse(result.stdout) as T) : undefined;
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}
interface MailDomainJson {
  metadata: { generation: number; uid: string; finalizers?: string[] };
  status?: {
    observedGeneration?: number;
    conditions?: Condition[];
    dnsRecords?: { purpose: string; type: string; name: string; value: string; verified?: boolean }[];
    dkimKeys?: { selector: string; state: string; secretName: string }[];
    certificate?: { source: string; secretName: string; notAfter?: string; dnsNames: string[] };
    configGeneration?: number;
    dnsCheckedAt?: string;
  };
}

function condition(object: MailDomainJson | undefined, type: string): Condition | undefined {
  return object?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the resource's condition has `status` for its current generation; returns the resource. */
async function waitCondition(
  kind: string,
  name: string,
  type: string,
  status: string,
  timeoutMs = WAIT.timeoutMs,
): Promise<MailDomainJson> {
  let last: MailDomainJson | undefined;
  try {
    return await waitFor(
      async () => {
        last = await getJson<MailDomainJson>(kind, name);
        const c = condition(last, type);
        return c?.status === status && c.observedGeneration === last?.metadata.generation ? last : undefined;
      },
      { timeoutMs, intervalMs: 250, message: `${kind} ${name} ${type}=${status}` },
    );
  } catch (error) {
    const logs = leader?.output.slice(-15).join('\n');
    throw new Error(
      `${(error as Error).message}; last status: ${JSON.stringify(last?.status)}\noperator log:\n${logs}`,
    );
  }
}

async function published(): Promise<RuntimeConfig | undefined> {
  return (await readRuntimeConfig(nc, { key }))?.config;
}

function domainYaml(name: string, domain: string, extraSpec = ''): string {
  return `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: ${name}, namespace: ${NS}}
spec:
  domain: ${domain}
  inbound:
    routes: [{host: mailstore.internal.example, port: 25}]
    checks: {spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false}
  submission:
    users:
      - name: app@${domain}
        passwordSecretRef: {name: ${name}-smtp, key: app}
        allowedSenders: ["*@${domain}"]
${extraSpec}---
apiVersion: v1
kind: Secret
metadata: {name: ${name}-smtp, namespace: ${NS}}
stringData: {app: "s3cret-${name}"}
`;
}

let leader: OperatorProcess;

before(async () => {
  const hook = (fn: Cleanup): void => afterAll(fn);
  dir = await tempDir('operator-it');
  [plane, nats, dns, postgres] = await Promise.all([
    startKubeControlPlane({ users: [{ name: OPERATOR_USER, groups: ['system:serviceaccounts'] }] }),
    startNats(hook),
    startDnsServer({ after: hook, ttlSeconds: 1 }),
    startPostgres(hook),
  ]);
  afterAll(() => plane.stop());
  await migrate(postgres.databaseUrl);
  nc = await natsConnect({ servers: nats.url });
  afterAll(() => nc.close());
  key = randomBytes(32);
  keyFile = join(dir, 'config.key');
  await writeFile(keyFile, key.toString('hex'), { mode: 0o600 });
  await copyFile(await plane.kubeconfigFor(OPERATOR_USER), join(dir, 'operator.kubeconfig'));

  await kubectl(['create', 'namespace', 'petrel-system']);
  await kubectl(['create', 'namespace', NS]);
  for (const file of (await readdir(join(ROOT, 'operator/crds'))).sort()) {
    await kubectl(['apply', '-f', join(ROOT, 'operator/crds', file)]);
  }
  await kubectl([
    'wait',
    '--for=condition=Established',
    'crd/maildomains.petrel.dev',
    'crd/deliverypolicies.petrel.dev',
  ]);
  await kubectl(['apply', '-f', join(ROOT, 'examples/rbac/operator.yaml')]);
  leader = startOperator('operator-a');
});

after(async () => {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      // every cleanup runs
    }
  }
});

test('a MailDomain becomes Ready: DKIM key Secret, a certificate from the operator CA, DNS records, runtime config; a running ingress takes it without a restart', async (t) => {
  // The ingress starts first and waits for the operator's config.
  const { mxPort } = await forkIngress({
    natsUrl: nats.url,
    config: { store: 'PETREL_CONFIG', keyFile },
    dataDir: dir,
    dnsServer: dns.address,
    after: t.after.bind(t),
  });

  await kubectl(['apply', '-f', '-'], domainYaml('example-org', 'example.org', '  dkim: {}\n'));
  const ready = await waitCondition('maildomain', 'example-org', 'Ready', 'True');
  for (const type of ['DKIMReady', 'CertificateReady', 'ConfigPublished']) {
    assert.equal(
      condition(ready, type)?.status,
      'True',
      `${type}: ${JSON.stringify(condition(ready, type))}`,
    );
  }
  assert.deepEqual(ready.metadata.finalizers, ['petrel.dev/cleanup']);
  // DNS is the owner's job: not there yet, reported, and not gating Ready.
  assert.equal(condition(ready, 'DNSVerified')?.status, 'False');

  const status = ready.status ?? {};
  const byPurpose = new Map((status.dnsRecords ?? []).map((r) => [r.purpose, r]));
  assert.deepEqual([...byPurpose.keys()].sort(), ['DKIM', 'DMARC', 'MTA-STS', 'MX', 'SPF']);
  assert.equal(byPurpose.get('MX')?.value, '10 mx.example.org.');
  assert.equal(byPurpose.get('MX')?.name, 'example.org');
  assert.equal(byPurpose.get('DKIM')?.name, 'petrel-1-rsa._domainkey.example.org');
  assert.match(byPurpose.get('DKIM')?.value ?? '', /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/);
  assert.match(byPurpose.get('MTA-STS')?.value ?? '', /^v=STSv1; id=[A-Za-z0-9]{1,32}$/);

  // The DKIM key Secret, owned by the MailDomain, and the same key in the runtime config.
  assert.deepEqual(
    status.dkimKeys?.map((k) => [k.selector, k.state]),
    [['petrel-1-rsa', 'Active']],
  );
  const dkimSecret = await getJson<{
    data: Record<string, string>;
    metadata: { ownerReferences: { uid: string }[] };
  }>('secret', 'example-org-dkim-petrel-1-rsa');
  assert.equal(dkimSecret?.metadata.ownerReferences[0]?.uid, ready.metadata.uid);
  const privateKey = Buffer.from(dkimSecret?.data['private.pem'] ?? '', 'base64').toString('utf8');
  assert.match(privateKey, /BEGIN PRIVATE KEY/);

  // The certificate: issued by the operator's CA for the MX and submission names.
  assert.equal(status.certificate?.source, 'Operator');
  const tls = await getJson<{ data: Record<string, string> }>('secret', 'example-org-tls');
  const caSecret = await getJson<{ data: Record<string, string> }>(
    'secret',
    'petrel-operator-ca',
    'petrel-system',
  );
  const leaf = new X509Certificate(Buffer.from(tls?.data['tls.crt'] ?? '', 'base64'));
  const ca = new X509Certificate(Buffer.from(caSecret?.data['ca.crt'] ?? '', 'base64'));
  assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey));
  assert.equal(leaf.checkHost('mx.example.org'), 'mx.example.org');
  assert.equal(leaf.checkHost('smtp.example.org'), 'smtp.example.org');

  const config = await waitFor(
    async () => (await published())?.domains.find((d) => d.domain === 'example.org'),
    WAIT,
  );
  assert.equal(config.source, `${NS}/example-org`);
  assert.deepEqual(
    config.users.map((u) => [u.name, u.password]),
    [['app@example.org', 's3cret-example-org']],
  );
  assert.deepEqual(
    config.dkimKeys.map((k) => [k.selector, k.privateKeyPem]),
    [['petrel-1-rsa', privateKey]],
  );
  assert.equal(config.tls?.certificatePem.includes(leaf.toString().trim()), true);
  assert.deepEqual(config.hostnames, ['mx.example.org', 'smtp.example.org']);
  assert.equal(config.draining, false);
  // The generation of the config that first carried the domain as it is now.
  assert.ok((ready.status?.configGeneration ?? 0) > 0);
  assert.ok((ready.status?.configGeneration ?? 0) <= ((await published())?.generation ?? 0));

  // The running ingress accepts mail for the domain without having been restarted.
  const port = await mxPort;
  const sent = await swaks([
    '--server',
    `127.0.0.1:${port}`,
    '--from',
    'a@outside.example',
    '--to',
    'b@example.org',
    '--quit-after',
    'RCPT',
  ]);
  const rcpt = sent.transcript.filter((l) => l.from === 'server').at(-2)?.text ?? '';
  assert.match(rcpt, /^250 /, JSON.stringify(sent.transcript));
});

test('DNSVerified follows what DNS shows; Ready does not wait for it', async () => {
  const object = await waitCondition('maildomain', 'example-org', 'DNSVerified', 'False');
  const records = object.status?.dnsRecords ?? [];
  assert.ok(records.every((r) => r.verified === false));
  // Publish every record but DMARC: still False, naming DMARC.
  const all = records.map((r) =>
    r.type === 'MX'
      ? ({
          type: 'MX',
          name: r.name,
          exchange: r.value.split(' ')[1]?.replace(/\.$/, '') ?? '',
          priority: 10,
        } as const)
      : ({ type: 'TXT', name: r.name, value: r.value } as const),
  );
  await dns.setRecords(all.filter((r) => !r.name.startsWith('_dmarc.')));
  const partial = await waitFor(
    async () => {
      const o = await getJson<MailDomainJson>('maildomain', 'example-org');
      const c = condition(o, 'DNSVerified');
      return c?.status === 'False' && !/MX|SPF|DKIM|MTA-STS/.test(c.message) ? c : undefined;
    },
    { ...WAIT, message: 'only DMARC missing' },
  );
  assert.match(partial.message, /DMARC _dmarc\.example\.org/);
  await dns.setRecords(all);
  const verified = await waitCondition('maildomain', 'example-org', 'DNSVerified', 'True');
  assert.ok(verified.status?.dnsRecords?.every((r) => r.verified === true));
  assert.equal(condition(verified, 'Ready')?.status, 'True');
});

test('an update reaches the runtime config; keys and status survive an operator restart unchanged', async () => {
  const before = await getJson<{ metadata: { resourceVersion: string }; data: Record<string, string> }>(
    'secret',
    'example-org-dkim-petrel-1-rsa',
  );
  await kubectl([
    'patch',
    'maildomain',
    'example-org',
    '-n',
    NS,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { outbound: { ratePerSecond: 7 } } }),
  ]);
  const updated = await waitCondition('maildomain', 'example-org', 'ConfigPublished', 'True');
  assert.equal(updated.metadata.generation, 2);
  assert.equal(
    (await published())?.domains.find((d) => d.domain === 'example.org')?.outbound.ratePerSecond,
    7,
  );
  const readyBefore = condition(await waitCondition('maildomain', 'example-org', 'Ready', 'True'), 'Ready');

  // Killed, not stopped: the next operator must find everything as it was.
  leader.child.kill('SIGKILL');
  await leader.exited;
  const restarted = Date.now();
  leader = startOperator('operator-a');
  await waitFor(() => leader.output.some((l) => l.includes('controllers started')) || undefined, WAIT);
  // Ready was True before the kill: wait for a reconcile by the new process (its DNS check, due
  // every second, stamps the status) so that the checks below see what it did.
  await waitFor(async () => {
    const checked = (await getJson<MailDomainJson>('maildomain', 'example-org'))?.status?.dnsCheckedAt;
    return checked !== undefined && Date.parse(checked) > restarted ? true : undefined;
  }, WAIT);
  await waitCondition('maildomain', 'example-org', 'Ready', 'True');
  const after = await getJson<{ metadata: { resourceVersion: string }; data: Record<string, string> }>(
    'secret',
    'example-org-dkim-petrel-1-rsa',
  );
  assert.equal(after?.metadata.resourceVersion, before?.metadata.resourceVersion);
  assert.deepEqual(after?.data, before?.data);
  const secrets = await kubectl([
    'get',
    'secrets',
    '-n',
    NS,
    '-l',
    'petrel.dev/maildomain=example-org,petrel.dev/purpose=dkim',
    '-o',
    'name',
  ]);
  assert.deepEqual(secrets.trim().split('\n'), ['secret/example-org-dkim-petrel-1-rsa']);
  // Ready stayed True across the restart: its transition time did not move.
  const readyAfter = condition(await getJson<MailDomainJson>('maildomain', 'example-org'), 'Ready');
  assert.equal(readyAfter?.lastTransitionTime, readyBefore?.lastTransitionTime);
});

test('DKIM rotation: a new key signs once DNS shows it, the old one stays published until retireAfter, then goes', async () => {
  await kubectl([
    'patch',
    'maildomain',
    'example-org',
    '-n',
    NS,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { dkim: { generate: { keyGeneration: 2, retireAfter: '3s' } } } }),
  ]);
  const pending = await waitFor(
    async () => {
      const o = await getJson<MailDomainJson>('maildomain', 'example-org');
      const keys = o?.status?.dkimKeys ?? [];
      return keys.some((k) => k.selector === 'petrel-2-rsa' && k.state === 'Pending') ? o : undefined;
    },
    { ...WAIT, message: 'generation 2 pending' },
  );
  // Until DNS shows the new key, the old one signs.
  assert.deepEqual(
    (await published())?.domains.find((d) => d.domain === 'example.org')?.dkimKeys.map((k) => k.selector),
    ['petrel-1-rsa'],
  );
  const newRecord = pending.status?.dnsRecords?.find((r) => r.name === 'petrel-2-rsa._domainkey.example.org');
  assert.ok(newRecord);
  const current = (pending.status?.dnsRecords ?? []).map((r) =>
    r.type === 'MX'
      ? ({ type: 'MX', name: r.name, exchange: 'mx.example.org', priority: 10 } as const)
      : ({ type: 'TXT', name: r.name, value: r.value } as const),
  );
  await dns.setRecords(current);
  await waitFor(
    async () => {
      const d = (await published())?.domains.find((x) => x.domain === 'example.org');
      return d?.dkimKeys.map((k) => k.selector).join() === 'petrel-2-rsa' || undefined;
    },
    { ...WAIT, message: 'the new key signs' },
  );
  const retiring = await getJson<MailDomainJson>('maildomain', 'example-org');
  const states = new Map(retiring?.status?.dkimKeys?.map((k) => [k.selector, k.state]));
  // Either still Retiring (and published) or already gone after its 3 s.
  assert.ok(states.get('petrel-1-rsa') === 'Retiring' || !states.has('petrel-1-rsa'));
  await waitFor(
    async () => {
      const o = await getJson<MailDomainJson>('maildomain', 'example-org');
      const gone = !o?.status?.dnsRecords?.some((r) => r.name.startsWith('petrel-1-rsa.'));
      const secret = await plane.kubectl(['get', 'secret', 'example-org-dkim-petrel-1-rsa', '-n', NS]);
      return gone && secret.code !== 0 ? true : undefined;
    },
    { ...WAIT, message: 'the old key retired: record and Secret gone' },
  );
});

test('DeliveryPolicy: created, updated and deleted in the runtime config, with its status', async () => {
  const policy = (rate: number) => `apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: slow-partner, namespace: ${NS}}
spec:
  match: {domains: [partner.example]}
  ratePerSecond: ${rate}
  maxConnections: 2
`;
  await kubectl(['apply', '-f', '-'], policy(3));
  await waitCondition('deliverypolicy', 'slow-partner', 'Ready', 'True');
  assert.equal(
    (await published())?.policies.find((p) => p.source === `${NS}/slow-partner`)?.ratePerSecond,
    3,
  );
  await kubectl(['apply', '-f', '-'], policy(9));
  const updated = await waitCondition('deliverypolicy', 'slow-partner', 'ConfigPublished', 'True');
  assert.equal(updated.metadata.generation, 2);
  assert.equal(
    (await published())?.policies.find((p) => p.source === `${NS}/slow-partner`)?.ratePerSecond,
    9,
  );
  await kubectl(['delete', 'deliverypolicy', 'slow-partner', '-n', NS]);
  await waitFor(async () => ((await published())?.policies.length === 0 ? true : undefined), WAIT);
});

test('with cert-manager installed, the certificate is a cert-manager Certificate; its Secret makes it Ready', async () => {
  // cert-manager's CRD (the API only: nothing issues, so the test plays cert-manager's part).
  await kubectl(['apply', '-f', '-'], CERT_MANAGER_CRD);
  await kubectl(['wait', '--for=condition=Established', 'crd/certificates.cert-manager.io']);
  await kubectl(
    ['apply', '-f', '-'],
    domainYaml('cm-example', 'cm.example', '  tls: {issuerRef: {name: letsencrypt, kind: ClusterIssuer}}\n'),
  );
  const issuing = await waitFor(
    async () => {
      const o = await getJson<MailDomainJson>('maildomain', 'cm-example');
      const c = condition(o, 'CertificateReady');
      return c?.reason === 'Issuing' ? o : undefined;
    },
    { ...WAIT, message: 'CertificateReady Issuing' },
  );
  assert.equal(condition(issuing, 'Ready')?.status, 'False');
  const certificate = await getJson<{
    spec: { dnsNames: string[]; secretName: string; issuerRef: { name: string; kind: string } };
    metadata: { ownerReferences: { uid: string }[] };
  }>('certificate.cert-manager.io', 'cm-example-tls');
  assert.deepEqual(certificate?.spec.dnsNames, ['mx.cm.example', 'smtp.cm.example']);
  assert.equal(certificate?.spec.secretName, 'cm-example-tls');
  assert.deepEqual(certificate?.spec.issuerRef, {
    name: 'letsencrypt',
    kind: 'ClusterIssuer',
    group: 'cert-manager.io',
  });
  assert.equal(certificate?.metadata.ownerReferences[0]?.uid, issuing.metadata.uid);
  // No operator-CA Secret was made instead.
  assert.equal((await plane.kubectl(['get', 'secret', 'cm-example-tls', '-n', NS])).code, 1);

  // "cert-manager" issues: the Secret appears with the certificate.
  const issued = issueCertificate(['mx.cm.example', 'smtp.cm.example']);
  await kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: 'cm-example-tls', namespace: NS },
      data: { 'tls.crt': issued.cert.toString('base64'), 'tls.key': issued.key.toString('base64') },
    }),
  );
  const ready = await waitCondition('maildomain', 'cm-example', 'Ready', 'True');
  assert.equal(ready.status?.certificate?.source, 'CertManager');
  const config = (await published())?.domains.find((d) => d.domain === 'cm.example');
  assert.equal(config?.tls?.certificatePem, issued.cert.toString('utf8'));
});

test('deleting a MailDomain stops accepting its mail, waits for its queued mail, then removes its keys, certificate and config', async () => {
  await kubectl(['apply', '-f', '-'], domainYaml('gone-example', 'gone.example', '  dkim: {}\n'));
  const ready = await waitCondition('maildomain', 'gone-example', 'Ready', 'True');
  // One recipient still queued for the domain, as the recorder would have it.
  const db = new pg.Client({ connectionString: postgres.databaseUrl });
  await db.connect();
  await ensurePartitions(db, new Date(), new Date());
  try {
    const now = new Date();
    await db.query(
      `INSERT INTO messages (message_id, accepted_at, sender, sender_domain) VALUES ('q1', $1, 'x@outside.example', 'outside.example')`,
      [now],
    );
    await db.query(
      `INSERT INTO recipients (message_id, accepted_at, address, destination_domain, status, updated_at) VALUES ('q1', $1, 'b@gone.example', 'gone.example', 'deferred', $1)`,
      [now],
    );
    await kubectl(['delete', 'maildomain', 'gone-example', '-n', NS, '--wait=false']);
    const draining = await waitFor(
      async () => {
        const o = await getJson<MailDomainJson>('maildomain', 'gone-example');
        return condition(o, 'Ready')?.reason === 'Draining' &&
          /1 recipient/.test(condition(o, 'Ready')?.message ?? '')
          ? o
          : undefined;
      },
      { ...WAIT, message: 'draining, one recipient queued' },
    );
    assert.ok(draining);
    const config = (await published())?.domains.find((d) => d.domain === 'gone.example');
    assert.equal(config?.draining, true);
    assert.equal(config?.dkimKeys.length, 1, 'queued mail is still signed');
    // Still there while mail is queued.
    assert.equal(
      (await plane.kubectl(['get', 'secret', 'gone-example-dkim-petrel-1-rsa', '-n', NS])).code,
      0,
    );

    await db.query(`UPDATE recipients SET status = 'delivered' WHERE message_id = 'q1'`);
    await waitFor(
      async () => ((await getJson('maildomain', 'gone-example')) === undefined ? true : undefined),
      {
        ...WAIT,
        message: 'the MailDomain is gone',
      },
    );
  } finally {
    await db.end();
  }
  assert.equal((await plane.kubectl(['get', 'secret', 'gone-example-dkim-petrel-1-rsa', '-n', NS])).code, 1);
  assert.equal((await plane.kubectl(['get', 'secret', 'gone-example-tls', '-n', NS])).code, 1);
  assert.equal(
    (await published())?.domains.some((d) => d.domain === 'gone.example'),
    false,
  );
  assert.ok(ready.metadata.uid);
});

test('leader failover: a second operator takes over when the leader dies, and reconciles', async () => {
  const standby = startOperator('operator-b');
  await waitFor(() => standby.output.some((l) => l.includes('waiting for leadership')) || undefined, WAIT);
  assert.ok(!standby.output.some((l) => l.includes('controllers started')), 'the standby does not lead');
  const started = performance.now();
  leader.child.kill('SIGKILL');
  await leader.exited;
  await waitFor(() => standby.output.some((l) => l.includes('controllers started')) || undefined, WAIT);
  const tookOver = performance.now() - started;
  assert.ok(tookOver < 20_000, `took over after ${tookOver} ms`);
  const lease = await getJson<{ spec: { holderIdentity: string; renewTime: string } }>(
    'lease',
    'petrel-operator',
    'petrel-system',
  );
  assert.equal(lease?.spec.holderIdentity, 'operator-b');
  assert.match(lease?.spec.renewTime ?? '', /\.\d{6}Z$/, 'MicroTime with 6 fractional digits');
  await kubectl(['apply', '-f', '-'], domainYaml('after-failover', 'after-failover.example'));
  await waitCondition('maildomain', 'after-failover', 'Ready', 'True');
  leader = standby;
});

test('killed mid-reconcile: after a restart every MailDomain is Ready with exactly one key each', async () => {
  const count = 40;
  await kubectl(
    ['apply', '-f', '-'],
    Array.from({ length: count }, (_, i) =>
      domainYaml(`burst-${i}`, `burst-${i}.example`, '  dkim: {}\n'),
    ).join('---\n'),
  );
  // Kill it while it is part-way (some Ready, not all).
  await waitFor(
    async () => {
      const list = JSON.parse(await kubectl(['get', 'maildomains', '-n', NS, '-o', 'json'])) as {
        items: MailDomainJson[];
      };
      const done = list.items.filter((o) => condition(o, 'Ready')?.status === 'True').length;
      return done > 0 || undefined;
    },
    { ...WAIT, intervalMs: 50 },
  );
  leader.child.kill('SIGKILL');
  await leader.exited;
  leader = startOperator('operator-c');
  for (let i = 0; i < count; i++) await waitCondition('maildomain', `burst-${i}`, 'Ready', 'True');
  const secrets = JSON.parse(
    await kubectl(['get', 'secrets', '-n', NS, '-l', 'petrel.dev/purpose=dkim', '-o', 'json']),
  ) as { items: { metadata: { labels: Record<string, string> } }[] };
  const perDomain = new Map<string, number>();
  for (const s of secrets.items) {
    const d = s.metadata.labels['petrel.dev/maildomain'] ?? '';
    perDomain.set(d, (perDomain.get(d) ?? 0) + 1);
  }
  for (let i = 0; i < count; i++) assert.equal(perDomain.get(`burst-${i}`), 1, `burst-${i}`);
  const config = await published();
  for (let i = 0; i < count; i++) {
    assert.equal(config?.domains.find((d) => d.domain === `burst-${i}.example`)?.dkimKeys.length, 1);
  }
});

test('500 MailDomains are reconciled to Ready in under a minute', async () => {
  // Production settings for scale: DNS is checked every 5 minutes, not every second as above.
  leader.child.kill('SIGTERM');
  await leader.exited;
  // The longest lease here: this is the busiest minute of the run for the API server.
  leader = startOperator('operator-d', ['--dns-check-interval', '5m', '--workers', '8'], '15s');
  const count = 500;
  const names = Array.from({ length: count }, (_, i) => `bulk-${i}`);
  // Polled through client-node, not kubectl: a kubectl process parsing 500 objects every poll
  // would take CPU from the operator being measured.
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  reuseConnections(kc); // one TLS connection pool, as the operator has
  const api = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  // Created as a client would in a burst: 16 requests at a time (kubectl apply sends them one by one).
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const name = names[i] ?? '';
        await core.createNamespacedSecret({
          namespace: NS,
          body: { metadata: { name: `${name}-smtp` }, stringData: { app: `s3cret-${name}` } },
        });
        await api.createNamespacedCustomObject({
          group: 'petrel.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'maildomains',
          body: {
            apiVersion: 'petrel.dev/v1alpha1',
            kind: 'MailDomain',
            metadata: { name },
            spec: {
              domain: `${name}.example`,
              inbound: { routes: [{ host: 'mailstore.internal.example', port: 25 }] },
              submission: {
                users: [
                  {
                    name: `app@${name}.example`,
                    passwordSecretRef: { name: `${name}-smtp`, key: 'app' },
                    allowedSenders: [`*@${name}.example`],
                  },
                ],
              },
              dkim: {},
            },
          },
        });
      }
    }),
  );
  const createdIn = Math.round(performance.now() - started);
  const readyAll = await waitFor(
    async () => {
      const list = (await api.listNamespacedCustomObject({
        group: 'petrel.dev',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'maildomains',
      })) as { items: (MailDomainJson & { metadata: { name: string } })[] };
      const bulk = list.items.filter((o) => o.metadata.name.startsWith('bulk-'));
      const ready = bulk.filter((o) => {
        const c = condition(o, 'Ready');
        return c?.status === 'True' && c.observedGeneration === o.metadata.generation;
      });
      return ready.length === count ? Math.round(performance.now() - started) : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 2000, message: `${count} MailDomains Ready` },
  );
  process.stdout.write(`# ${count} MailDomains created in ${createdIn} ms, all Ready after ${readyAll} ms\n`);
  assert.ok(readyAll < 60_000, `${count} MailDomains took ${readyAll} ms`);
  const config = await published();
  assert.equal(config?.domains.filter((d) => d.domain.startsWith('bulk-')).length, count);
});

/** cert-manager's Certificate CRD, reduced to what the API server needs to serve the kind. */
const CERT_MANAGER_CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  names: {kind: Certificate, listKind: CertificateList, plural: certificates, singular: certificate, shortNames: [cert, certs]}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
            status: {type: object, x-kubernetes-preserve-unknown-fields: true}
`;
