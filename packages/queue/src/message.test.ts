import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { headers } from '@nats-io/transport-node';
import { type Envelope, EnvelopeSchema } from '@petrel/proto';
import { envelopes as generated } from '../test/envelopes.ts';
import { startQueue } from '../test/queue.ts';
import { decodeEnvelope, encodeEnvelope, newEnvelope } from './codec.ts';
import { ENVELOPE_SCHEMA, schemaFingerprint } from './fingerprint.ts';
import {
  encodeEnvelopeHead,
  envelopeHeadEncoder,
  loadBody,
  publishMessage,
  QueueError,
  QueueErrorCode,
} from './message.ts';
import { newMessageId } from './message-id.ts';
import { BUCKET_BODIES, outboundStreamConfig, STREAM_OUTBOUND } from './streams.ts';

function envelopes(messageId: string, domains: string[]): Envelope[] {
  return domains.map((d) =>
    newEnvelope({
      messageId,
      sender: 'a@example.org',
      destinationDomain: d,
      recipients: [{ address: `b@${d}` }],
    }),
  );
}

/** Every entry in the outbound stream, read by sequence (a work-queue stream allows no second consumer). */
async function entries(jsm: JetStreamManager): Promise<Envelope[]> {
  const { state } = await jsm.streams.info(STREAM_OUTBOUND);
  const out: Envelope[] = [];
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(STREAM_OUTBOUND, { seq }).catch(() => null);
    if (m) out.push(decodeEnvelope(m.data));
  }
  return out;
}

test('a small message travels inline in its entry', async (t) => {
  const { nc, js, jsm } = await startQueue(t);
  const messageId = newMessageId();
  const body = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
  await publishMessage(js, nc, {
    messageId,
    envelopes: envelopes(messageId, ['example.net']),
    body,
    timeoutMs: 5000,
  });
  const [entry, ...rest] = await entries(jsm);
  assert.equal(rest.length, 0);
  assert.ok(entry);
  assert.equal(entry.content.case, 'raw');
  assert.equal(entry.destinationDomain, 'example.net');
  assert.deepEqual(await loadBody(js, entry), body);
});

test('a 3 MiB message goes once to the object store and every entry refers to it', async (t) => {
  const { nc, js, jsm } = await startQueue(t);
  const messageId = newMessageId();
  const body = randomBytes(3 * 1024 * 1024);
  const domains = ['example.net', 'example.com'];
  await publishMessage(js, nc, {
    messageId,
    envelopes: envelopes(messageId, domains),
    body,
    timeoutMs: 10_000,
  });
  const stored = await entries(jsm);
  assert.deepEqual(stored.map((e) => e.destinationDomain).sort(), [...domains].sort());
  const store = await new Objm(js).open(BUCKET_BODIES);
  const info = await store.info(messageId);
  assert.equal(info?.size, body.length);
  for (const entry of stored) {
    assert.equal(entry.content.case, 'object');
    assert.deepEqual(
      { ...entry.content.value, $typeName: undefined },
      { $typeName: undefined, bucket: BUCKET_BODIES, name: messageId, digest: info?.digest },
    );
    assert.ok(body.equals(await loadBody(js, entry)));
  }

  // Other bytes under the same name, then no object at all: both refused with the body code.
  const entry = stored[0] as Envelope;
  await store.putBlob({ name: messageId }, Buffer.from('something else'));
  await assert.rejects(loadBody(js, entry), (e) => e instanceof QueueError && e.code === QueueErrorCode.Body);
  await store.delete(messageId);
  await assert.rejects(loadBody(js, entry), (e) => e instanceof QueueError && e.code === QueueErrorCode.Body);
});

test('the entries of one message are stored all or none', async (t) => {
  const { nc, js, jsm } = await startQueue(t);
  const first = newMessageId();
  await publishMessage(js, nc, {
    messageId: first,
    envelopes: envelopes(first, ['one.example']),
    body: Buffer.from('x'),
    timeoutMs: 5000,
  });
  // The server refuses one entry of the next message (too large for the stream's limit): the
  // whole batch must be refused, the other two entries included.
  await jsm.streams.update(STREAM_OUTBOUND, { ...outboundStreamConfig({ replicas: 1 }), max_msg_size: 1024 });
  const messageId = newMessageId();
  const [a, b, c] = envelopes(messageId, ['a.example', 'b.example', 'c.example']) as [
    Envelope,
    Envelope,
    Envelope,
  ];
  c.recipients = Array.from({ length: 60 }, (_, i) => ({
    ...(c.recipients[0] as Envelope['recipients'][0]),
    address: `rcpt-${i}@c.example`,
  }));
  const input = {
    messageId,
    envelopes: [a, b, c],
    body: Buffer.from('Subject: three\r\n\r\n'),
    timeoutMs: 5000,
  };
  await assert.rejects(
    publishMessage(js, nc, input),
    (e) => e instanceof QueueError && e.code === QueueErrorCode.Publish,
  );
  assert.deepEqual(
    (await entries(jsm)).map((e) => e.messageId),
    [first],
  );

  // The refused batch left no dedupe ids behind: once there is room, the same publish succeeds.
  await jsm.streams.update(STREAM_OUTBOUND, { ...outboundStreamConfig({ replicas: 1 }), max_msg_size: -1 });
  await publishMessage(js, nc, input);
  const after = await entries(jsm);
  assert.deepEqual(
    after.filter((e) => e.messageId === messageId).map((e) => e.destinationDomain),
    ['a.example', 'b.example', 'c.example'],
  );
});

