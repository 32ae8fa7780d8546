import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { startQueue } from '@petrel/queue/testing';
import { LEASE_TTL_MS, LEASES_BUCKET, ShardLeases } from './leases.ts';

const quiet = { warn() {}, info() {} };

/** One worker ('w1') on a fresh leases bucket of `shards` shards; `released` lists what it gave up. */
async function soleWorker(t: TestContext, shards: number) {
  const { js } = await startQueue(t);
  const kv = await new Kvm(js).create(LEASES_BUCKET, { history: 1, ttl: LEASE_TTL_MS });
  const released: number[] = [];
  const leases = new ShardLeases({
    kv,
    workerId: 'w1',
    shards,
    acquired: () => {},
    released: async (shard) => {
      released.push(shard);
    },
    log: quiet,
  });
  return { kv, leases, released };
}

test('a renewal whose reply was lost but which took effect keeps the shard; a taken one is given up', async (t) => {
  const { kv, leases, released } = await soleWorker(t, 2);
  await leases.tick();
  assert.deepEqual(leases.owned, [0, 1]);
  // Shard 0: our own renewal went through but we never saw its reply (revision moved, still ours).
  const e0 = await kv.get('shard.0');
  await kv.update('shard.0', 'w1', e0?.revision ?? 0);
  // Shard 1: another worker took it (we were partitioned past the TTL).
  const e1 = await kv.get('shard.1');
  await kv.update('shard.1', 'w2', e1?.revision ?? 0);
  await leases.tick();
  assert.deepEqual(leases.owned, [0], 'shard 0 kept, shard 1 given up');
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.deepEqual(released, [1]);
  await leases.tick();
  assert.deepEqual(leases.owned, [0], 'and renewed normally afterwards');
});

test('surplus shards are handed back only when two rounds in a row count the new worker', async (t) => {
  const { kv, leases, released } = await soleWorker(t, 4);
  await leases.tick();
  assert.deepEqual(leases.owned, [0, 1, 2, 3]);
  // A worker seen for one round only (it died at once, or a listing glitch): nothing moves.
  await kv.put('worker.ghost', '1');
  await leases.tick();
  await kv.delete('worker.ghost');
  await leases.tick();
  assert.deepEqual(leases.owned, [0, 1, 2, 3], 'one round with two workers moves nothing');
  // A worker that stays: the second round that counts it hands half back.
  await kv.put('worker.w2', '1');
  await leases.tick();
  assert.equal(leases.owned.length, 4, 'not yet after one round');
  await leases.tick();
  assert.equal(leases.owned.length, 2, 'handed back after two rounds');
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(released.length, 2);
});
