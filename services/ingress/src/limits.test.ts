import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthThrottle, ConnectionLimiter, clientKey } from './limits.ts';

test('clients are counted per IPv4 address and per IPv6 /64, mapped IPv4 as IPv4', () => {
  assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
  assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(clientKey('::FFFF:c000:0201'), '192.0.2.1');
  assert.equal(clientKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:DB8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
});

test('ConnectionLimiter refuses beyond the per-address limit with 421 4.7.0', () => {
  const limiter = new ConnectionLimiter({ maxTotal: 100, maxPerAddress: 2 });
  assert.equal(limiter.tryAcquire('192.0.2.1'), undefined);
  assert.equal(limiter.tryAcquire('::ffff:192.0.2.1'), undefined);
  const refusal = limiter.tryAcquire('192.0.2.1');
  assert.equal(refusal?.code, 421);
  assert.equal(refusal?.enhanced, '4.7.0');
  assert.deepEqual(refusal?.lines, ['Too many connections from your address']);
  // Another address is not affected; a release makes room again.
  assert.equal(limiter.tryAcquire('192.0.2.2'), undefined);
  limiter.release('192.0.2.1');
  assert.equal(limiter.tryAcquire('192.0.2.1'), undefined);
  assert.equal(limiter.total, 3);
});

test('ConnectionLimiter counts a whole IPv6 /64 as one client', () => {
  const limiter = new ConnectionLimiter({ maxTotal: 100, maxPerAddress: 2 });
  assert.equal(limiter.tryAcquire('2001:db8:1:2::1'), undefined);
  assert.equal(limiter.tryAcquire('2001:db8:1:2::2'), undefined);
  assert.equal(limiter.tryAcquire('2001:db8:1:2:ffff::3')?.code, 421);
  assert.equal(limiter.tryAcquire('2001:db8:1:3::1'), undefined);
});

test('ConnectionLimiter enforces the total limit and tolerates stray releases', () => {
  const limiter = new ConnectionLimiter({ maxTotal: 2, maxPerAddress: 5 });
  assert.equal(limiter.tryAcquire('192.0.2.1'), undefined);
  assert.equal(limiter.tryAcquire('192.0.2.2'), undefined);
  assert.deepEqual(limiter.tryAcquire('192.0.2.3')?.lines, ['Too many connections']);
  limiter.release('198.51.100.9');
  assert.equal(limiter.total, 2);
  limiter.release('192.0.2.2');
  assert.equal(limiter.tryAcquire('192.0.2.3'), undefined);
});

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

test('AuthThrottle: no delay at first, then exponential up to the maximum', () => {
  const c = clock();
  const throttle = new AuthThrottle({ now: c.now, lockoutAfter: 100 });
  const delays = Array.from({ length: 10 }, () => throttle.failure('192.0.2.1', 'app@example.org'));
  assert.deepEqual(delays, [0, 0, 0, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  assert.equal(throttle.check('192.0.2.1', 'app@example.org'), undefined);
});

test('AuthThrottle: locks out the address after lockoutAfter failures, for lockoutMs', () => {
  const c = clock();
  const throttle = new AuthThrottle({ now: c.now, lockoutAfter: 3, lockoutMs: 60_000, windowMs: 60_000 });
  for (let i = 0; i < 2; i++) throttle.failure('192.0.2.1');
  assert.equal(throttle.check('192.0.2.1'), undefined);
  throttle.failure('192.0.2.1');
  const refusal = throttle.check('192.0.2.1');
  assert.equal(refusal?.code, 454);
  assert.equal(refusal?.enhanced, '4.7.0');
  assert.deepEqual(refusal?.lines, ['Too many authentication failures, try again later']);
  // The same /64 or mapped form is the same client; other clients are not locked.
  assert.equal(throttle.check('::ffff:192.0.2.1')?.code, 454);
  assert.equal(throttle.check('192.0.2.2'), undefined);
  c.advance(59_999);
  assert.equal(throttle.check('192.0.2.1')?.code, 454);
  c.advance(1);
  assert.equal(throttle.check('192.0.2.1'), undefined);
  assert.equal(throttle.failure('192.0.2.1'), 0);
});

test('AuthThrottle: a user guessed at from many addresses is locked out too', () => {
  const throttle = new AuthThrottle({ now: clock().now, lockoutAfter: 3 });
  throttle.failure('192.0.2.1', 'app@example.org');
  throttle.failure('192.0.2.2', 'App@Example.org');
  throttle.failure('192.0.2.3', 'app@example.org');
  assert.equal(throttle.check('198.51.100.1', 'app@example.org')?.code, 454);
  assert.equal(throttle.check('198.51.100.1', 'other@example.org'), undefined);
  assert.equal(throttle.check('198.51.100.1'), undefined);
});

test('AuthThrottle: failures outside the window are forgotten', () => {
  const c = clock();
  const throttle = new AuthThrottle({ now: c.now, windowMs: 1000 });
  for (let i = 0; i < 3; i++) throttle.failure('192.0.2.1');
  assert.equal(throttle.failure('192.0.2.1'), 500);
  c.advance(1000);
  assert.equal(throttle.failure('192.0.2.1'), 0);
});

test('AuthThrottle: success clears the address', () => {
  const throttle = new AuthThrottle({ now: clock().now });
  for (let i = 0; i < 4; i++) throttle.failure('192.0.2.1', 'app@example.org');
  throttle.success('192.0.2.1', 'app@example.org');
  assert.equal(throttle.failure('192.0.2.1'), 0);
});

test('AuthThrottle: memory is bounded, the oldest entry is forgotten first', () => {
  const throttle = new AuthThrottle({ now: clock().now, maxEntries: 3, lockoutAfter: 1 });
  throttle.failure('192.0.2.1');
  throttle.failure('192.0.2.2');
  throttle.failure('192.0.2.3');
  throttle.failure('192.0.2.4');
  assert.equal(throttle.size, 3);
  assert.equal(throttle.check('192.0.2.1'), undefined);
  for (const ip of ['192.0.2.2', '192.0.2.3', '192.0.2.4']) assert.equal(throttle.check(ip)?.code, 454);
});
