import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tarpitDelay } from './tarpit.ts';

/** The tarpit timer is unref'd, so a test holds the event loop open with its own timer meanwhile. */
async function keepingAlive<T>(work: Promise<T>): Promise<T> {
  const hold = setInterval(() => {}, 1000);
  try {
    return await work;
  } finally {
    clearInterval(hold);
  }
}

test('tarpitDelay waits the given time', async () => {
  const started = performance.now();
  await keepingAlive(tarpitDelay(150));
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 145, `waited only ${elapsed} ms`);
  // Generous for a stalled CI host; still fails a wait of another order (seconds taken for ms).
  assert.ok(elapsed < 5_000, `waited ${elapsed} ms`);
});

test('tarpitDelay resolves early when aborted', async () => {
  const controller = new AbortController();
  const started = performance.now();
  const waiting = keepingAlive(tarpitDelay(10_000, controller.signal));
  setTimeout(() => controller.abort(), 50);
  await waiting;
  const elapsed = performance.now() - started;
  // Half the 10 s it would wait unaborted: room for a stalled CI host, still fails an ignored abort.
  assert.ok(elapsed >= 45 && elapsed < 5_000, `resolved after ${elapsed} ms`);

  const again = performance.now();
  await tarpitDelay(10_000, controller.signal);
  // Against the 10 s wait, not a tight figure: a GC pause or a busy CI host can take 50 ms.
  assert.ok(performance.now() - again < 5_000, 'an aborted signal returns at once');
});

test('a pending tarpit does not keep the process alive', async () => {
  const module = JSON.stringify(fileURLToPath(new URL('./tarpit.ts', import.meta.url)));
  const script = `import { tarpitDelay } from ${module}; void tarpitDelay(60_000);`;
  const started = performance.now();
  await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
  assert.ok(performance.now() - started < 20_000);
});
