import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { DeliveryEventBatchSchema } from '@petrel/proto';
import { deliveryEvent } from './codec.ts';
import { EVENT_BATCH_BYTES, eventBatches, eventSizeBound } from './event-batcher.ts';

function event(i: number, recipients: number, messageIdLength: number) {
  return deliveryEvent({
    eventId: `id-${i}.accepted`,
    kind: 1,
    messageId: `id-${i}`,
    recipients: Array.from({ length: recipients }, (_, k) => `rcpt-${k}-ünïcode@example.org`),
    atMs: 1_795_000_000_000,
    remoteHost: 'client.example',
    tlsProtocol: 'TLSv1.3',
    sender: 'alice@example.com',
    headerMessageId: 'm'.repeat(messageIdLength),
    size: 4096n,
  });
}

test('the size bound is never below the encoded size', () => {
  for (const [recipients, idLength] of [
    [0, 0],
    [1, 10],
    [100, 998],
    [1000, 0],
  ] as const) {
    const e = event(1, recipients, idLength);
    const encoded = toBinary(
      DeliveryEventBatchSchema,
      create(DeliveryEventBatchSchema, { events: [e] }),
    ).length;
    assert.ok(eventSizeBound(e) >= encoded, `${eventSizeBound(e)} < ${encoded}`);
  }
});

test('batches close by count and by size: many recipients or long Message-IDs never pass the budget', () => {
  // Regression: 500 events of 50 recipients each made one 1.2 MiB message, over max_payload.
  const wide = Array.from({ length: 500 }, (_, i) => event(i, 50, 40));
  const batches = eventBatches(wide, 500);
  assert.ok(batches.length > 1);
  assert.equal(batches.flat().length, 500);
  for (const b of batches) {
    const bytes = toBinary(DeliveryEventBatchSchema, create(DeliveryEventBatchSchema, { events: b })).length;
    assert.ok(bytes <= EVENT_BATCH_BYTES, `${bytes} bytes`);
  }
  // Small events: by count.
  assert.deepEqual(
    eventBatches(
      Array.from({ length: 1200 }, (_, i) => event(i, 1, 20)),
      500,
    ).map((b) => b.length),
    [500, 500, 200],
  );
  // One event larger than the budget still goes, alone.
  assert.deepEqual(
    eventBatches([event(1, 1, 10), event(2, 20_000, 0), event(3, 1, 10)], 500).map((b) => b.length),
    [1, 1, 1],
  );
});
