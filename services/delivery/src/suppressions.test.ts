import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { startNats, waitFor } from '@petrel/test-harness';
import { SUPPRESSIONS_BUCKET, SuppressionList, suppresses, suppressionKey } from './suppressions.ts';

async function list(t: { after(fn: () => Promise<void> | void): void }, now: () => number) {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const kv = await new Kvm(jetstream(nc)).create(SUPPRESSIONS_BUCKET);
  const list = new SuppressionList(kv, now);
  await list.start();
  t.after(() => list.stop());
  return list;
}

test('a hard-bounced address is suppressed until its expiry, case-insensitively', async (t) => {
  let now = Date.parse('2026-11-22T10:00:00Z');
  const suppressions = await list(t, () => now);
  assert.equal(await suppressions.get('Gone@Example.net'), undefined);
  await suppressions.add('Gone@Example.net', {
    reason: '550 5.1.1 no such user',
    status: '5.1.1',
    forMs: 3_600_000,
    source: 'bounce',
  });
  const found = await suppressions.get('gone@example.NET');
  assert.equal(found?.address, 'gone@example.net');
  assert.equal(found?.status, '5.1.1');
  assert.equal(found?.expiresAt, '2026-11-22T11:00:00.000Z');
  assert.equal(await suppressions.get('other@example.net'), undefined);
  now += 3_600_000;
  assert.equal(await suppressions.get('gone@example.net'), undefined, 'expired');
});

test('list shows the suppressions in force; remove lifts one', async (t) => {
  const now = Date.parse('2026-11-22T10:00:00Z');
  const suppressions = await list(t, () => now);
  for (const [address, forMs] of [
    ['b+tag@example.org', 60_000],
    ['a@example.org', 60_000],
    ['old@example.org', 0],
  ] as const) {
    await suppressions.add(address, { reason: 'test', status: '5.1.1', forMs, source: 'manual' });
  }
  assert.deepEqual(
    (await suppressions.list()).map((s) => s.address),
    ['a@example.org', 'b+tag@example.org'],
  );
  await suppressions.remove('A@example.org');
  assert.deepEqual(
    (await suppressions.list()).map((s) => s.address),
    ['b+tag@example.org'],
  );
  assert.match(suppressionKey('ü@exämple.org'), /^[A-Za-z0-9_-]+$/);
});

test('only bounces that say the address is gone suppress it', () => {
  for (const s of ['5.1.1', '5.1.2', '5.1.6', '5.1.10']) assert.equal(suppresses(s), true, s);
  for (const s of ['5.7.1', '5.2.2', '4.1.1', '5.1.3', '5.1.100', '5.6.7'])
    assert.equal(suppresses(s), false, s);
});

test('another worker’s list sees additions and removals through the watch, with no lookup request', async (t) => {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const kv = await new Kvm(jetstream(nc)).create(SUPPRESSIONS_BUCKET);
  const one = new SuppressionList(kv);
  await one.add('early@example.org', {
    reason: 'before start',
    status: '5.1.1',
    forMs: 60_000,
    source: 'manual',
  });
  await one.start();
  const two = new SuppressionList(kv);
  await two.start();
  t.after(() => {
    one.stop();
    two.stop();
  });
  assert.equal(two.get('early@example.org')?.reason, 'before start', 'loaded at start');
  await one.add('late@example.org', {
    reason: 'after start',
    status: '5.1.1',
    forMs: 60_000,
    source: 'bounce',
  });
  await waitFor(() => two.get('late@example.org'), { timeoutMs: 5_000 });
  await one.remove('late@example.org');
  await waitFor(() => (two.get('late@example.org') === undefined ? true : undefined), { timeoutMs: 5_000 });
});
