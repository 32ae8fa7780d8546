// The controller runtime against a real kube-apiserver: informers through a restart of the API
// server and a 410 Gone, leader election between two electors, events with MicroTime.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { type KubeControlPlane, startKubeControlPlane, waitFor } from '@petrel/test-harness';
import { reuseConnections } from '../kube-connections.ts';
import { EventRecorder } from './events.ts';
import { Informer } from './informer.ts';
import { LeaderElector } from './leader.ts';
import { type ListWatchClient, listWatchClient } from './listwatch-client.ts';
import { silentLogger } from './logger.ts';

let plane: KubeControlPlane;
let kc: KubeConfig;
const WAIT = { timeoutMs: 60_000, intervalMs: 50 };
const CONFIGMAPS = { group: '', version: 'v1', plural: 'configmaps' };

before(async () => {
  plane = await startKubeControlPlane();
  kc = reuseConnections(new KubeConfig());
  kc.loadFromFile(plane.kubeconfigPath);
});
after(() => plane?.stop());

const core = () => kc.makeApiClient(CoreV1Api);
const configMap = (name: string, value: string): V1ConfigMap => ({ metadata: { name }, data: { v: value } });

test('an informer sees adds, updates and deletes, and catches up after the API server restarts', async () => {
  const informer = new Informer<V1ConfigMap>({
    client: listWatchClient(kc),
    resource: CONFIGMAPS,
    namespace: 'default',
    backoff: { initialMs: 100, maxMs: 1000 },
  });
  const deleted: string[] = [];
  informer.addHandler({ delete: (o) => deleted.push(o.metadata?.name ?? '') });
  informer.start();
  try {
    await informer.waitForSync();
    await core().createNamespacedConfigMap({ namespace: 'default', body: configMap('one', '1') });
    await waitFor(() => informer.get('one', 'default')?.data?.['v'] === '1' || undefined, WAIT);
    await core().replaceNamespacedConfigMap({
      name: 'one',
      namespace: 'default',
      body: configMap('one', '2'),
    });
    await waitFor(() => informer.get('one', 'default')?.data?.['v'] === '2' || undefined, WAIT);

    // The watch connection dies with the API server; changes made meanwhile arrive afterwards.
    const watchesBefore = informer.stats().watches;
    await plane.stop();
    await plane.start();
    await core().createNamespacedConfigMap({ namespace: 'default', body: configMap('two', '1') });
    await core().deleteNamespacedConfigMap({ name: 'one', namespace: 'default' });
    await waitFor(
      () => (informer.get('two', 'default') && !informer.get('one', 'default')) || undefined,
      WAIT,
    );
    assert.ok(informer.stats().watches > watchesBefore, 'the watch was opened again');
    assert.deepEqual(deleted, ['one']);
  } finally {
    informer.stop();
  }
});

test('a 410 Gone in the watch makes the informer relist; objects deleted meanwhile are reported deleted', async () => {
  const real = listWatchClient(kc);
  let inject: ((type: string, object: unknown) => void) | undefined;
  // The real client, with a hook to deliver what the API server sends when a resourceVersion is
  // too old (compaction): an ERROR event with a 410 Status.
  const client: ListWatchClient = {
    list: (path, query) => real.list(path, query),
    async watch(path, query, onEvent, onDone) {
      inject = onEvent;
      return await real.watch(path, query, onEvent, onDone);
    },
  };
  await core().createNamespacedConfigMap({ namespace: 'default', body: configMap('gone-soon', 'x') });
  const informer = new Informer<V1ConfigMap>({
    client,
    resource: CONFIGMAPS,
    namespace: 'default',
    backoff: { initialMs: 100, maxMs: 1000 },
  });
  const deleted: string[] = [];
  informer.addHandler({ delete: (o) => deleted.push(o.metadata?.name ?? '') });
  informer.start();
  try {
    await informer.waitForSync();
    await waitFor(() => inject, WAIT);
    const lists = informer.stats().lists;
    // Deleted while the informer "missed" it: only a relist can tell.
    const paused = inject;
    inject = undefined;
    await core().deleteNamespacedConfigMap({ name: 'gone-soon', namespace: 'default' });
    paused?.('ERROR', {
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Expired',
      code: 410,
      message: 'too old resource version',
    });
    await waitFor(() => informer.stats().lists > lists || undefined, WAIT);
    await waitFor(() => !informer.get('gone-soon', 'default') || undefined, WAIT);
    assert.ok(deleted.includes('gone-soon'));
  } finally {
    informer.stop();
  }
});

