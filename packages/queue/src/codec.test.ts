import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  create,
  type DeliveryEvent,
  DeliveryEventBatchSchema,
  type Envelope,
  EnvelopeSchema,
  type EventKind,
  fromBinary,
  TraceContextSchema,
  timestampFromDate,
  toBinary,
} from '@petrel/proto';
import { envelopes, random, TEXTS } from '../test/envelopes.ts';
import {
  decodeEnvelope,
  decodeEvents,
  deliveryEvent,
  encodeEventBatch,
  newEnvelope,
  newEvent,
} from './codec.ts';
import { decodeEnvelopeByHand, envelopeDecoder } from './envelope-decoder.ts';
import { ENCODED_EVENT_SCHEMA, encodeEventBatchByHand, eventBatchEncoder } from './event-encoder.ts';
import { ENVELOPE_SCHEMA, schemaFingerprint } from './fingerprint.ts';
import { EventSubject } from './subjects.ts';

/** protobuf-es's outcome: the message, or the error's message. */
function reference(data: Uint8Array): Envelope | string {
  try {
    return fromBinary(EnvelopeSchema, data);
  } catch (err) {
    return (err as Error).message;
  }
}

function ours(data: Uint8Array): Envelope | string {
  try {
    return decodeEnvelope(data);
  } catch (err) {
    return (err as Error).message;
  }
}

test('the hand-written codecs are in use: the schemas are the ones they were written for', () => {
  assert.equal(
    schemaFingerprint(EnvelopeSchema),
    ENVELOPE_SCHEMA,
    'envelope.proto changed: update envelope-decoder.ts, then ENVELOPE_SCHEMA',
  );
  assert.equal(envelopeDecoder, 'hand-written');
  assert.equal(
    schemaFingerprint(DeliveryEventBatchSchema),
    ENCODED_EVENT_SCHEMA,
    'delivery_event.proto changed: update event-encoder.ts, then ENCODED_EVENT_SCHEMA',
  );
  assert.equal(eventBatchEncoder, 'hand-written');
});

test('envelopes decode by hand to what protobuf-es decodes, the body a view into the entry', () => {
  for (const e of envelopes(3000, 7)) {
    const data = toBinary(EnvelopeSchema, e);
    const decoded = decodeEnvelopeByHand(data);
    const label = JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
    assert.notEqual(decoded, undefined, `gave up on ${label}`);
    assert.deepEqual(decoded, fromBinary(EnvelopeSchema, data), label);
    if (decoded?.content.case === 'raw') {
      // Not a copy: the body is most of an entry.
      assert.equal(decoded.content.value.buffer, data.buffer);
    }
  }
});

test('what the decoder does not take as protobuf-es does goes to protobuf-es', () => {
  const base = toBinary(EnvelopeSchema, newEnvelope({ messageId: 'm', receivedAt: { seconds: 5n } }));
  const cases: [string, Uint8Array][] = [
    // Field 99, varint 1: kept as an unknown field by protobuf-es.
    ['an unknown field', Buffer.concat([base, Buffer.from([0x98, 0x06, 0x01])])],
    // Field 2 (sender) as a varint.
    ['another wire type', Buffer.concat([base, Buffer.from([0x10, 0x01])])],
    // receivedAt twice: protobuf-es merges the two.
    ['a message field twice', Buffer.concat([base, Buffer.from([0x2a, 0x02, 0x10, 0x07])])],
    // messageId of one octet 0xff.
    ['invalid UTF-8', Buffer.from([0x0a, 0x01, 0xff])],
    // messageId longer than the entry.
    ['a truncated string', Buffer.from([0x0a, 0x05, 0x61])],
    ['a truncated varint', Buffer.from([0x40, 0x80])],
    // A Timestamp whose length goes past the envelope.
    ['a nested length beyond its parent', Buffer.from([0x2a, 0x09, 0x08, 0x01])],
  ];
  for (const [what, data] of cases) {
    assert.equal(decodeEnvelopeByHand(data), undefined, what);
    assert.deepEqual(ours(data), reference(data), what);
  }
  // The unknown field survives, as protobuf-es keeps it.
  const unknown = decodeEnvelope(cases[0]?.[1] as Uint8Array);
  assert.equal(unknown.$unknown?.length, 1);
  // Merged as protobuf-es merges: the second Timestamp's nanos on the first one's seconds.
  assert.deepEqual(
    { seconds: decodeEnvelope(cases[2]?.[1] as Uint8Array).receivedAt?.seconds },
    { seconds: 5n },
  );
  assert.throws(() => decodeEnvelope(cases[3]?.[1] as Uint8Array));
});

test('damaged entries decode, or fail, exactly as with protobuf-es', () => {
  const pick = random(11);
  const samples = envelopes(300, 3).map((e) => toBinary(EnvelopeSchema, e));
  let differed = 0;
  for (let i = 0; i < 20_000; i++) {
    const data = Buffer.from(samples[pick(samples.length)] as Uint8Array);
    if (data.length === 0) continue;
    const how = pick(3);
    let damaged: Uint8Array;
    if (how === 0) {
      data[pick(data.length)] = pick(256);
      damaged = data;
    } else if (how === 1) {
      damaged = data.subarray(0, pick(data.length));
    } else {
      const at = pick(data.length);
      damaged = Buffer.concat([data.subarray(0, at), Buffer.from([pick(256), pick(256)]), data.subarray(at)]);
    }
    const expected = reference(damaged);
    assert.deepEqual(ours(damaged), expected, Buffer.from(damaged).toString('hex'));
    if (typeof expected !== 'string') differed++;
  }
  // Both outcomes were exercised: some damaged entries still decode.
  assert.ok(differed > 1000, `${differed} damaged entries decoded`);
});

