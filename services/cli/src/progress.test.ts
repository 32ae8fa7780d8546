import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startProgress } from './progress.ts';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, write: (text: string) => writes.push(text) };
}

test('not a terminal: one line, nothing redrawn, nothing on stop', () => {
  const s = stream(false);
  const p = startProgress({ stream: s, label: 'purging the deferred mail of example.org' });
  p.stop();
  assert.deepEqual(s.writes, [
    'petrel: purging the deferred mail of example.org… (working; this can take a while)\n',
  ]);
});

test('a terminal: a spinner with the seconds elapsed, redrawn in place, erased on stop', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const s = stream(true);
  let now = 1_000_000;
  const p = startProgress({ stream: s, label: 'bouncing x\u001b', now: () => now, intervalMs: 100 });
  assert.deepEqual(s.writes, ['\r\u001b[2K⠋ bouncing x\\x1b… 0s']);
  now += 100;
  t.mock.timers.tick(100);
  now += 1400;
  t.mock.timers.tick(100);
  assert.deepEqual(s.writes.slice(1), [
    '\r\u001b[2K⠙ bouncing x\\x1b… 0s',
    '\r\u001b[2K⠹ bouncing x\\x1b… 1s',
  ]);
  p.stop();
  p.stop();
  t.mock.timers.tick(1000);
  assert.deepEqual(s.writes.slice(3), ['\r\u001b[2K'], 'erased once, then silent');
});
