import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckPolicy } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { waitFor } from '@petrel/test-harness';
import { startQueue, type TestQueue } from '../test/queue.ts';
import { decodeEnvelope, encodeEnvelope, newEnvelope } from './codec.ts';
import {
  DeferHeader,
  deferEntry,
  deferredEntries,
  deferredSubject,
  destinationKey,
  purgeDeferred,
  retryDeferredNow,
} from './deferred.ts';
import { newMessageId } from './message-id.ts';
import { STREAM_OUTBOUND } from './streams.ts';
import { outboundSubject, QueueHeader } from './subjects.ts';

function entry(domain: string) {
  const messageId = newMessageId();
  const envelope = newEnvelope({
    messageId,
    sender: 'a@example.org',
    destinationDomain: domain,
    recipients: [{ address: `b@${domain}` }],
  });
  return { messageId, payload: encodeEnvelope(envelope) };
}

/** A consumer of one ready shard subject, as a worker would have. */
async function readyConsumer(q: TestQueue, domain: string, name: string) {
  await q.jsm.consumers.add(STREAM_OUTBOUND, {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    filter_subject: outboundSubject(domain),
  });
  return await q.js.consumers.get(STREAM_OUTBOUND, name);
}

test('a deferred entry waits on disk as a schedule and arrives on its ready subject at its time', async (t) => {
  const q = await startQueue(t);
  const consumer = await readyConsumer(q, 'later.example', 'ready');
  const { messageId, payload } = entry('later.example');
  const h = headers();
  h.set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  h.set('Nats-Msg-Id', 'must-not-be-copied');
  // Far enough ahead that the checks of the waiting state below finish first on a loaded machine.
  const at = new Date(Date.now() + 5_000);
  await deferEntry(q.js, {
    messageId,
    destinationDomain: 'later.example',
    payload,
    headers: h,
    attempt: 3,
    at,
    timeoutMs: 5_000,
  });

  // Waiting: a stored message on the deferred subject, nothing ready, nothing pending in the consumer.
  const info = await q.jsm.streams.info(STREAM_OUTBOUND, { subjects_filter: '>' });
  assert.deepEqual(Object.keys(info.state.subjects ?? {}), [deferredSubject(messageId, 'later.example')]);
  assert.equal((await consumer.info()).num_pending, 0);
  assert.equal((await consumer.info()).num_ack_pending, 0);

  const m = await consumer.next({ expires: 15_000 });
  assert.ok(m, 'the entry arrived');
  // Not before its time (the server's schedule has second precision).
  assert.ok(Date.now() >= at.getTime() - 1_000, 'not early');
  assert.equal(m.subject, outboundSubject('later.example'));
  assert.equal(decodeEnvelope(m.data).messageId, messageId);
  assert.equal(m.headers?.get(DeferHeader.attempt), '3');
  assert.equal(m.headers?.get(QueueHeader.messageId), messageId);
  assert.equal(m.headers?.get('traceparent'), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  m.ack();
  // Fired schedules are removed: the stream holds nothing once the entry is acked.
  await waitFor(async () => (await q.jsm.streams.info(STREAM_OUTBOUND)).state.messages === 0, {
    timeoutMs: 5_000,
    intervalMs: 5,
    message: 'the stream to be empty',
  });
});

test('deferring the same entry again replaces its schedule; each attempt is its own publish', async (t) => {
  const q = await startQueue(t);
  const { messageId, payload } = entry('twice.example');
  const far = new Date(Date.now() + 3_600_000);
  const input = { messageId, destinationDomain: 'twice.example', payload, timeoutMs: 5_000 };
  const first = await deferEntry(q.js, { ...input, attempt: 1, at: far });
  const again = await deferEntry(q.js, { ...input, attempt: 1, at: far });
  assert.equal(again.duplicate, true, 'a retried publish of one deferral is a duplicate');
  const second = await deferEntry(q.js, { ...input, attempt: 2, at: far });
  assert.notEqual(second.seq, first.seq);
  const { state } = await q.jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(state.messages, 1, 'one schedule per entry');
  const listed = [];
  for await (const e of deferredEntries(q.jsm, 'twice.example')) listed.push(e);
  assert.equal(listed.length, 1);
  assert.equal(listed[0]?.attempt, 2);
  assert.equal(listed[0]?.messageId, messageId);
});

test('retry now reschedules every deferred entry of one domain and no other', async (t) => {
  const q = await startQueue(t);
  const consumer = await readyConsumer(q, 'slow.example', 'ready-slow');
  const far = new Date(Date.now() + 3_600_000);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { messageId, payload } = entry('slow.example');
    ids.push(messageId);
    await deferEntry(q.js, {
      messageId,
      destinationDomain: 'slow.example',
      payload,
      attempt: 2,
      at: far,
      timeoutMs: 5_000,
    });
  }
  const other = entry('other.example');
  await deferEntry(q.js, {
    ...other,
    destinationDomain: 'other.example',
    attempt: 1,
    at: far,
    timeoutMs: 5_000,
  });
  assert.notEqual(destinationKey('slow.example'), destinationKey('other.example'));

  assert.equal(await retryDeferredNow(q.js, q.jsm, 'slow.example', { timeoutMs: 5_000 }), 5);
  const got: string[] = [];
  while (got.length < 5) {
    const m = await consumer.next({ expires: 10_000 });
    assert.ok(m, `entry ${got.length + 1} of 5 arrived`);
    got.push(decodeEnvelope(m.data).messageId);
    m.ack();
  }
  assert.deepEqual(got.sort(), ids.sort());
  const left = [];
  for await (const e of deferredEntries(q.jsm, 'other.example')) left.push(e.messageId);
  assert.deepEqual(left, [other.messageId]);
});

test('purge removes one domain’s deferred entries only', async (t) => {
  const q = await startQueue(t);
  const far = new Date(Date.now() + 3_600_000);
  for (const domain of ['gone.example', 'gone.example', 'kept.example']) {
    const e = entry(domain);
    await deferEntry(q.js, { ...e, destinationDomain: domain, attempt: 1, at: far, timeoutMs: 5_000 });
  }
  assert.equal(await purgeDeferred(q.jsm, 'gone.example'), 2);
  assert.equal(await purgeDeferred(q.jsm, 'gone.example'), 0);
  const { state } = await q.jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(state.messages, 1);
  const listed = [];
  for await (const e of deferredEntries(q.jsm, 'gone.example')) listed.push(e);
  assert.equal(listed.length, 0);
});
