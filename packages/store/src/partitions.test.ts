import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startPostgres } from '@petrel/test-harness';
import pg from 'pg';
import { migrate } from './migrate.ts';
import { dropExpiredPartitions, ensurePartitions, utcDay } from './partitions.ts';

const DAY = 86_400_000;
const TABLES = ['events', 'messages', 'recipients', 'webhook_deliveries'];

test('day partitions are made ahead of the rows; retention drops only the expired ones, whole', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  await migrate(server.databaseUrl);
  const client = new pg.Client({ connectionString: server.databaseUrl });
  await client.connect();
  try {
    await check(client);
  } finally {
    // Before the server stops (the harness's after hook).
    await client.end();
  }
});

async function check(client: pg.Client): Promise<void> {
  const now = Date.parse('2026-11-23T12:00:00Z');
  // 40 days back to 1 ahead, for each of the four partitioned tables; again: nothing more to make.
  assert.equal(await ensurePartitions(client, now - 40 * DAY, now + DAY), 42 * TABLES.length);
  assert.equal(await ensurePartitions(client, now - 40 * DAY, now + DAY), 0);

  // One event per day, at midday and at the last millisecond of the day.
  for (let d = -40; d <= 1; d++) {
    for (const at of [now + d * DAY, Date.parse(`${utcDay(now + d * DAY)}T23:59:59.999Z`)]) {
      await client.query(
        "INSERT INTO events (event_id, at, message_id, kind, attempt) VALUES ($1, $2, 'm', 'delivered', 1)",
        [`e${d}-${at}`, new Date(at)],
      );
    }
  }
  // The attempts view: a deferral without an attempt (a suspended destination) is not one.
  await client.query(
    "INSERT INTO events (event_id, at, message_id, kind, attempt, error) VALUES ('s', $1, 'm', 'deferred', 1, $2)",
    [new Date(now), 'not attempted: destination suspended'],
  );
  const counts = await client.query<{ events: string; attempts: string }>(
    'SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM attempts) AS attempts',
  );
  assert.deepEqual(counts.rows[0], { events: String(42 * 2 + 1), attempts: String(42 * 2) });
  await client.query("DELETE FROM events WHERE event_id = 's'");
  // A row outside every partition is refused, not silently kept somewhere.
  await assert.rejects(
    client.query("INSERT INTO events (event_id, at, message_id, kind) VALUES ('x', $1, 'm', 'delivered')", [
      new Date(now + 5 * DAY),
    ]),
    /no partition/,
  );

  const dropped = await dropExpiredPartitions(client, 30, now);
  // Kept: the day 30 days ago (it still holds moments within the retention) and every later one.
  const expiredDays = Array.from({ length: 10 }, (_, i) => utcDay(now - (40 - i) * DAY).replaceAll('-', ''));
  assert.deepEqual(dropped, TABLES.flatMap((table) => expiredDays.map((day) => `${table}_p${day}`)).sort());
  const { rows } = await client.query<{ oldest: Date; n: string }>(
    'SELECT min(at) AS oldest, count(*) AS n FROM events',
  );
  assert.equal(rows[0]?.n, String(32 * 2));
  assert.equal(rows[0]?.oldest.toISOString(), new Date(now - 30 * DAY).toISOString());
  // Nothing more to drop on the same day; bad retention is refused.
  assert.deepEqual(await dropExpiredPartitions(client, 30, now), []);
  await assert.rejects(dropExpiredPartitions(client, 0, now), RangeError);
}
