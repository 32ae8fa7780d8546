import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Reply } from '@petrel/smtp';
import { AdaptiveRate, isThrottling, SiteBackoff, TokenBucket } from './health.ts';

const reply = (code: number, enhanced: string | undefined, text: string): Reply =>
  ({ code, enhanced, lines: [text] }) as Reply;

test('throttling replies are told from other temporary and permanent failures', () => {
  assert.equal(isThrottling(reply(421, '4.7.0', 'Try again later, closing connection.')), true);
  assert.equal(isThrottling(reply(451, '4.7.1', 'Greylisted')), true);
  assert.equal(
    isThrottling(
      reply(
        450,
        '4.2.1',
        'The user you are trying to contact is receiving mail at a rate that prevents additional messages',
      ),
    ),
    false,
  );
  assert.equal(isThrottling(reply(450, undefined, 'Too many messages, slow down')), true);
  assert.equal(isThrottling(reply(451, '4.3.0', 'Temporary local problem')), false);
  assert.equal(isThrottling(reply(452, '4.5.3', 'Too many recipients')), true);
  assert.equal(isThrottling(reply(550, '5.7.1', 'Rate limited forever')), false);
  assert.equal(isThrottling(reply(250, '2.0.0', 'OK')), false);
});

test('a throttling reply halves the rate, holds it for 10 minutes, then recovers 10 % per minute', () => {
  const MIN = 60_000;
  const rate = new AdaptiveRate({ ratePerSecond: 10 });
  assert.equal(rate.rate(0), 10);
  rate.throttled(0);
  assert.equal(rate.rate(0), 5);
  assert.equal(rate.rate(10 * MIN), 5);
  assert.equal(rate.rate(11 * MIN), 6);
  assert.equal(rate.rate(13 * MIN), 8);
  assert.equal(rate.rate(60 * MIN), 10);
  // Throttled again while recovering: halves from the current rate.
  rate.throttled(12 * MIN);
  assert.equal(rate.rate(12 * MIN), 3.5);
  // Never below the floor.
  const low = new AdaptiveRate({ ratePerSecond: 1, floor: 0.2 });
  for (let i = 0; i < 10; i++) low.throttled(0);
  assert.equal(low.rate(0), 0.2);
});

test('the token bucket spaces sends at the rate with a one-second burst', () => {
  const bucket = new TokenBucket(0, 1);
  assert.equal(bucket.take(0, 2), 0);
  assert.equal(bucket.take(0, 2), 500);
  assert.equal(bucket.take(500, 2), 0);
  // After a long pause, a burst of a tenth of a second's worth (at least one message).
  let taken = 0;
  while (bucket.take(60_000, 2) === 0) taken++;
  assert.equal(taken, 1);
  taken = 0;
  while (bucket.take(120_000, 200) === 0) taken++;
  assert.equal(taken, 20);
});

test('a dead site is backed off as a whole, doubling to an hour, and one probe decides', () => {
  const MIN = 60_000;
  const site = new SiteBackoff();
  assert.equal(site.admit(0), undefined);
  assert.equal(site.allHostsFailed(0), MIN);
  assert.equal(site.admit(30_000), MIN, 'entries wait for the pause');
  assert.equal(site.admit(MIN), undefined, 'the first entry after the pause is the probe');
  assert.equal(site.admit(MIN + 1), 2 * MIN + 1, 'others wait while the probe runs');
  assert.equal(site.allHostsFailed(MIN + 10), MIN + 10 + 2 * MIN);
  let until = 0;
  for (let i = 0; i < 10; i++) until = site.allHostsFailed(0);
  assert.equal(until, 60 * MIN, 'capped at an hour');
  site.up();
  assert.equal(site.admit(1), undefined);
  assert.equal(site.admit(2), undefined);
});