function events(count: number, seed: number): DeliveryEvent[] {
  const pick = random(seed);
  const text = () => TEXTS[pick(TEXTS.length)] as string;
  const out: DeliveryEvent[] = [newEvent({}), newEvent({ at: {}, reply: {}, trace: {} })];
  for (let i = 0; i < count; i++) {
    out.push(
      newEvent({
        eventId: text(),
        kind: [0, 2, 5, -1, 0x7fffffff][pick(5)] as EventKind,
        messageId: text(),
        destinationDomain: text(),
        recipients: Array.from({ length: pick(4) }, text),
        ...(pick(4) === 0 ? {} : { at: { seconds: [0n, 1_795_000_000n, -1n][pick(3)], nanos: pick(1e9) } }),
        attempt: [0, 1, 300, 2 ** 32 - 1][pick(4)],
        remoteHost: text(),
        remoteAddress: text(),
        tlsProtocol: text(),
        ...(pick(3) === 0
          ? {}
          : { reply: { code: [0, 250, 451, 554][pick(4)], enhanced: text(), text: text() } }),
        durationMs: [0n, 17n, 2n ** 40n, 2n ** 64n - 1n][pick(4)],
        ...(pick(3) === 0 ? {} : { trace: { traceparent: text(), tracestate: text() } }),
        error: text(),
        sender: text(),
        size: [0n, 4096n, 2n ** 64n - 1n][pick(3)],
        headerMessageId: text(),
        clientAddress: text(),
        dsnMessageId: text(),
      }),
    );
  }
  return out;
}

test('event batches encode by hand byte for byte as protobuf-es encodes them', () => {
  const all = events(3000, 5);
  // Batches of 0, 1 and many events; one large enough to grow the scratch buffer.
  const batches = [[], all.slice(0, 1), all.slice(0, 64), all];
  for (let i = 0; i < all.length; i += 7) batches.push(all.slice(i, i + 7));
  for (const batch of batches) {
    const mine = encodeEventBatchByHand(batch);
    assert.notEqual(mine, undefined);
    const theirs = toBinary(DeliveryEventBatchSchema, create(DeliveryEventBatchSchema, { events: batch }));
    assert.deepEqual(Buffer.from(mine as Uint8Array), Buffer.from(theirs));
    assert.deepEqual(decodeEvents(EventSubject.batch, mine as Uint8Array), batch);
  }
});

test('events the encoder does not take as protobuf-es does go to protobuf-es', () => {
  const unknown = newEvent({ eventId: 'e' });
  unknown.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
  // A number where protobuf-es takes a bigint for a uint64 and converts it.
  const numeric = { ...newEvent({ eventId: 'n' }), durationMs: 5 as unknown as bigint };
  for (const e of [unknown, numeric]) {
    assert.equal(encodeEventBatchByHand([newEvent({}), e]), undefined);
    assert.deepEqual(
      Buffer.from(encodeEventBatch([e])),
      Buffer.from(toBinary(DeliveryEventBatchSchema, create(DeliveryEventBatchSchema, { events: [e] }))),
    );
  }
  // Out of a uint32's range: protobuf-es refuses it, and so does encodeEventBatch.
  const wide = newEvent({ attempt: 2 ** 32 });
  assert.equal(encodeEventBatchByHand([wide]), undefined);
  assert.throws(() => encodeEventBatch([wide]));
});

test('deliveryEvent makes what newEvent makes of the same values, and the hand-written encoder takes it', () => {
  const atMs = 1_795_000_123_456;
  const base = {
    eventId: 'm.example.org.1.d',
    kind: 2 as EventKind,
    messageId: 'm',
    destinationDomain: 'example.org',
    recipients: ['a@example.org'],
    attempt: 1,
    remoteHost: 'mx.example.org',
    remoteAddress: '192.0.2.1',
    tlsProtocol: 'TLSv1.3',
    durationMs: 12n,
    error: '',
  };
  const variants = [
    { ...base },
    {
      ...base,
      reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
      trace: create(TraceContextSchema, { traceparent: 'tp', tracestate: 'ts' }),
    },
    {
      ...base,
      kind: 1 as EventKind,
      sender: 'a@example.com',
      size: 4096n,
      headerMessageId: 'x@example.com',
      clientAddress: '192.0.2.9',
      dsnMessageId: 'dsn',
    },
  ];
  // Fields left out are the zero values newEvent gives them.
  const sparse = deliveryEvent({ eventId: 'a', kind: 1 as EventKind, messageId: 'm', recipients: [], atMs });
  assert.deepEqual(
    sparse,
    newEvent({ eventId: 'a', kind: 1 as EventKind, messageId: 'm', at: timestampFromDate(new Date(atMs)) }),
  );
  for (const v of variants) {
    const event = deliveryEvent({ ...v, atMs });
    assert.deepEqual(
      event,
      newEvent({
        ...v,
        at: timestampFromDate(new Date(atMs)),
        ...('reply' in v ? { reply: v.reply } : {}),
        ...('trace' in v ? { trace: { traceparent: 'tp', tracestate: 'ts' } } : {}),
      }),
    );
    assert.notEqual(encodeEventBatchByHand([event]), undefined);
  }
});
