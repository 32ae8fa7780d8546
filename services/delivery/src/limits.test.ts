/**
 * Cluster-wide limits with real worker processes (docs/queue-model.md): shard ownership keeps
 * every destination with one worker, so per-domain rates hold for the cluster; a roll-up policy
 * (MX host suffix) spans owners and holds through leased token batches; a dead destination's
 * deferred backlog does not slow fresh mail to a healthy one.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type JetStreamClient, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { compileDirectory, writeRuntimeConfig } from '@petrel/operator';
import { timestampFromDate } from '@petrel/proto';
import {
  deferEntry,
  deferredFilter,
  encodeEnvelope,
  newEnvelope,
  newMessageId,
  publishEntry,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import { startQueue } from '@petrel/queue/testing';
import {
  type DnsRecord,
  type ReceivedMessage,
  startDnsServer,
  startSmtpSink,
  tempDir,
  waitFor,
} from '@petrel/test-harness';
import { LEASE_TTL_MS, LEASES_BUCKET } from './leases.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));
type After = (fn: () => unknown) => void;

interface Cluster {
  /** SIGTERM to every worker, awaited (before NATS goes away in teardown). */
  stopWorkers(): Promise<void>;
  js: JetStreamClient;
  natsUrl: string;
  sink: Awaited<ReturnType<typeof startSmtpSink>>;
  dnsAddress: string;
  runtimeConfig: string;
  startWorker(name: string): Promise<ChildProcess>;
  /** `count` messages to u0@domain, u1@domain, …; `prefix` replaces "u". */
  publish(domain: string, count: number, prefix?: string, senderDomain?: string): Promise<void>;
}

async function cluster(t: { after: After }, records: DnsRecord[], manifests: string): Promise<Cluster> {
  const after: After = (fn) => t.after(fn);
  const { js, url } = await startQueue(t, { ackWaitMs: 30_000 });
  const sink = await startSmtpSink({ host: '127.0.0.1' });
  after(() => sink.close());
  const dns = await startDnsServer({ records, after });
  const configDir = await tempDir('limits-config');
  await writeFile(join(configDir, 'policies.yaml'), manifests);
  const runtimeConfig = join(await tempDir('limits'), 'runtime-config.json');
  await writeRuntimeConfig(runtimeConfig, await compileDirectory(configDir, 1));
  const body = Buffer.from('Subject: limits\r\n\r\nbody\r\n');
  const children: ChildProcess[] = [];
  const stopWorkers = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        await once(child, 'exit');
      }),
    );
  };
  return {
    stopWorkers,
    js,
    natsUrl: url,
    sink,
    dnsAddress: dns.address,
    runtimeConfig,
    async startWorker(name) {
      const child = fork(MAIN, [], {
        env: {
          ...process.env,
          PETREL_NATS_URL: url,
          PETREL_RUNTIME_CONFIG: runtimeConfig,
          PETREL_DNS_SERVERS: dns.address,
          PETREL_MX_PORT: String(sink.port),
          PETREL_HOSTNAME: name,
          PETREL_LEASE_RENEW_MS: '500',
          // One loopback sink stands for every destination's MX: give it the connections that
          // 100 separate hosts would get, so that no destination waits behind the others' pool.
          PETREL_MAX_CONNECTIONS_PER_HOST: '100',
          PETREL_CONNECT_TIMEOUT_MS: '2000',
          // Warnings (a lost lease, a failed pull) show in the test output.
          PETREL_LOG_LEVEL: process.env['TEST_WORKER_LOG'] ?? 'warn',
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.push(child);
      after(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await once(child, 'exit');
        }
      });
      await new Promise<void>((resolve, reject) => {
        child.on('message', (m: { type?: string }) => m.type === 'ready' && resolve());
        child.once('exit', (code) => reject(new Error(`worker ${name} exited with ${code}`)));
      });
      return child;
    },
    async publish(domain, count, prefix = 'u', senderDomain = '') {
      await Promise.all(
        Array.from({ length: count }, (_, i) => {
          const messageId = newMessageId();
          return publishEntry(
            js,
            newEnvelope({
              messageId,
              sender: `sender@${senderDomain || 'origin.example'}`,
              senderDomain,
              destinationDomain: domain,
              recipients: [{ address: `${prefix}${i}@${domain}` }],
              receivedAt: timestampFromDate(new Date()),
              content: { case: 'raw', value: body },
            }),
            { timeoutMs: 30_000 },
          );
        }),
      );
    },
  };
}

