import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNats } from '@petrel/test-harness';
import { encodeEnvelope, newEnvelope } from '../src/codec.ts';
import { ensureDeliveryConsumers, ensureStreams, STREAM_OUTBOUND } from '../src/streams.ts';
import { outboundSubject } from '../src/subjects.ts';

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

/**
 * Queues `count` entries for `domain` and hands them out as a worker holds them: fetched from a
 * consumer of their own (`name`), not yet acked. The ack subject is on each (`reply`).
 */
export async function heldEntries(
  q: TestQueue,
  domain: string,
  count: number,
  name: string,
): Promise<(JsMsg & { readonly reply?: string })[]> {
  for (let i = 0; i < count; i++) {
    const envelope = newEnvelope({
      messageId: `${name}-${i}`,
      sender: 'a@example.org',
      destinationDomain: domain,
      recipients: [{ address: `b@${domain}` }],
    });
    await q.js.publish(outboundSubject(domain), encodeEnvelope(envelope));
  }
  await q.jsm.consumers.add(STREAM_OUTBOUND, {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    filter_subject: outboundSubject(domain),
  });
  const consumer = await q.js.consumers.get(STREAM_OUTBOUND, name);
  const batch = await consumer.fetch({ max_messages: count, expires: 2_000 });
  const out: JsMsg[] = [];
  for await (const m of batch) out.push(m);
  return out;
}
