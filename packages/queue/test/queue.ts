import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats } from '@petrel/test-harness';
import { ensureStreams } from '../src/streams.ts';

export interface TestQueue {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/** A fresh nats-server with the queue's streams, and a connection to it; both gone after the test. */
export async function startQueue(t: { after(fn: () => Promise<void> | void): void }): Promise<TestQueue> {
  const server = await startNats((fn) => t.after(fn));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  return { nc, js: jetstream(nc), jsm };
}