/**
 * Messages per second: the least-squares slope of arrival count over arrival time, so that one
 * late first message (a new connection, an MX lookup) does not skew the figure as first-to-last would.
 */
function rateOf(messages: readonly ReceivedMessage[]): number {
  const times = messages.map((m) => m.receivedAt.getTime() / 1000).sort((a, b) => a - b);
  const n = times.length;
  const meanT = times.reduce((a, b) => a + b, 0) / n;
  const meanI = (n - 1) / 2;
  let num = 0;
  let den = 0;
  times.forEach((time, i) => {
    num += (time - meanT) * (i - meanI);
    den += (time - meanT) ** 2;
  });
  return num / den;
}

function domainOf(m: ReceivedMessage): string {
  return (m.rcptTo[0] ?? '').split('@')[1] ?? '';
}

test('three workers share 100 destinations: each domain rate and a roll-up rate hold within 10 %', async (t) => {
  const DOMAINS = 100;
  const PER_DOMAIN = 24;
  const DOMAIN_RATE = 2;
  const ROLLUP_DOMAINS = 20;
  const PER_ROLLUP_DOMAIN = 8;
  const ROLLUP_RATE = 10;
  const domains = Array.from({ length: DOMAINS }, (_, i) => `d${i}.dest.test`);
  const rollup = Array.from({ length: ROLLUP_DOMAINS }, (_, i) => `r${i}.rollup.test`);
  const records: DnsRecord[] = [
    { type: 'A', name: 'mx.dest.test', address: '127.0.0.1' },
    { type: 'A', name: 'mx1.provider.test', address: '127.0.0.1' },
    ...domains.map((name) => ({ type: 'MX' as const, name, exchange: 'mx.dest.test', priority: 10 })),
    ...rollup.map((name) => ({ type: 'MX' as const, name, exchange: 'mx1.provider.test', priority: 10 })),
  ];
  const c = await cluster(
    t,
    records,
    `apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: dest}
spec:
  match: {domains: ["*.dest.test"]}
  ratePerSecond: ${DOMAIN_RATE}
---
apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: provider}
spec:
  match: {mxHostSuffixes: [provider.test]}
  ratePerSecond: ${ROLLUP_RATE}
  maxConnections: 3
`,
  );
  const names = ['w1.test', 'w2.test', 'w3.test'];
  await Promise.all(names.map((n) => c.startWorker(n)));
  // Wait until the shards are spread: three owners, none with more than its share.
  const leases = await new Kvm(c.js).open(LEASES_BUCKET);
  const ownerOf = async () => {
    const owner = new Map<string, string>();
    for await (const key of await leases.keys('shard.*')) {
      const e = await leases.get(key);
      if (e?.operation === 'PUT') owner.set(key, e.string());
    }
    return owner;
  };
  const spread = await waitFor(
    async () => {
      const owner = await ownerOf();
      const counts = [...Map.groupBy(owner.values(), (o) => o).values()].map((g) => g.length);
      return counts.length === 3 && counts.every((n) => n <= 22) && owner.size === 64 ? owner : undefined;
    },
    { timeoutMs: LEASE_TTL_MS * 3, intervalMs: 200, message: 'shards spread over three workers' },
  );

  // Warm-up, one message per domain: connections, MX cache and compiled code in place, so that
  // what is measured is the limiter, not a first connection's latency bunching the next arrivals.
  await Promise.all([...domains, ...rollup].map((d) => c.publish(d, 1, 'warm')));
  const warm = domains.length + rollup.length;
  await waitFor(() => (c.sink.messages.length >= warm ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 100,
    message: 'warm-up delivered',
  });
  await Promise.all([
    ...domains.map((d) => c.publish(d, PER_DOMAIN)),
    ...rollup.map((d) => c.publish(d, PER_ROLLUP_DOMAIN)),
  ]);
  // The sink shares this process with the publisher: arrivals stamped while publishing may be
  // stamped late (and so look bunched); the rates are measured on what arrived afterwards.
  const published = Date.now() + 100;
  const total = DOMAINS * PER_DOMAIN + ROLLUP_DOMAINS * PER_ROLLUP_DOMAIN;
  await waitFor(() => (c.sink.messages.length >= warm + total ? true : undefined), {
    timeoutMs: 120_000,
    intervalMs: 100,
    message: `${total} messages delivered`,
  });
  assert.equal(c.sink.messages.length, warm + total, 'each message once');
  const measured = c.sink.messages.filter((m) => !(m.rcptTo[0] ?? '').startsWith('warm'));

  const byDomain = Map.groupBy(measured, domainOf);
  const timed = Map.groupBy(
    measured.filter((m) => m.receivedAt.getTime() > published),
    domainOf,
  );
  const helos = new Set<string>();
  const rates = domains.map((d) => rateOf(timed.get(d) ?? []));
  if (process.env['TEST_DEBUG_RATES']) {
    const worst = domains[rates.indexOf(Math.max(...rates))] as string;
    const times = (timed.get(worst) ?? []).map((m) => m.receivedAt.getTime()).sort((a, b) => a - b);
    t.diagnostic(`${worst}: ${times.map((x, i) => (i === 0 ? 0 : x - (times[i - 1] as number))).join(' ')}`);
  }
  t.diagnostic(
    `per-domain rate (configured ${DOMAIN_RATE}/s): min ${Math.min(...rates).toFixed(3)}, max ${Math.max(...rates).toFixed(3)}`,
  );
  for (const d of domains) {
    const got = byDomain.get(d) ?? [];
    assert.equal(got.length, PER_DOMAIN, d);
    const rate = rateOf(timed.get(d) ?? []);
    assert.ok(Math.abs(rate - DOMAIN_RATE) <= DOMAIN_RATE * 0.1, `${d}: ${rate.toFixed(3)} msg/s`);
    // One owner per destination: all its mail came from one worker.
    const from = new Set(got.map((m) => m.helo));
    if (from.size !== 1) {
      const now = await ownerOf();
      const moved = [...spread]
        .filter(([k, o]) => now.get(k) !== o)
        .map(([k, o]) => `${k}: ${o} → ${now.get(k)}`);
      assert.fail(
        `${d} delivered by ${[...from].join(', ')}; shards moved since the spread: ${moved.join('; ') || 'none'}`,
      );
    }
    helos.add([...from][0] as string);
  }
  assert.equal(helos.size, 3, 'every worker delivered a share');
  const rolled = rollup.flatMap((d) => byDomain.get(d) ?? []);
  assert.equal(rolled.length, ROLLUP_DOMAINS * PER_ROLLUP_DOMAIN);
  const rollupRate = rateOf(rolled.filter((m) => m.receivedAt.getTime() > published));
  t.diagnostic(`roll-up rate (configured ${ROLLUP_RATE}/s): ${rollupRate.toFixed(3)}`);
  assert.ok(
    Math.abs(rollupRate - ROLLUP_RATE) <= ROLLUP_RATE * 0.1,
    `roll-up: ${rollupRate.toFixed(3)} msg/s for the cluster`,
  );
  assert.ok(new Set(rolled.map((m) => m.helo)).size > 1, 'the roll-up spans several owners');
  await c.stopWorkers();
});

