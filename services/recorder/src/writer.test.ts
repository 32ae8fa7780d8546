import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeliveryEvent } from '@petrel/proto';
import { newMessageId } from '@petrel/queue';
import { ensureDatabase, migrate } from '@petrel/store';
import { startPostgres, waitFor } from '@petrel/test-harness';
import pg from 'pg';
import { bounced, deferredThenDelivered, delivered, expired, purged } from '../test/stories.ts';
import { timeline } from './api/queries.ts';
import { EventWriter } from './writer.ts';

const NOW = Date.now();

/** Every row of the state tables, in a stable order: what "identical tables" compares. */
async function snapshot(db: pg.Pool): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [table, order] of [
    ['messages', 'message_id'],
    ['recipients', 'message_id, address'],
    ['events', 'event_id'],
  ] as const) {
    out[table] = (await db.query(`SELECT * FROM ${table} ORDER BY ${order}`)).rows;
  }
  return out;
}

function stories() {
  const dsn1 = newMessageId(NOW);
  const dsn2 = newMessageId(NOW);
  return {
    delivered: delivered(NOW - 3_600_000),
    deferredThenDelivered: deferredThenDelivered(NOW - 3_000_000),
    bounced: bounced(NOW - 2_000_000, dsn1),
    expired: expired(NOW - 1_000_000, dsn2),
    purged: purged(NOW - 500_000),
    dsn1,
    dsn2,
  };
}

