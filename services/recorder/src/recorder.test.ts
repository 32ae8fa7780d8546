import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { AckPublisher, EventSubject, ensureStreams, publishEventBatchWith } from '@petrel/queue';
import { migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { startNats, startPostgres, waitFor } from '@petrel/test-harness';
import pg from 'pg';
import { bounced, delivered } from '../test/stories.ts';
import { ensureRecorderConsumer, Recorder } from './recorder.ts';
import { EventWriter } from './writer.ts';

test('the recorder writes what the stream holds, skips what does not decode, and its lag returns to 0', async (t) => {
  const postgres = await startPostgres(t.after.bind(t));
  await migrate(postgres.databaseUrl);
  const nats = await startNats(t.after.bind(t));
  const nc = await connect({ servers: nats.url });
  const db = new pg.Pool({ connectionString: postgres.databaseUrl });
  db.on('error', () => undefined);
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  await ensureRecorderConsumer(jsm);
  const js = jetstream(nc);
  const publisher = new AckPublisher(nc);
  const recorder = new Recorder({
    js,
    jsm,
    writer: new EventWriter(db),
    log: createLogger('rec-test', { level: 'silent' }),
  });
  try {
    const stories = Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0 ? delivered(Date.now() - 60_000 + i) : bounced(Date.now() - 60_000 + i, `DSN${i}`),
    );
    const events = stories.flatMap((s) => s.events);
    // Before the recorder runs: it starts behind, with a lag.
    for (let i = 0; i < events.length; i += 7) {
      await publishEventBatchWith(publisher, events.slice(i, i + 7), { timeoutMs: 5_000 });
    }
    await js.publish(EventSubject.batch, new Uint8Array([0xff, 0xff, 0xff]));
    await js.publish(EventSubject.delivered, new TextEncoder().encode('not a protobuf'));
    // A value Postgres refuses (a reply code beyond its integer): that message alone is skipped.
    const refused = delivered(Date.now() - 1000);
    const refusedEvent = refused.events[1];
    if (refusedEvent?.reply) refusedEvent.reply.code = 4_000_000_000;
    await publishEventBatchWith(publisher, refused.events, { timeoutMs: 5_000 });
    // A redelivery of the first batch, as after a worker crash.
    await publishEventBatchWith(publisher, events.slice(0, 7), { timeoutMs: 5_000 });
    assert.ok((await recorder.refreshLag()).lagMessages > 0);

    recorder.start();
    await waitFor(
      () =>
        recorder.stats.written === events.length &&
        recorder.stats.undecodable === 2 &&
        recorder.stats.refused === 1,
      { timeoutMs: 30_000, message: 'every event written, the undecodable and the refused messages skipped' },
    );
    await waitFor(async () => (await recorder.refreshLag()).lagMessages === 0, {
      timeoutMs: 30_000,
      message: 'lag 0',
    });
    assert.equal(recorder.stats.duplicates, 7);
    assert.equal(recorder.stats.lagSeconds, 0);
    const { rows } = await db.query(
      'SELECT (SELECT count(*)::int FROM events) AS events, (SELECT count(*)::int FROM messages) AS messages',
    );
    assert.deepEqual(rows[0], { events: events.length, messages: 50 });
    assert.equal(recorder.stats.failing, false);
  } finally {
    await recorder.stop();
    publisher.close();
    await nc.close();
    await db.end();
  }
});
