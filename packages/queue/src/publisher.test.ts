import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckPolicy } from '@nats-io/jetstream';
import { EventKind } from '@petrel/proto';
import { startQueue } from '../test/queue.ts';
import { AckPublisher } from './ack-publisher.ts';
import { decodeEvent, encodeEnvelope, newEnvelope, newEvent } from './codec.ts';
import { QueueError } from './message.ts';
import { ackEntry, publishEventWith } from './publisher.ts';
import { STREAM_EVENTS, STREAM_OUTBOUND } from './streams.ts';
import { outboundSubject } from './subjects.ts';

test('publishEventWith stores an event once per event id, on its kind subject', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const event = newEvent({
    eventId: 'm1.example.net.1.delivered',
    messageId: 'm1',
    destinationDomain: 'example.net',
    kind: EventKind.DELIVERED,
    recipients: ['a@example.net'],
  });
  await publishEventWith(publisher, event, { timeoutMs: 2_000 });
  // The same event again (a redelivered entry settled twice): the server's dedupe keeps one.
  await publishEventWith(publisher, event, { timeoutMs: 2_000 });
  const info = await q.jsm.streams.info(STREAM_EVENTS);
  assert.equal(info.state.messages, 1);
  const stored = await q.jsm.streams.getMessage(STREAM_EVENTS, { seq: info.state.first_seq });
  assert.ok(stored);
  assert.equal(stored.subject, 'petrel.events.delivered');
  assert.equal(decodeEvent(stored.data).eventId, event.eventId);
});

test('publishEventWith refuses an event without a kind and reports a subject no stream takes', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  await assert.rejects(
    publishEventWith(publisher, newEvent({ eventId: 'x', kind: EventKind.UNSPECIFIED }), {
      timeoutMs: 1_000,
    }),
    TypeError,
  );
  await q.jsm.streams.delete(STREAM_EVENTS);
  await assert.rejects(
    publishEventWith(publisher, newEvent({ eventId: 'y', kind: EventKind.BOUNCED }), { timeoutMs: 1_000 }),
    (error: unknown) =>
      error instanceof Error && !(error instanceof QueueError) && /no stream/.test(error.message),
  );
});

test('ackEntry acks a consumed entry and resolves once the server confirmed it', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const envelope = newEnvelope({
    messageId: 'm2',
    sender: 'a@example.org',
    destinationDomain: 'example.net',
    recipients: [{ address: 'b@example.net' }],
  });
  await q.js.publish(outboundSubject('example.net'), encodeEnvelope(envelope));
  await q.jsm.consumers.add(STREAM_OUTBOUND, {
    durable_name: 'ack-test',
    ack_policy: AckPolicy.Explicit,
    filter_subject: outboundSubject('example.net'),
  });
  const consumer = await q.js.consumers.get(STREAM_OUTBOUND, 'ack-test');
  const m = await consumer.next({ expires: 2_000 });
  assert.ok(m);
  const reply = (m as typeof m & { readonly reply?: string }).reply;
  assert.ok(reply, 'the ack subject is reachable on the message');
  await ackEntry(publisher, reply, 2_000);
  // Work-queue stream: an acked entry is gone, and nothing is pending or waiting for an ack.
  const stream = await q.jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(stream.state.messages, 0);
  const info = await consumer.info();
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_pending, 0);
});