test('the recorder turns event stories into messages, recipients and timelines; replays change nothing', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  await ensureDatabase(server.url, 'replay');
  await migrate(server.urlFor('replay'));
  const db = new pg.Pool({ connectionString: server.databaseUrl });
  db.on('error', () => undefined); // connections of a server being stopped
  const replayDb = new pg.Pool({ connectionString: server.urlFor('replay') });
  replayDb.on('error', () => undefined); // connections of a server being stopped
  try {
    const s = stories();
    const all: DeliveryEvent[] = [
      ...s.delivered.events,
      ...s.deferredThenDelivered.events,
      ...s.bounced.events,
      ...s.expired.events,
      ...s.purged.events,
    ];
    const writer = new EventWriter(db);
    // In stream-sized pieces, as the consumer writes them.
    for (let i = 0; i < all.length; i += 3) await writer.write(all.slice(i, i + 3));

    const recipients = async (queueId: string) =>
      (
        await db.query(
          'SELECT address, status, attempts, last_reply, dsn_message_id, destination_domain FROM recipients WHERE message_id = $1 ORDER BY address',
          [queueId],
        )
      ).rows;
    assert.deepEqual(await recipients(s.delivered.queueId), [
      {
        address: 'bob@example.org',
        status: 'delivered',
        attempts: 1,
        last_reply: '250 2.0.0 OK queued',
        dsn_message_id: '',
        destination_domain: 'example.org',
      },
    ]);
    // Two attempts: the suspended period's "not attempted" deferral is not one.
    assert.deepEqual(await recipients(s.deferredThenDelivered.queueId), [
      {
        address: 'carol@example.org',
        status: 'delivered',
        attempts: 2,
        last_reply: '250 2.0.0 OK',
        dsn_message_id: '',
        destination_domain: 'example.org',
      },
    ]);
    assert.deepEqual(await recipients(s.bounced.queueId), [
      {
        address: 'dave@example.org',
        status: 'delivered',
        attempts: 1,
        last_reply: '250 2.0.0 OK',
        dsn_message_id: '',
        destination_domain: 'example.org',
      },
      {
        address: 'nobody@example.org',
        status: 'bounced',
        attempts: 1,
        last_reply: '550 5.1.1 no such user',
        dsn_message_id: s.dsn1,
        destination_domain: 'example.org',
      },
    ]);
    assert.deepEqual(await recipients(s.expired.queueId), [
      {
        address: 'erin@example.org',
        status: 'expired',
        attempts: 2,
        last_reply: '554 4.4.7 Delivery time expired',
        dsn_message_id: s.dsn2,
        destination_domain: 'example.org',
      },
    ]);
    assert.deepEqual(await recipients(s.purged.queueId), [
      {
        address: 'frank@example.org',
        status: 'purged',
        attempts: 1,
        last_reply: 'purged by operator',
        dsn_message_id: '',
        destination_domain: 'example.org',
      },
    ]);
    const message = (await db.query('SELECT * FROM messages WHERE message_id = $1', [s.bounced.queueId]))
      .rows[0];
    assert.equal(message.sender, 'alice@example.com');
    assert.equal(message.sender_domain, 'example.com');
    assert.equal(message.header_message_id, `b-${s.bounced.queueId}@example.com`);
    assert.equal(Number(message.size_bytes), 2048);
    assert.equal(message.client_address, '192.0.2.10');
    assert.equal(message.accepted_at.getTime(), NOW - 2_000_000);

    // Timelines: oldest first, each attempt with its reply, the outcome and the DSN.
    const steps = (await timeline(db, s.deferredThenDelivered.queueId)).map((e) => [
      e.event,
      e.attempt,
      e.reply?.code ?? null,
      e.error,
    ]);
    assert.deepEqual(steps, [
      ['accepted', 0, null, ''],
      ['deferred', 1, 451, ''],
      ['deferred', 1, null, 'not attempted: destination suspended'],
      ['delivered', 2, 250, ''],
    ]);
    const bouncedTimeline = await timeline(db, s.bounced.queueId);
    assert.deepEqual(
      bouncedTimeline.map((e) => e.event),
      ['accepted', 'delivered', 'bounced', 'suppressed'],
    );
    assert.equal(bouncedTimeline.find((e) => e.event === 'bounced')?.dsnQueueId, s.dsn1);
    assert.deepEqual(
      (await timeline(db, s.expired.queueId)).map((e) => [e.event, e.dsnQueueId]),
      [
        ['accepted', null],
        ['deferred', null],
        ['expired', s.dsn2],
      ],
    );

    const attemptRows = await db.query('SELECT message_id, count(*)::int AS n FROM attempts GROUP BY 1');
    assert.equal(
      attemptRows.rows.reduce((n, r) => n + r.n, 0),
      1 + 2 + 2 + 2 + 1,
    );

    // Redelivered: the whole stream again, in other pieces and reversed. Nothing changes.
    const before = await snapshot(db);
    const again = await writer.write([...all].reverse());
    assert.deepEqual(again, { written: 0, duplicates: all.length, expired: 0, ignored: 0 });
    await writer.write(all);
    assert.deepEqual(await snapshot(db), before);

    // Replayed twice into an empty database: the same tables as the first.
    const replay = new EventWriter(replayDb);
    await replay.write(all);
    await replay.write(all);
    assert.deepEqual(await snapshot(replayDb), before);
  } finally {
    await db.end();
    await replayDb.end();
  }
});

test('events out of order (delivered before accepted, deferral after delivery) end in the same state', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  const db = new pg.Pool({ connectionString: server.databaseUrl });
  db.on('error', () => undefined); // connections of a server being stopped
  try {
    const writer = new EventWriter(db);
    const story = deferredThenDelivered(NOW - 60_000);
    const [acceptedEvent, deferred, notAttempted, deliveredEvent] = story.events as [
      DeliveryEvent,
      DeliveryEvent,
      DeliveryEvent,
      DeliveryEvent,
    ];
    // The ingress's clock a few ms ahead of the worker's: ACCEPTED looks newer than DELIVERED.
    acceptedEvent.at = {
      ...(acceptedEvent.at as NonNullable<DeliveryEvent['at']>),
      seconds: (acceptedEvent.at?.seconds ?? 0n) + 100n,
    };
    await writer.write([deliveredEvent]);
    // Known by its queue id before its ACCEPTED event arrives.
    assert.equal(
      (await db.query('SELECT count(*)::int AS n FROM messages WHERE message_id = $1', [story.queueId]))
        .rows[0].n,
      1,
    );
    await writer.write([deferred, notAttempted]);
    await writer.write([acceptedEvent]);
    const row = (
      await db.query('SELECT status, attempts, last_reply FROM recipients WHERE message_id = $1', [
        story.queueId,
      ])
    ).rows[0];
    assert.deepEqual(row, { status: 'delivered', attempts: 2, last_reply: '250 2.0.0 OK' });
    const message = (
      await db.query('SELECT sender, size_bytes FROM messages WHERE message_id = $1', [story.queueId])
    ).rows[0];
    assert.deepEqual(message, { sender: 'alice@example.com', size_bytes: '2048' });
  } finally {
    await db.end();
  }
});