test('100,000 deferred for a dead destination: fresh mail to a healthy one flows at its rate, nothing deferred', async (t) => {
  const BACKLOG = 100_000;
  const DUE_NOW = 2_000;
  const FRESH = 500;
  const RATE = 50;
  const c = await cluster(
    t,
    [
      { type: 'MX', name: 'healthy.test', exchange: 'mx.healthy.test', priority: 10 },
      { type: 'A', name: 'mx.healthy.test', address: '127.0.0.1' },
      // Nothing listens on 127.0.0.2: every connection is refused.
      { type: 'MX', name: 'dead.test', exchange: 'mx.dead.test', priority: 10 },
      { type: 'A', name: 'mx.dead.test', address: '127.0.0.2' },
    ],
    `apiVersion: petrel.dev/v1alpha1
kind: DeliveryPolicy
metadata: {name: healthy}
spec:
  match: {domains: [healthy.test]}
  ratePerSecond: ${RATE}
`,
  );
  const body = Buffer.from('Subject: dead\r\n\r\nbody\r\n');
  const receivedAt = timestampFromDate(new Date());
  const defer = (n: number, at: Date) => {
    const messageId = newMessageId();
    return deferEntry(c.js, {
      messageId,
      destinationDomain: 'dead.test',
      payload: encodeEnvelope(
        newEnvelope({
          messageId,
          sender: 'sender@origin.example',
          destinationDomain: 'dead.test',
          recipients: [{ address: `u${n}@dead.test` }],
          receivedAt,
          content: { case: 'raw', value: body },
        }),
      ),
      attempt: 2,
      at,
      timeoutMs: 30_000,
    });
  };
  // Most of the backlog waits up to an hour, as retries do ...
  const later = BACKLOG - DUE_NOW;
  for (let i = 0; i < later; i += 2000) {
    await Promise.all(
      Array.from({ length: Math.min(2000, later - i) }, (_, j) =>
        defer(i + j, new Date(Date.now() + 600_000 + (i + j) * 30)),
      ),
    );
  }
  // ... and a share comes due while the fresh mail flows.
  const dueAt = Date.now() + 15_000;
  await Promise.all(
    Array.from({ length: DUE_NOW }, (_, n) => defer(later + n, new Date(dueAt + (n % 100) * 50))),
  );
  await c.startWorker('w1.test');
  const nc = await connect({ servers: c.natsUrl });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  // Fresh mail goes while the due share fires (over 5 s from dueAt) and is re-deferred.
  await waitFor(() => (Date.now() >= dueAt - 500 ? true : undefined), { timeoutMs: 60_000, intervalMs: 50 });
  await c.publish('healthy.test', FRESH);
  await waitFor(() => (c.sink.messages.length >= FRESH ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 50,
    message: 'fresh mail delivered',
  });
  const rate = rateOf(c.sink.messages);
  t.diagnostic(`fresh mail with ${BACKLOG} deferred: ${rate.toFixed(2)} msg/s (configured ${RATE})`);
  assert.ok(rate >= RATE * 0.9, `fresh mail at ${rate.toFixed(1)} msg/s (configured ${RATE})`);
  assert.ok(rate <= RATE * 1.1, `and not above its limit: ${rate.toFixed(1)} msg/s`);
  // No deferred backlog for the healthy destination; the dead one's entries are all still queued.
  const healthy = await jsm.streams.info(STREAM_OUTBOUND, {
    subjects_filter: deferredFilter('healthy.test'),
  });
  assert.equal(healthy.state.subjects === undefined ? 0 : Object.keys(healthy.state.subjects).length, 0);
  await waitFor(
    async () => {
      const info = await jsm.streams.info(STREAM_OUTBOUND);
      return info.state.messages === BACKLOG ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, message: `${BACKLOG} dead-destination entries still queued` },
  );
  await c.stopWorkers();
});

