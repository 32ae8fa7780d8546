import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TurnBatch } from './turn-batch.ts';

test('work queued in one turn starts together, in order, after the turn', async () => {
  const batch = new TurnBatch();
  const started: number[] = [];
  const results = [1, 2, 3].map((n) =>
    batch.run(async () => {
      started.push(n);
      return n * 10;
    }),
  );
  assert.deepEqual(started, [], 'nothing starts synchronously');
  await new Promise<void>((r) => queueMicrotask(r));
  assert.deepEqual(started, [], 'nor in the same microtask checkpoint');
  assert.deepEqual(await Promise.all(results), [10, 20, 30]);
  assert.deepEqual(started, [1, 2, 3]);
  // A later turn gets a batch of its own.
  assert.equal(await batch.run(async () => 'again'), 'again');
});

test('a failure, thrown or rejected, reaches only its own caller', async () => {
  const batch = new TurnBatch();
  const thrown = batch.run<number>(() => {
    throw new Error('thrown');
  });
  const rejected = batch.run(() => Promise.reject(new Error('rejected')));
  const fine = batch.run(async () => 'fine');
  await assert.rejects(thrown, /thrown/);
  await assert.rejects(rejected, /rejected/);
  assert.equal(await fine, 'fine');
});