test('events older than the retention are not kept; their partitions are not made again', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  const db = new pg.Pool({ connectionString: server.databaseUrl });
  db.on('error', () => undefined); // connections of a server being stopped
  try {
    const writer = new EventWriter(db, { retentionDays: 3 });
    const old = delivered(NOW - 5 * 86_400_000);
    const recent = delivered(NOW - 60_000);
    const result = await writer.write([...old.events, ...recent.events]);
    assert.deepEqual(result, { written: 2, duplicates: 0, expired: 2, ignored: 0 });
    const ids = (await db.query('SELECT DISTINCT message_id FROM events')).rows.map((r) => r.message_id);
    assert.deepEqual(ids, [recent.queueId]);
  } finally {
    await db.end();
  }
});

test('text Postgres cannot store (U+0000 from a Message-ID or a remote reply) is stored replaced, not refused', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  const db = new pg.Pool({ connectionString: server.databaseUrl });
  db.on('error', () => undefined);
  try {
    const story = bounced(NOW - 60_000, 'DSN');
    const [accepted, bounce] = story.events as [DeliveryEvent, DeliveryEvent];
    accepted.headerMessageId = 'a\u0000b@example.com';
    if (bounce.reply) bounce.reply.text = 'no such\u0000user';
    const result = await new EventWriter(db).write(story.events);
    assert.equal(result.written, story.events.length);
    const m = (
      await db.query('SELECT header_message_id FROM messages WHERE message_id = $1', [story.queueId])
    ).rows[0];
    assert.equal(m.header_message_id, 'a\uFFFDb@example.com');
    const r = (
      await db.query(
        "SELECT last_reply FROM recipients WHERE message_id = $1 AND address = 'nobody@example.org'",
        [story.queueId],
      )
    ).rows[0];
    assert.equal(r.last_reply, '550 5.1.1 no such\uFFFDuser');
    // An event with no queue id (a manual suppression's) is ignored, not a duplicate.
    const ignored = await new EventWriter(db).write([{ ...bounce, messageId: '', eventId: 'suppressed.x' }]);
    assert.deepEqual(ignored, { written: 0, duplicates: 0, expired: 0, ignored: 1 });
  } finally {
    await db.end();
  }
});

test('Postgres going away in the middle of writes fails them; it does not end the process', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  const db = new pg.Pool({ connectionString: server.databaseUrl, max: 8 });
  db.on('error', () => undefined);
  const writer = new EventWriter(db);
  // Regression: a checked-out client's 'error' between two statements had no listener.
  const writes: Promise<unknown>[] = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const story = deferredThenDelivered(NOW - 60_000);
      writes.push(writer.write(story.events).catch((error: unknown) => error));
      await writes.at(-1);
    }
  };
  const loops = Array.from({ length: 8 }, loop);
  await waitFor(async () => (await db.query('SELECT count(*)::int AS n FROM events')).rows[0].n >= 200, {
    timeoutMs: 30_000,
    message: 'writes under way',
  });
  await server.stop();
  stopped = true;
  await Promise.all(loops);
  const failures = (await Promise.all(writes)).filter((r) => r instanceof Error);
  assert.ok(failures.length >= 1, 'some writes failed when the server went away');
  await db.end();
});
