/**
 * A worker killed mid-delivery (SIGKILL while the next hop holds the final reply): the entry was
 * never acked, so after ack_wait another worker delivers it — the message arrives, at most once
 * more (the one duplicate SMTP cannot avoid: the first copy may have been taken).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { compileDirectory, writeRuntimeConfig } from '@petrel/operator';
import { timestampFromDate } from '@petrel/proto';
import {
  deliveryConsumerName,
  ensureDeliveryConsumers,
  ensureStreams,
  newEnvelope,
  newMessageId,
  publishMessage,
  shardOf,
} from '@petrel/queue';
import { startNats, startSmtpSink, tempDir, waitFor } from '@petrel/test-harness';
import { LEASE_TTL_MS } from './leases.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

test('a worker killed mid-delivery: the message is delivered by the next worker, at most once more', async (t) => {
  const nats = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: nats.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  await ensureDeliveryConsumers(jsm, { ackWaitMs: 3_000 });
  // The next hop takes 60 s to answer the final dot: the worker is killed while it waits.
  const sink = await startSmtpSink({ behaviour: () => ({ kind: 'slow', delayMs: 60_000 }) });
  t.after(() => sink.close());
  const dir = await tempDir('crash');
  const runtimeConfig = join(dir, 'runtime-config.json');
  await writeRuntimeConfig(runtimeConfig, await compileDirectory(await tempDir('crash-config'), 1));
  const start = (): ChildProcess => {
    const child = fork(MAIN, [], {
      env: {
        ...process.env,
        PETREL_NATS_URL: nats.url,
        PETREL_RUNTIME_CONFIG: runtimeConfig,
        PETREL_SMARTHOST: sink.address,
        PETREL_ACK_WAIT_MS: '3000',
        // The second worker claims the shard once the killed one's lease expires: look often.
        PETREL_LEASE_RENEW_MS: '500',
        PETREL_LOG_LEVEL: 'silent',
      },
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    });
    return child;
  };
  const first = start();
  await new Promise<void>((resolve) =>
    first.on('message', (m: { type?: string }) => m.type === 'ready' && resolve()),
  );

  const messageId = newMessageId();
  await publishMessage(jetstream(nc), nc, {
    messageId,
    envelopes: [
      newEnvelope({
        messageId,
        sender: 'a@origin.example',
        destinationDomain: 'dest.example',
        recipients: [{ address: 'b@dest.example' }],
        receivedAt: timestampFromDate(new Date()),
      }),
    ],
    body: Buffer.from('Subject: crash\r\n\r\nbody\r\n'),
    timeoutMs: 5_000,
  });
  // The whole message reached the next hop; its reply is pending.
  await waitFor(() => (sink.held === 1 && sink.messages.length === 0 ? true : undefined), {
    timeoutMs: 20_000,
  });
  await waitFor(
    async () =>
      (await jsm.consumers.info('PETREL_OUTBOUND', deliveryConsumerName(shardOf('dest.example'))))
        .num_ack_pending === 1
        ? true
        : undefined,
    { timeoutMs: 20_000 },
  );
  first.kill('SIGKILL');
  await once(first, 'exit');

  sink.setBehaviour(() => ({ kind: 'accept' }));
  const second = start();
  // Up to LEASE_TTL_MS until the dead worker's shard lease expires, then the redelivery.
  await waitFor(() => (sink.messagesTo('b@dest.example').length > 0 ? true : undefined), {
    timeoutMs: LEASE_TTL_MS + 30_000,
  });
  // Acked by the second worker: nothing left in the queue.
  await waitFor(
    async () => ((await jsm.streams.info('PETREL_OUTBOUND')).state.messages === 0 ? true : undefined),
    { timeoutMs: 20_000 },
  );
  assert.ok(sink.messagesTo('b@dest.example').length <= 2, 'at most once more');
  assert.equal(sink.messagesTo('b@dest.example')[0]?.data.toString().includes('Subject: crash'), true);
  second.kill('SIGTERM');
  await once(second, 'exit');
});
