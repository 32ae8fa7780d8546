import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_RETRY_POLICY, delayNoticeDue, nextStep, parseDelays, type RetryPolicy } from './schedule.ts';

const MIN = 60_000;
const H = 60 * MIN;
const received = new Date('2026-11-22T10:00:00Z');
const at = (ms: number) => new Date(received.getTime() + ms);
const noJitter: RetryPolicy = { ...DEFAULT_RETRY_POLICY, jitter: 0 };

test('the default schedule is 1m, 5m, 15m, 30m, 1h, 2h, 4h, then every 4h', () => {
  const expected = [1, 5, 15, 30, 60, 120, 240, 240, 240].map((m) => m * MIN);
  let now = received.getTime();
  expected.forEach((delay, i) => {
    const step = nextStep(noJitter, { attempts: i + 1, receivedAt: received, now: new Date(now) });
    assert.equal(step.kind, 'retry');
    if (step.kind === 'retry') assert.equal(step.at.getTime() - now, delay, `retry ${i + 1}`);
    now += delay;
  });
});

test('jitter stays within ±10 % and uses the random source', () => {
  const now = at(0);
  const low = nextStep(DEFAULT_RETRY_POLICY, { attempts: 5, receivedAt: received, now }, () => 0);
  const high = nextStep(DEFAULT_RETRY_POLICY, { attempts: 5, receivedAt: received, now }, () => 0.999999);
  assert.equal(low.kind === 'retry' && low.at.getTime() - now.getTime(), 54 * MIN);
  assert.ok(high.kind === 'retry' && Math.abs(high.at.getTime() - now.getTime() - 66 * MIN) < 1_000);
});

test('the queue lifetime ends in an expiry with 5.4.7; the last retry lands on the deadline', () => {
  const nearEnd = nextStep(noJitter, { attempts: 30, receivedAt: received, now: at(5 * 24 * H - 30 * MIN) });
  assert.deepEqual(nearEnd, { kind: 'retry', at: at(5 * 24 * H) });
  assert.deepEqual(nextStep(noJitter, { attempts: 31, receivedAt: received, now: at(5 * 24 * H) }), {
    kind: 'expire',
    reason: 'lifetime',
    status: '5.4.7',
  });
  const shortLife = { ...noJitter, lifetimeMs: 2 * H };
  assert.equal(nextStep(shortLife, { attempts: 1, receivedAt: received, now: at(2 * H + 1) }).kind, 'expire');
});

test('DELIVERBY with R: retried up to the deadline, then expired', () => {
  const returnBy = at(10 * MIN);
  assert.deepEqual(nextStep(noJitter, { attempts: 3, receivedAt: received, now: at(MIN), returnBy }), {
    kind: 'retry',
    at: returnBy,
  });
  assert.deepEqual(nextStep(noJitter, { attempts: 4, receivedAt: received, now: returnBy, returnBy }), {
    kind: 'expire',
    reason: 'deliverBy',
    status: '5.4.7',
  });
});

test('the delay DSN goes once, after 4 h, when NOTIFY asks for DELAY (or by policy without NOTIFY)', () => {
  const base = { receivedAt: received, alreadyNotified: false };
  assert.equal(delayNoticeDue(noJitter, { ...base, now: at(3 * H), notify: ['DELAY'] }), false);
  assert.equal(delayNoticeDue(noJitter, { ...base, now: at(4 * H), notify: ['DELAY', 'FAILURE'] }), true);
  assert.equal(delayNoticeDue(noJitter, { ...base, now: at(5 * H), notify: ['FAILURE'] }), false);
  assert.equal(delayNoticeDue(noJitter, { ...base, now: at(5 * H), notify: ['NEVER'] }), false);
  assert.equal(delayNoticeDue(noJitter, { ...base, now: at(5 * H), notify: [] }), false);
  assert.equal(
    delayNoticeDue({ ...noJitter, delayNoticeWithoutNotify: true }, { ...base, now: at(5 * H), notify: [] }),
    true,
  );
  assert.equal(
    delayNoticeDue(noJitter, { ...base, alreadyNotified: true, now: at(9 * H), notify: ['DELAY'] }),
    false,
  );
});

test('delay lists parse with units and refuse garbage', () => {
  assert.deepEqual(parseDelays('1m,5m, 4h,30s,1500,2d'), [MIN, 5 * MIN, 4 * H, 30_000, 1500, 48 * H]);
  assert.throws(() => parseDelays('1m,soon'), /invalid duration "soon"/);
  assert.throws(() => parseDelays('0m'), /must be positive/);
});
