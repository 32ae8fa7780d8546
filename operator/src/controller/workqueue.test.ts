import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setCondition } from './conditions.ts';
import { ExponentialRateLimiter, WorkQueue } from './workqueue.ts';

test('a key added many times while waiting is handed out once', async () => {
  const queue = new WorkQueue();
  for (let i = 0; i < 5; i++) queue.add('ns/a');
  queue.add('ns/b');
  assert.equal(queue.length, 2);
  assert.equal(await queue.get(), 'ns/a');
  assert.equal(await queue.get(), 'ns/b');
  queue.done('ns/a');
  queue.done('ns/b');
  assert.equal(queue.length, 0);
});

test('a key is never processed twice at once: added while processing, it comes back after done()', async () => {
  const queue = new WorkQueue();
  queue.add('k');
  assert.equal(await queue.get(), 'k');
  queue.add('k'); // an update arrives during the reconcile
  assert.equal(queue.length, 0, 'not handed out while in flight');
  let second: string | undefined;
  const waiting = queue.get().then((key) => {
    second = key;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(second, undefined);
  queue.done('k');
  await waiting;
  assert.equal(second, 'k');
  queue.done('k');
});

test('rate-limited requeue backs off exponentially per key and forget() resets it', () => {
  const limiter = new ExponentialRateLimiter({ baseDelayMs: 5, maxDelayMs: 1000 });
  const delays = Array.from({ length: 10 }, () => limiter.when('k'));
  assert.deepEqual(delays.slice(0, 4), [5, 10, 20, 40]);
  assert.equal(delays.at(-1), 1000, 'capped');
  assert.equal(limiter.when('other'), 5, 'per key');
  limiter.forget('k');
  assert.equal(limiter.when('k'), 5);
});

test('shutdown waits for work in flight and hands out nothing new', async () => {
  const queue = new WorkQueue();
  queue.add('a');
  const key = await queue.get();
  let drained = false;
  const shut = queue.shutdown({ timeoutMs: 5000 }).then((ok) => {
    drained = ok;
  });
  queue.add('b');
  await new Promise((r) => setImmediate(r));
  assert.equal(drained, false, 'waits for the key in flight');
  queue.done(key ?? '');
  await shut;
  assert.equal(drained, true);
  assert.equal(await queue.get(), undefined);
});

test('a condition keeps its lastTransitionTime while its status does not change', () => {
  const t1 = new Date('2026-11-01T00:00:00Z');
  const t2 = new Date('2026-11-01T01:00:00Z');
  const first = setCondition(
    [],
    { type: 'Ready', status: 'False', reason: 'Publishing', observedGeneration: 1 },
    t1,
  );
  const same = setCondition(
    first,
    { type: 'Ready', status: 'False', reason: 'Draining', observedGeneration: 2 },
    t2,
  );
  assert.equal(same[0]?.lastTransitionTime, first[0]?.lastTransitionTime);
  assert.equal(same[0]?.reason, 'Draining');
  const changed = setCondition(same, { type: 'Ready', status: 'True', reason: 'Ready' }, t2);
  assert.notEqual(changed[0]?.lastTransitionTime, first[0]?.lastTransitionTime);
  assert.equal(changed.length, 1);
});
