import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SmtpClient } from '@petrel/smtp';
import { startSmtpSink, waitFor } from '@petrel/test-harness';
import { ConnectionPool } from './pool.ts';
import type { Target } from './router.ts';

async function sinkTarget(t: { after(fn: () => Promise<void> | void): void }) {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const target: Target = { host: sink.host, port: sink.port, name: 'sink.test', lmtp: false };
  return { sink, target };
}

const connect = (target: Target) =>
  SmtpClient.connect({ host: target.host, port: target.port, localName: 'pool.test', tls: 'none' });

const message = Buffer.from('Subject: pooled\r\n\r\nhi\r\n');

test('a connection is reused for the next message and closed after the per-connection limit', async (t) => {
  const { sink, target } = await sinkTarget(t);
  const pool = new ConnectionPool({ connect, maxPerHost: 2, maxMessagesPerConnection: 3, idleMs: 60_000 });
  t.after(() => pool.close());
  for (let i = 0; i < 5; i++) {
    const client = await pool.acquire(target);
    await client.send({ from: 'a@pool.test', to: [`r${i}@sink.test`] }, message);
    pool.release(target, client);
  }
  assert.equal(sink.messages.length, 5);
  // Messages 1-3 on the first connection, 4-5 on a second one.
  assert.equal(sink.connections, 2);
  const ids = sink.messages.map((m) => m.connectionId);
  assert.deepEqual(ids, [ids[0], ids[0], ids[0], ids[3], ids[3]]);
  assert.notEqual(ids[0], ids[3]);
});

test('no more than maxPerHost connections at once; waiters get the next free one', async (t) => {
  const { sink, target } = await sinkTarget(t);
  const pool = new ConnectionPool({ connect, maxPerHost: 2, maxMessagesPerConnection: 100, idleMs: 60_000 });
  t.after(() => pool.close());
  let peak = 0;
  await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const client = await pool.acquire(target);
      peak = Math.max(peak, [...pool.open.values()][0] ?? 0);
      await client.send({ from: 'a@pool.test', to: [`r${i}@sink.test`] }, message);
      pool.release(target, client);
    }),
  );
  assert.equal(sink.messages.length, 8);
  assert.equal(peak, 2);
  assert.equal(sink.connections, 2);
});

test('idle connections are closed after idleMs; a discarded one frees its slot', async (t) => {
  const { sink, target } = await sinkTarget(t);
  const pool = new ConnectionPool({ connect, maxPerHost: 1, maxMessagesPerConnection: 100, idleMs: 50 });
  t.after(() => pool.close());
  const client = await pool.acquire(target);
  await client.send({ from: 'a@pool.test', to: ['x@sink.test'] }, message);
  pool.release(target, client);
  await waitFor(() => (client.state === 'closed' ? true : undefined), { timeoutMs: 5_000 });
  assert.equal([...pool.open.values()][0], 0);
  const next = await pool.acquire(target);
  pool.discard(target, next);
  const third = await pool.acquire(target);
  assert.equal(third.usable, true);
  pool.release(target, third);
  assert.equal(sink.connections, 3);
});

test('all connections busy: the next sender is queued behind a transaction in progress, on the same connection', async (t) => {
  const { sink, target } = await sinkTarget(t);
  const pool = new ConnectionPool({ connect, maxPerHost: 1, maxMessagesPerConnection: 100, idleMs: 60_000 });
  t.after(() => pool.close());
  const first = await pool.acquire(target);
  const sending = first.send({ from: 'a@pool.test', to: ['r0@sink.test'] }, message);
  // No wait for a release: the busy connection takes it (PIPELINING offered).
  const second = await pool.acquire(target);
  assert.equal(second, first);
  const queued = second.send({ from: 'a@pool.test', to: ['r1@sink.test'] }, message);
  // A third sender waits: one transaction queued per connection at most.
  let thirdGot = false;
  const third = pool.acquire(target).then((c) => {
    thirdGot = true;
    return c;
  });
  assert.equal((await sending).recipients[0]?.status, 'delivered');
  pool.release(target, first);
  assert.equal((await queued).recipients[0]?.status, 'delivered');
  const c3 = await third;
  assert.ok(thirdGot);
  assert.equal(c3, first);
  await c3.send({ from: 'a@pool.test', to: ['r2@sink.test'] }, message);
  pool.release(target, second);
  pool.release(target, c3);
  assert.equal(sink.connections, 1);
  assert.deepEqual(
    sink.messages.map((m) => m.rcptTo[0]),
    ['r0@sink.test', 'r1@sink.test', 'r2@sink.test'],
  );
  assert.equal([...pool.open.values()][0], 1);
});

test('a queued sender whose connection failed ahead of it: discarded by both, the slot freed once', async (t) => {
  const { sink, target } = await sinkTarget(t);
  const pool = new ConnectionPool({ connect, maxPerHost: 1, maxMessagesPerConnection: 100, idleMs: 60_000 });
  t.after(() => pool.close());
  sink.setBehaviour(() => ({ kind: 'disconnectInData' }));
  const first = await pool.acquire(target);
  const sending = first.send({ from: 'a@pool.test', to: ['r0@sink.test'] }, message);
  const second = await pool.acquire(target);
  assert.equal(second, first);
  const queued = second.send({ from: 'a@pool.test', to: ['r1@sink.test'] }, message);
  await assert.rejects(sending);
  pool.discard(target, first);
  await assert.rejects(queued, /not sent/);
  pool.discard(target, second);
  assert.equal([...pool.open.values()][0], 0);
  // The slot is free: a new connection.
  sink.setBehaviour(() => ({ kind: 'accept' }));
  const fresh = await pool.acquire(target);
  assert.notEqual(fresh, first);
  await fresh.send({ from: 'a@pool.test', to: ['r2@sink.test'] }, message);
  pool.release(target, fresh);
  assert.deepEqual(
    sink.messages.map((m) => m.rcptTo[0]),
    ['r2@sink.test'],
  );
});