test('publishing the same message again stores nothing twice', async (t) => {
  const { nc, js, jsm } = await startQueue(t);
  const multi = newMessageId();
  const single = newMessageId();
  const multiInput = {
    messageId: multi,
    envelopes: envelopes(multi, ['a.example', 'b.example']),
    body: Buffer.from('m'),
    timeoutMs: 5000,
  };
  const singleInput = {
    messageId: single,
    envelopes: envelopes(single, ['a.example']),
    body: Buffer.from('s'),
    timeoutMs: 5000,
  };
  for (let i = 0; i < 2; i++) {
    await publishMessage(js, nc, multiInput);
    await publishMessage(js, nc, singleInput);
  }
  const stored = await entries(jsm);
  assert.equal(stored.filter((e) => e.messageId === multi).length, 2);
  assert.equal(stored.filter((e) => e.messageId === single).length, 1);
});

test('a batch refused while the stream has its maximum of batches in flight is tried again', async (t) => {
  const { nc, js, jsm } = await startQueue(t);
  // nats-server 2.12 keeps at most 50 batches in flight per stream: fill every slot with batches
  // that are started and never committed (the server would drop them only after 10 s).
  const dangling: string[] = [];
  for (let i = 0; i < 50; i++) {
    const h = headers();
    h.set('Nats-Batch-Id', `dangling-${i}`);
    h.set('Nats-Batch-Sequence', '1');
    const r = await nc.request('petrel.outbound.0', new Uint8Array(), { headers: h, timeout: 5000 });
    assert.equal(r.data.length, 0, `batch ${i} started`);
    dangling.push(`dangling-${i}`);
  }

  // Core subscribers see every published message: count the attempts of the message under test.
  const messageId = newMessageId();
  const attempts = new Set<string>();
  let secondAttempt: () => void = () => {};
  const retried = new Promise<void>((resolve) => {
    secondAttempt = resolve;
  });
  const spy = nc.subscribe('petrel.outbound.>', {
    callback: (_err, m) => {
      if (m.headers?.get('Petrel-Message-Id') !== messageId) return;
      attempts.add(m.headers.get('Nats-Batch-Id'));
      if (attempts.size >= 2) secondAttempt();
    },
  });
  t.after(() => spy.unsubscribe());

  const publishing = publishMessage(js, nc, {
    messageId,
    envelopes: envelopes(messageId, ['a.example', 'b.example', 'c.example']),
    body: Buffer.from('Subject: burst\r\n\r\n'),
    timeoutMs: 10_000,
  });
  await Promise.race([
    retried,
    publishing.then(() => assert.fail('published while every batch slot was taken')),
  ]);
  // Free one slot by committing a dangling batch: the next attempt gets it.
  const commit = headers();
  commit.set('Nats-Batch-Id', dangling[0] as string);
  commit.set('Nats-Batch-Sequence', '2');
  commit.set('Nats-Batch-Commit', '1');
  await nc.request('petrel.outbound.0', new Uint8Array(), { headers: commit, timeout: 5000 });
  await publishing;

  const stored = (await entries(jsm)).filter((e) => e.messageId === messageId);
  assert.deepEqual(stored.map((e) => e.destinationDomain).sort(), ['a.example', 'b.example', 'c.example']);
});

test('the hand-written envelope encoder is in use: the schema is the one it was written for', () => {
  assert.equal(
    schemaFingerprint(EnvelopeSchema),
    ENVELOPE_SCHEMA,
    'envelope.proto changed: update encodeEnvelopeHead in message.ts, then ENVELOPE_SCHEMA',
  );
  assert.equal(envelopeHeadEncoder, 'hand-written');
});

test('envelopes encode byte for byte as protobuf-es encodes them', () => {
  // Content is not the head's: entries carry none before publishing.
  const checked = generated(2000, 42).map((e) => ({ ...e, content: { case: undefined } }) as Envelope);
  for (const e of checked) {
    assert.deepEqual(
      Buffer.from(encodeEnvelopeHead(e)),
      Buffer.from(encodeEnvelope(e)),
      JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
    );
  }
  // What it does not handle itself goes to protobuf-es: unknown fields, content.
  const unknown = newEnvelope({ messageId: 'm' });
  unknown.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
  assert.deepEqual(Buffer.from(encodeEnvelopeHead(unknown)), Buffer.from(encodeEnvelope(unknown)));
  const raw = newEnvelope({ messageId: 'm', content: { case: 'raw', value: new Uint8Array([1, 2]) } });
  assert.deepEqual(
    Buffer.from(encodeEnvelopeHead(raw)),
    Buffer.from(encodeEnvelope({ ...raw, content: { case: undefined } })),
  );
});