test('a sender MailDomain outbound rate holds for the cluster across destinations and workers', async (t) => {
  const RATE = 5;
  const DESTINATIONS = 30;
  const PER_DESTINATION = 3;
  const destinations = Array.from({ length: DESTINATIONS }, (_, i) => `t${i}.any.test`);
  const c = await cluster(
    t,
    [
      { type: 'A', name: 'mx.any.test', address: '127.0.0.1' },
      ...destinations.map((name) => ({ type: 'MX' as const, name, exchange: 'mx.any.test', priority: 10 })),
    ],
    `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: tenant}
spec:
  domain: tenant.example
  outbound: {ratePerSecond: ${RATE}}
`,
  );
  await Promise.all(['w1.test', 'w2.test'].map((n) => c.startWorker(n)));
  const leases = await new Kvm(c.js).open(LEASES_BUCKET);
  await waitFor(
    async () => {
      const owners = new Set<string>();
      let n = 0;
      for await (const key of await leases.keys('shard.*')) {
        const e = await leases.get(key);
        if (e?.operation === 'PUT') {
          owners.add(e.string());
          n++;
        }
      }
      return owners.size === 2 && n === 64 ? true : undefined;
    },
    { timeoutMs: LEASE_TTL_MS * 3, intervalMs: 200, message: 'shards spread over two workers' },
  );
  // Warm-up with mail from another sender, which the tenant's limit does not apply to.
  await Promise.all(destinations.map((d) => c.publish(d, 1, 'other')));
  await waitFor(() => (c.sink.messages.length >= DESTINATIONS ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 50,
  });
  const published = Date.now() + 100;
  await Promise.all(destinations.map((d) => c.publish(d, PER_DESTINATION, 'u', 'tenant.example')));
  const total = DESTINATIONS + DESTINATIONS * PER_DESTINATION;
  await waitFor(() => (c.sink.messages.length >= total ? true : undefined), {
    timeoutMs: 120_000,
    intervalMs: 100,
    message: 'tenant mail delivered',
  });
  const tenant = c.sink.messages.filter((m) => m.mailFrom === 'sender@tenant.example');
  assert.equal(tenant.length, DESTINATIONS * PER_DESTINATION);
  assert.ok(new Set(tenant.map((m) => m.helo)).size === 2, 'both workers sent tenant mail');
  const rate = rateOf(tenant.filter((m) => m.receivedAt.getTime() > published));
  t.diagnostic(`sender rate (configured ${RATE}/s): ${rate.toFixed(3)}`);
  assert.ok(Math.abs(rate - RATE) <= RATE * 0.1, `tenant.example sent ${rate.toFixed(3)} msg/s`);
  await c.stopWorkers();
});
