import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { startNats } from '@petrel/test-harness';
import { clientNetwork, Greylist, greylistKey } from './greylist.ts';

const DELAY = 300;
const EXPIRE = 36 * 3600;
/**
 * A check that times out passes (fails open), which would look like a wrong answer: a timeout
 * no loaded host reaches, except in the test of an unreachable server.
 */
const NO_TIMEOUT = 30_000;

function recorder() {
  const warnings: string[] = [];
  return { warnings, log: { warn: (_o: object, m: string) => void warnings.push(m) } };
}

async function bucket(t: { after(fn: () => Promise<void> | void): void }): Promise<KV> {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  return await new Kvm(jetstream(nc)).create('petrel_greylist');
}

test('first sighting is greylisted, an early retry too, a retry after the delay passes', async (t) => {
  const kv = await bucket(t);
  let now = 1_700_000_000_000;
  const { log, warnings } = recorder();
  const greylist = new Greylist(kv, { log, now: () => now, timeoutMs: NO_TIMEOUT });
  const attempt = {
    ip: '192.0.2.10',
    sender: 'a@example.org',
    recipient: 'b@example.net',
    delaySeconds: DELAY,
    expireSeconds: EXPIRE,
  };

  const first = await greylist.check(attempt);
  assert.deepEqual(first, { code: 451, enhanced: '4.7.1', lines: ['Greylisted, please try again later'] });
  now += (DELAY - 1) * 1000;
  assert.equal((await greylist.check(attempt))?.code, 451, 'before the delay');
  now += 1000;
  // A neighbour in the same /24 with differently-cased addresses is the same triplet.
  assert.equal(
    await greylist.check({
      ...attempt,
      ip: '192.0.2.77',
      sender: 'A@Example.ORG',
      recipient: 'B@EXAMPLE.net',
    }),
    undefined,
  );
  // Passed triplets keep passing, and other triplets are unaffected.
  now += 3600_000;
  assert.equal(await greylist.check(attempt), undefined);
  assert.equal((await greylist.check({ ...attempt, ip: '198.51.100.1' }))?.code, 451);
  assert.equal((await greylist.check({ ...attempt, recipient: 'c@example.net' }))?.code, 451);
  assert.deepEqual(warnings, []);
});

test('a triplet not seen for longer than the expiry starts over', async (t) => {
  const kv = await bucket(t);
  let now = 1_700_000_000_000;
  const greylist = new Greylist(kv, { log: recorder().log, now: () => now, timeoutMs: NO_TIMEOUT });
  const attempt = {
    ip: '2001:db8:1:2::5',
    sender: 'a@example.org',
    recipient: 'b@example.net',
    delaySeconds: DELAY,
    expireSeconds: EXPIRE,
  };

  assert.equal((await greylist.check(attempt))?.code, 451);
  now += (EXPIRE + 1) * 1000;
  assert.equal((await greylist.check(attempt))?.code, 451, 'never retried in time: new first sighting');
  now += DELAY * 1000;
  // Same /64.
  assert.equal(await greylist.check({ ...attempt, ip: '2001:db8:1:2:ffff::1' }), undefined);
  now += (EXPIRE + 1) * 1000;
  assert.equal((await greylist.check(attempt))?.code, 451, 'passed, then silent beyond the expiry');
});

test('the null sender is never greylisted and leaves no state', async (t) => {
  const kv = await bucket(t);
  const greylist = new Greylist(kv, {
    log: recorder().log,
    now: () => 1_700_000_000_000,
    timeoutMs: NO_TIMEOUT,
  });
  const bounce = {
    ip: '192.0.2.10',
    sender: '',
    recipient: 'b@example.net',
    delaySeconds: DELAY,
    expireSeconds: EXPIRE,
  };
  assert.equal(await greylist.check(bounce), undefined);
  assert.equal(await greylist.check(bounce), undefined);
  assert.equal((await kv.status()).values, 0);
  // The same triplet with a sender is greylisted as usual.
  assert.equal((await greylist.check({ ...bounce, sender: 'a@example.org' }))?.code, 451);
});

test('an unreachable NATS server makes the check pass after its timeout, not the request timeout', async (t) => {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  t.after(() => nc.close());
  const kv = await new Kvm(jetstream(nc)).create('petrel_greylist');
  const { log, warnings } = recorder();
  const greylist = new Greylist(kv, { log, timeoutMs: 200 });
  await server.stop();
  const started = performance.now();
  const result = await greylist.check({
    ip: '192.0.2.1',
    sender: 'a@x.example',
    recipient: 'b@y.example',
    delaySeconds: DELAY,
    expireSeconds: EXPIRE,
  });
  const elapsed = performance.now() - started;
  assert.equal(result, undefined);
  // The KV client's own request timeout is 5 s: half of it is far above 200 ms and clearly below that.
  assert.ok(elapsed < 2500, `took ${elapsed} ms`);
  assert.equal(warnings.length, 1);
});

test('without the bucket the check fails open and logs', async (t) => {
  const kv = await bucket(t);
  const { log, warnings } = recorder();
  const greylist = new Greylist(kv, { log, timeoutMs: NO_TIMEOUT });
  await kv.destroy();
  const result = await greylist.check({
    ip: '192.0.2.1',
    sender: 'a@x.example',
    recipient: 'b@y.example',
    delaySeconds: DELAY,
    expireSeconds: EXPIRE,
  });
  assert.equal(result, undefined);
  assert.equal(warnings.length, 1);
});

test('networks and keys', () => {
  assert.equal(clientNetwork('192.0.2.200'), '192.0.2.0/24');
  assert.equal(clientNetwork('::ffff:192.0.2.200'), '192.0.2.0/24');
  assert.equal(clientNetwork('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientNetwork('2001:0DB8:0:0:1::1%eth0'), '2001:db8:0:0::/64');
  assert.equal(clientNetwork('::1'), '0:0:0:0::/64');
  assert.match(greylistKey('192.0.2.1', 'a@b', 'c@d'), /^[0-9a-f]{64}$/);
  assert.equal(greylistKey('192.0.2.1', 'A@B', 'c@d'), greylistKey('192.0.2.9', 'a@b', 'C@D'));
  assert.notEqual(greylistKey('192.0.2.1', 'a@b', 'c@d'), greylistKey('192.0.3.1', 'a@b', 'c@d'));
});