test("leader election: one leader; a released lease passes at once, a dead leader's after it expires", async () => {
  const api = kc.makeApiClient(CoordinationV1Api);
  // Roomy timings: a loaded CI host can stall a renewal for a second or two.
  const timings = { leaseDurationMs: 6000, renewDeadlineMs: 4000, retryPeriodMs: 200 };
  const leading = new Set<string>();
  const elector = (identity: string) =>
    new LeaderElector({
      api,
      namespace: 'default',
      name: 'runtime-test',
      identity,
      ...timings,
      logger: silentLogger,
      onStartedLeading: () => leading.add(identity),
      onStoppedLeading: () => leading.delete(identity),
    });
  const a = elector('a');
  const b = elector('b');
  a.start();
  await waitFor(() => leading.has('a') || undefined, WAIT);
  b.start();
  // b keeps trying but never leads while a renews.
  await waitFor(() => b.leader === 'a' || undefined, WAIT);
  assert.deepEqual([...leading], ['a']);
  const lease = await api.readNamespacedLease({ name: 'runtime-test', namespace: 'default' });
  assert.equal(lease.spec?.holderIdentity, 'a');

  // Graceful stop: released, b takes over well before the lease would expire.
  const started = performance.now();
  await a.stop({ release: true });
  await waitFor(() => leading.has('b') || undefined, WAIT);
  // Half a lease: generous for a few requests, yet clearly short of waiting for the expiry.
  const handover = performance.now() - started;
  assert.ok(handover < timings.leaseDurationMs / 2, `released lease taken after ${handover} ms`);

  // A crash (no release): c waits for the lease to expire, then takes it.
  const c = elector('c');
  c.start();
  await b.stop({ release: false });
  // Measured from b's last renewal as the Lease records it, not from a local start time (b may
  // have renewed well before stop() on a loaded host); both times come from this process's clock.
  const time = (value: unknown) => new Date(value as string).getTime();
  const crashed = await api.readNamespacedLease({ name: 'runtime-test', namespace: 'default' });
  assert.equal(crashed.spec?.holderIdentity, 'b');
  const lastRenewal = time(crashed.spec?.renewTime);
  await waitFor(() => leading.has('c') || undefined, WAIT);
  const taken = await api.readNamespacedLease({ name: 'runtime-test', namespace: 'default' });
  assert.equal(taken.spec?.holderIdentity, 'c');
  const waited = time(taken.spec?.acquireTime) - lastRenewal;
  // c counts from its own read that saw the renewal, which may have set off a moment before b's
  // clock reading: a second of slack, far from an immediate takeover (one retry period).
  assert.ok(
    waited >= timings.leaseDurationMs - 1000,
    `took over ${waited} ms after b's last renewal, before the lease expired`,
  );
  const raw = await plane.kubectl(['get', 'lease', 'runtime-test', '-o', 'jsonpath={.spec.renewTime}']);
  assert.match(raw.stdout, /\.\d{6}Z$/, 'MicroTime has six fractional digits');
  await c.stop();
});

test('a lease won just as stop() is called: leadership never starts, and the lease is handed back', async () => {
  const real = kc.makeApiClient(CoordinationV1Api);
  let elector: LeaderElector | undefined;
  let stopping: Promise<void> | undefined;
  // The real API, with stop() called while the acquiring write is on its way to the server.
  const api = new Proxy(real, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      const method = value.bind(target) as (...args: unknown[]) => unknown;
      if (prop !== 'createNamespacedLease') return method;
      return (...args: unknown[]) => {
        const written = method(...args);
        stopping ??= elector?.stop({ release: true });
        return written;
      };
    },
  });
  const calls: string[] = [];
  elector = new LeaderElector({
    api,
    namespace: 'default',
    name: 'stop-race',
    identity: 'x',
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 200,
    logger: silentLogger,
    onStartedLeading: () => calls.push('started'),
    onStoppedLeading: (reason) => calls.push(reason),
  });
  elector.start();
  await waitFor(() => stopping !== undefined || undefined, WAIT);
  await stopping;
  assert.deepEqual(calls, [], 'neither onStartedLeading nor onStoppedLeading');
  assert.equal(elector.isLeader(), false);
  const lease = await real.readNamespacedLease({ name: 'stop-race', namespace: 'default' });
  assert.equal(lease.spec?.holderIdentity ?? '', '', 'the lease was handed back');
  assert.equal(lease.spec?.leaseDurationSeconds, 1);
});

test('events are written with a MicroTime eventTime, and identical ones are not repeated', async () => {
  const cm = await core().createNamespacedConfigMap({
    namespace: 'default',
    body: configMap('evented', '1'),
  });
  const recorder = new EventRecorder({
    api: kc.makeApiClient(EventsV1Api),
    reportingInstance: 'test',
    logger: silentLogger,
  });
  assert.equal(
    await recorder.normal({ ...cm, apiVersion: 'v1', kind: 'ConfigMap' }, 'Tested', 'Test', 'hello'),
    true,
  );
  assert.equal(
    await recorder.normal({ ...cm, apiVersion: 'v1', kind: 'ConfigMap' }, 'Tested', 'Test', 'hello'),
    false,
  );
  const events = await plane.kubectl(['get', 'events.events.k8s.io', '-o', 'json']);
  const items = (
    JSON.parse(events.stdout) as { items: { reason: string; eventTime: string; note: string }[] }
  ).items;
  const ours = items.filter((e) => e.reason === 'Tested');
  assert.equal(ours.length, 1);
  assert.match(ours[0]?.eventTime ?? '', /\.\d{6}Z$/);
  assert.equal(ours[0]?.note, 'hello');
});
