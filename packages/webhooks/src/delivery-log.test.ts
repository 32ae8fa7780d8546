import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort, startPostgres as restartPostgres } from '@petrel/localenv';
import { AckPublisher, publishEvent, publishEventBatchWith } from '@petrel/queue';
import { waitFor } from '@petrel/test-harness';
import type pg from 'pg';
import { closeEnv, logRows, Receiver, scenario, startEnv, testDomains, testLog } from '../test/support.ts';
import { DeliveryLog, type DeliveryLogRow } from './delivery-log.ts';
import { startWebhooks } from './start.ts';

function row(i: number): DeliveryLogRow {
  return {
    deliveryId: `k${i}.1`,
    createdAt: Date.parse('2026-11-23T12:00:00Z') + i,
    subscription: 'default/a/ops',
    domain: 'a.example',
    eventKind: 'delivered',
    eventId: `e${i}`,
    messageId: `m${i}`,
    idempotencyKey: `k${i}`,
    url: 'https://hooks.example/',
    attempt: 1,
    statusCode: 200,
    error: '',
    deliveredAt: Date.parse('2026-11-23T12:00:01Z'),
    durationMs: 3,
  };
}

/** A pool that refuses until `up`, then records the delivery ids it was given. */
function fakePool() {
  const state = { up: false, inserted: [] as string[], partitionCalls: 0 };
  const pool = {
    async query(text: string, params: unknown[]) {
      if (!state.up)
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      if (text.includes('petrel_partitions_ensure')) {
        state.partitionCalls++;
        return { rows: [{ created: 0 }] };
      }
      state.inserted.push(...(params[0] as string[]));
      return { rows: [] };
    },
  };
  return { state, pool: pool as unknown as pg.Pool };
}

test('the delivery log holds rows while Postgres is down, drops the oldest beyond its bound, then writes them', async () => {
  const { state, pool } = fakePool();
  const log = testLog();
  const deliveryLog = new DeliveryLog(pool, log, { maxRows: 50, batchRows: 20, retryMs: 10 });
  for (let i = 0; i < 60; i++) deliveryLog.record(row(i));
  await waitFor(() => deliveryLog.stats.failing, { timeoutMs: 5_000, message: 'a failed write' });
  assert.equal(deliveryLog.stats.dropped, 10);
  assert.equal(deliveryLog.stats.buffered, 50);
  assert.equal(log.lines.filter((l) => l.msg.startsWith('webhook delivery log buffer full')).length, 1);
  assert.equal(log.lines.filter((l) => l.msg.startsWith('webhook delivery log write failed')).length, 1);
  state.up = true;
  await waitFor(() => deliveryLog.stats.buffered === 0 && !deliveryLog.stats.failing, {
    timeoutMs: 10_000,
    message: 'the buffered rows written',
  });
  // The newest 50, in order, each once; the day's partitions made sure of once.
  assert.deepEqual(
    state.inserted,
    Array.from({ length: 50 }, (_, i) => `k${i + 10}.1`),
  );
  assert.equal(state.partitionCalls, 1);
  assert.equal(deliveryLog.stats.written, 50);
  assert.ok(log.lines.some((l) => l.msg === 'webhook delivery log writing again'));
  await deliveryLog.close(1_000);
});

test('rows in the write under way still count as buffered (regression)', async () => {
  // The gauge dropped by a whole batch during every write attempt, so a retry under way with
  // Postgres down showed fewer buffered rows than were waiting.
  const inserts: (() => void)[] = [];
  let calls = 0;
  const pool = {
    async query(text: string) {
      calls++;
      if (text.includes('petrel_partitions_ensure')) return { rows: [{ created: 0 }] };
      await new Promise<void>((r) => {
        inserts.push(r);
      });
      return { rows: [] };
    },
  } as unknown as pg.Pool;
  const deliveryLog = new DeliveryLog(pool, testLog(), { retryMs: 10 });
  for (let i = 0; i < 3; i++) deliveryLog.record(row(i));
  await waitFor(() => inserts.length === 1, { timeoutMs: 5_000, message: 'the insert under way' });
  assert.equal(deliveryLog.stats.buffered, 3);
  deliveryLog.record(row(3));
  assert.equal(deliveryLog.stats.buffered, 4);
  inserts.shift()?.();
  await waitFor(() => inserts.length === 1, { timeoutMs: 5_000, message: 'the second insert' });
  assert.equal(deliveryLog.stats.buffered, 1);
  assert.equal(deliveryLog.stats.written, 3);
  inserts.shift()?.();
  await waitFor(() => deliveryLog.stats.buffered === 0, { timeoutMs: 5_000, message: 'all written' });
  assert.equal(deliveryLog.stats.written, 4);
  assert.ok(calls >= 3);
  await deliveryLog.close(1_000);
});

