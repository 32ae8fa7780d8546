import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventKind } from '@petrel/proto';
import {
  AckPublisher,
  decodeEvents,
  EventSubject,
  newEvent,
  STREAM_EVENTS,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import { heldEntries, startQueue } from '@petrel/queue/testing';
import { createLogger } from '@petrel/telemetry';
import { waitFor } from '@petrel/test-harness';
import { SettleBatch } from './settle-batch.ts';

const event = (id: string, kind: EventKind = EventKind.DELIVERED) =>
  newEvent({
    eventId: id,
    messageId: id,
    destinationDomain: 'example.net',
    kind,
    recipients: ['a@example.net'],
  });

test('entries settled in one turn: their events in one batch message, every entry acked', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const entries = await heldEntries(q, 'example.net', 5, 'settle-test');
  assert.equal(entries.length, 5);

  const settle = new SettleBatch({
    publisher,
    log: createLogger('settle-test', { level: 'silent' }),
    timeoutMs: 2_000,
    maxEvents: 4,
  });
  // Two events for the first entry (delivered and bounced recipients), one for each other.
  await Promise.all(
    entries.map((m, i) =>
      settle.settle(m, i === 0 ? [event('e0a'), event('e0b', EventKind.BOUNCED)] : [event(`e${i}`)]),
    ),
  );
  const stream = await q.jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(stream.state.messages, 0, 'every entry acked (work queue: gone)');

  // Six events at most four per message: two batch messages, in order, nothing else.
  // The settle does not wait for the events' publish to be confirmed: wait for them to be stored.
  const events = await waitFor(
    async () => {
      const info = await q.jsm.streams.info(STREAM_EVENTS);
      return info.state.messages >= 2 ? info : undefined;
    },
    { timeoutMs: 10_000 },
  );
  assert.equal(events.state.messages, 2);
  const ids: string[] = [];
  for (let seq = events.state.first_seq; seq <= events.state.last_seq; seq++) {
    const m = await q.jsm.streams.getMessage(STREAM_EVENTS, { seq });
    assert.ok(m);
    assert.equal(m.subject, EventSubject.batch);
    ids.push(...decodeEvents(m.subject, m.data).map((e) => e.eventId));
  }
  assert.deepEqual(ids, ['e0a', 'e0b', 'e1', 'e2', 'e3', 'e4']);
});

test('an ack the server does not confirm rejects; a failed event publish does not hold the ack', async (t) => {
  const q = await startQueue(t);
  const publisher = new AckPublisher(q.nc);
  t.after(() => publisher.close());
  const warnings: unknown[] = [];
  const log = createLogger('settle-test', { level: 'silent' });
  log.warn = ((obj: unknown) => {
    warnings.push(obj);
  }) as typeof log.warn;
  // No events stream: the event batch has no responder; the ack below goes to a subject nobody
  // answers, as when the consumer is gone.
  await q.jsm.streams.delete(STREAM_EVENTS);
  const settle = new SettleBatch({ publisher, log, timeoutMs: 300 });
  const fake = { reply: 'petrel.test.nobody', ackAck: () => Promise.resolve(true) };
  await assert.rejects(
    settle.settle(fake as never, [event('x')]),
    (error: unknown) => error instanceof Error && /no stream|timeout/.test(error.message),
  );
  assert.equal(warnings.length, 1, 'the failed event publish is logged');
});
