import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats } from '@petrel/test-harness';
import { ensureDeliveryConsumers, ensureStreams } from '../src/streams.ts';

export interface TestQueue {
  /** The nats-server's URL, for processes started by the test. */
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * A fresh nats-server with the queue's streams (and the delivery consumers when `ackWaitMs` is
 * given), and a connection to it; both gone after the test (`t.after`, or a benchmark's list).
 */
export async function startQueue(
  t: { after(fn: () => Promise<void> | void): void },
  options: { ackWaitMs?: number } = {},
): Promise<TestQueue> {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  if (options.ackWaitMs !== undefined) await ensureDeliveryConsumers(jsm, { ackWaitMs: options.ackWaitMs });
  return { url: server.url, nc, js: jetstream(nc), jsm };
}
