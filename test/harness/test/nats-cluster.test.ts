import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { startNats, startNatsCluster, waitFor } from '../src/index.ts';

test('a single JetStream node starts on a free loopback port and stores messages', async (t) => {
  const server = await startNats(t.after.bind(t));
  assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const { connect } = await import('@nats-io/transport-node');
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'ONE', subjects: ['one.>'], storage: StorageType.File });
  const ack = await jetstream(nc).publish('one.a', 'x');
  assert.equal(ack.stream, 'ONE');
  assert.equal(ack.seq, 1);
});

test('a 3-node cluster keeps an R3 stream writable and readable while a node is down, and the node catches up', async (t) => {
  const cluster = await startNatsCluster(t.after.bind(t), 3);
  assert.equal(cluster.nodes.length, 3);
  const nc = await cluster.connect();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc, { timeout: 2_000 });
  const info = await jsm.streams.add({
    name: 'R3',
    subjects: ['r3.>'],
    num_replicas: 3,
    storage: StorageType.File,
  });
  assert.equal(info.config.num_replicas, 3);
  await waitFor(async () => (await jsm.streams.info('R3')).cluster?.replicas?.length === 2, {
    timeoutMs: 20_000,
    message: 'stream leader with two replicas',
  });

  const publish = async (i: number) =>
    await waitFor(
      async () => {
        const ack = await js.publish(`r3.${i}`, String(i), { msgID: `m${i}` });
        return ack.seq;
      },
      { timeoutMs: 20_000, intervalMs: 100, message: `publish ${i}` },
    );
  for (let i = 0; i < 50; i++) await publish(i);

  // Kill the stream's leader: the hardest case (a new leader must be elected).
  const leaderName = (await jsm.streams.info('R3')).cluster?.leader;
  const victim = cluster.nodes.find((n) => n.name === leaderName);
  assert.ok(victim, `leader ${leaderName} is one of our nodes`);
  await victim.kill();

  for (let i = 50; i < 100; i++) await publish(i);
  const during = await waitFor(async () => (await jsm.streams.info('R3')).state.messages, {
    timeoutMs: 20_000,
    message: 'stream info from the surviving nodes',
  });
  assert.equal(during, 100);

  // The killed node may also have led the JetStream meta group: API calls succeed again once it is re-elected.
  await waitFor(() => jsm.consumers.add('R3', { durable_name: 'reader', ack_policy: AckPolicy.Explicit }), {
    timeoutMs: 30_000,
    intervalMs: 200,
    message: 'consumer creation with a node down',
  });
  // A new R3 consumer elects its own leader among the two live nodes first.
  const consumer = await waitFor(() => js.consumers.get('R3', 'reader'), {
    timeoutMs: 30_000,
    intervalMs: 200,
    message: 'the consumer to have a leader',
  });
  const seen = new Set<string>();
  await waitFor(
    async () => {
      const batch = await consumer.fetch({ max_messages: 100, expires: 1_000 });
      for await (const m of batch) {
        seen.add(m.string());
        m.ack();
      }
      return seen.size === 100;
    },
    { timeoutMs: 30_000, message: 'all 100 messages read while a node is down' },
  );

  await victim.restart();
  await waitFor(
    async () => {
      const replicas = (await jsm.streams.info('R3')).cluster?.replicas ?? [];
      return replicas.length === 2 && replicas.every((r) => r.current && !r.offline);
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'the restarted node to be a current replica again' },
  );
  await publish(100);
  const after = await waitFor(async () => (await jsm.streams.info('R3')).state.messages, {
    timeoutMs: 20_000,
    message: 'stream info after the restart',
  });
  assert.equal(after, 101);
});