test('close() writes what is left, and reports what it could not write', async () => {
  const { state, pool } = fakePool();
  const log = testLog();
  const deliveryLog = new DeliveryLog(pool, log, { retryMs: 10 });
  deliveryLog.record(row(1));
  await deliveryLog.close(200);
  assert.deepEqual(state.inserted, []);
  assert.ok(log.lines.some((l) => l.level === 'error' && /not written before stopping/.test(l.msg)));

  const up = fakePool();
  up.state.up = true;
  const second = new DeliveryLog(up.pool, testLog());
  second.record(row(2));
  second.record(row(3));
  await second.close(1_000);
  assert.deepEqual(up.state.inserted, ['k2.1', 'k3.1']);
});

test('Postgres down: webhooks are still delivered; their log rows land once it is back', async (t) => {
  const env = await startEnv(t);
  const port = await freePort();
  const receiver = await Receiver.listen(port, 200);
  const domains = testDomains(port);
  const webhooks = await startWebhooks({
    ...env,
    domains: () => domains,
    log: testLog(),
    // requestTimeoutMs 10 s: a stall during a POST must not time it out and retry it (exact row counts).
    options: { retryDelaysMs: [100], jitter: 0, requestTimeoutMs: 10_000, deliveryLog: { retryMs: 50 } },
  });
  let restarted: Awaited<ReturnType<typeof restartPostgres>> | undefined;
  try {
    // One delivery with Postgres up: the day's partitions exist and the pool has connections.
    const warmup = scenario('warm');
    const first = warmup.single[0];
    assert.ok(first);
    await publishEvent(env.js, first, { timeoutMs: 5_000 });
    await waitFor(async () => (await logRows(env.pool)).length === 1, {
      timeoutMs: 30_000,
      message: 'one row',
    });

    await env.postgres.stop();
    const s = scenario('pg-down');
    await Promise.all(s.single.map((e) => publishEvent(env.js, e, { timeoutMs: 5_000 })));
    const publisher = new AckPublisher(env.nc);
    try {
      await publishEventBatchWith(publisher, s.batch, { timeoutMs: 5_000 });
    } finally {
      publisher.close();
    }
    // Delivered while Postgres is down; the rows wait in memory.
    await waitFor(() => [...s.expected.keys()].every((k) => receiver.keysAnswered(200).has(k)), {
      timeoutMs: 30_000,
      message: 'every job delivered with Postgres down',
    });
    // The receiver answers before the sender records the row: wait for the rows, not only the answers.
    await waitFor(
      () => webhooks.stats().deliveryLog.failing && webhooks.stats().deliveryLog.buffered >= s.expected.size,
      { timeoutMs: 30_000, message: 'failing writes, every row buffered' },
    );

    restarted = await restartPostgres({ dir: env.postgres.dir, port: env.postgres.port, durable: false });
    const rows = await waitFor(
      async () => {
        const all = await logRows(env.pool);
        return all.length === s.expected.size + 1 ? all : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: 'the buffered rows in Postgres' },
    );
    assert.deepEqual(
      rows
        .filter((r) => r.event_id.startsWith('pg-down'))
        .map((r) => r.idempotency_key)
        .sort(),
      [...s.expected.keys()].sort(),
    );
    assert.ok(rows.every((r) => r.status_code === 200 && r.delivered_at !== null));
    // The rows are visible (another connection) before the write's result reaches the gauge.
    await waitFor(() => webhooks.stats().deliveryLog.buffered === 0, {
      timeoutMs: 10_000,
      message: 'the buffered gauge back to 0',
    });
    assert.equal(webhooks.stats().deliveryLog.dropped, 0);
  } finally {
    await webhooks.stop();
    await receiver.close();
    await closeEnv(env);
    await restarted?.stop();
  }
});
