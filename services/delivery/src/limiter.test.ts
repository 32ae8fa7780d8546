import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DestinationLimiter } from './limiter.ts';

test('a full ready queue and a backed-off destination hand entries back to be re-deferred', async () => {
  const limiter = new DestinationLimiter({ minQueue: 2, queueSeconds: 1 });
  const limits = { ratePerSecond: 1, adaptive: false, shared: false };
  const first = await limiter.admit('domain:a.test', limits);
  assert.equal(first.kind, 'go');
  // Two wait (the queue's capacity), the third is refused with a time to come back.
  const abort = new AbortController();
  const waiting = [
    limiter.admit('domain:a.test', limits, abort.signal),
    limiter.admit('domain:a.test', limits, abort.signal),
  ];
  const third = await limiter.admit('domain:a.test', limits);
  assert.equal(third.kind, 'defer');
  assert.ok(third.kind === 'defer' && third.at.getTime() > Date.now());
  abort.abort(new Error('released'));
  for (const w of waiting) await assert.rejects(w);
  // Every host failed: the destination is down until a time, another destination is not.
  const until = limiter.allHostsFailed('domain:a.test');
  const held = await limiter.admit('domain:a.test', limits);
  assert.deepEqual(held.kind === 'defer' && held.at, until);
  assert.equal((await limiter.admit('domain:b.test', limits)).kind, 'go');
  // A throttling reply halves the rate in force.
  const adaptive = { ratePerSecond: 8, adaptive: true, shared: false };
  (await limiter.admit('domain:c.test', adaptive)).kind === 'go' || assert.fail('admitted');
  limiter.throttled('domain:c.test');
  assert.equal(limiter.rate('domain:c.test'), 4);
});

test('a connection limit admits that many at once; a release lets the next in', async () => {
  const limiter = new DestinationLimiter();
  const limits = { maxConnections: 2, adaptive: false, shared: false };
  const a = await limiter.admit('domain:x.test', limits);
  const b = await limiter.admit('domain:x.test', limits);
  let third = false;
  const c = limiter.admit('domain:x.test', limits).then((r) => {
    third = true;
    return r;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(third, false, 'the third waits for a slot');
  if (a.kind === 'go') a.release();
  const admitted = await c;
  assert.equal(admitted.kind, 'go');
  if (b.kind === 'go') b.release();
  if (admitted.kind === 'go') admitted.release();
});
