import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventKind } from '@petrel/proto';
import { heldEntries, startQueue } from '../test/queue.ts';
import { AckPublisher } from './ack-publisher.ts';
import { decodeEvents, newEvent } from './codec.ts';
import { QueueError } from './message.ts';
import { ackEntry, publishEventBatchWith } from './publisher.ts';
import { STREAM_EVENTS, STREAM_OUTBOUND } from './streams.ts';
import { EventSubject } from './subjects.ts';

test('publishEventBatchWith stores several events as one message on the batch subject', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const events = ['delivered', 'bounced'].map((what, i) =>
    newEvent({
      eventId: `m1.example.net.1.${what}`,
      messageId: 'm1',
      destinationDomain: 'example.net',
      kind: i === 0 ? EventKind.DELIVERED : EventKind.BOUNCED,
      recipients: [`${what}@example.net`],
    }),
  );
  await publishEventBatchWith(publisher, events, { timeoutMs: 2_000 });
  const info = await q.jsm.streams.info(STREAM_EVENTS);
  assert.equal(info.state.messages, 1);
  const stored = await q.jsm.streams.getMessage(STREAM_EVENTS, { seq: info.state.first_seq });
  assert.ok(stored);
  assert.equal(stored.subject, EventSubject.batch);
  assert.deepEqual(
    decodeEvents(stored.subject, stored.data).map((e) => [e.eventId, e.kind]),
    events.map((e) => [e.eventId, e.kind]),
  );
});

test('publishEventBatchWith reports a subject no stream takes', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  await q.jsm.streams.delete(STREAM_EVENTS);
  await assert.rejects(
    publishEventBatchWith(publisher, [newEvent({ eventId: 'y', kind: EventKind.BOUNCED })], {
      timeoutMs: 1_000,
    }),
    (error: unknown) =>
      error instanceof Error && !(error instanceof QueueError) && /no stream/.test(error.message),
  );
});

test('ackEntry acks a consumed entry and resolves once the server confirmed it', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const [m] = await heldEntries(q, 'example.net', 1, 'ack-test');
  assert.ok(m);
  const reply = m.reply;
  assert.ok(reply, 'the ack subject is reachable on the message');
  await ackEntry(publisher, reply, 2_000);
  // Work-queue stream: an acked entry is gone, and nothing is pending or waiting for an ack.
  const stream = await q.jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(stream.state.messages, 0);
  const info = await q.jsm.consumers.info(STREAM_OUTBOUND, 'ack-test');
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_pending, 0);
});
