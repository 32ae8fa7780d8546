/**
 * Trace API latency (issue 5: p99 ≤ 50 ms for a message lookup with 10 million recipient rows).
 * A real Postgres (durable) on this machine is filled by SQL (generate_series) with M messages of
 * two recipients each over D days, ACCEPTED and DELIVERED events for each: 2M recipients rows,
 * 2M events. Then the real trace API (createApi, as the recorder serves it) answers lookups over
 * HTTP on loopback, one at a time, for random messages: by queue id (message, recipients and
 * timeline), by recipient address and by Message-ID. Prints p50/p90/p99/max per kind.
 *
 *   bash -c 'source scripts/node24.sh && node bench/trace-api.bench.ts [messages=5000000] [lookups=2000]'
 *
 * BENCH_PG_DIR=<dir> keeps the database there and reuses it when it already holds the data.
 */
import { createServer } from 'node:http';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { findNatsServer, startNatsServer, startPostgres } from '@petrel/localenv';
import { createApi, openApiStores, TokenSource } from '@petrel/recorder';
import { ensureDatabase, ensurePartitions, migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { tempDir } from '@petrel/test-harness';
import pg from 'pg';

const messages = Number(process.argv[2] ?? 5_000_000);
const lookups = Number(process.argv[3] ?? 2000);
const DAYS = 10;
const DAY_MS = 86_400_000;
// biome-ignore lint/suspicious/noUndeclaredEnvVars: a benchmark option, not an input of a turbo task
const dir = process.env['BENCH_PG_DIR'] ?? (await tempDir('bench-trace'));

const postgres = await startPostgres({ dir });
const nats = await startNatsServer({
  binary: await findNatsServer({}),
  dir: await tempDir('bench-nats'),
  name: 'bench',
});
try {
  await ensureDatabase(postgres.url, 'petrel');
  const url = postgres.urlFor('petrel');
  await migrate(url);
  const db = new pg.Pool({ connectionString: url, max: 8 });
  // The newest message is an hour old, the oldest DAYS days old: all within the retention.
  const base = Date.now() - DAYS * DAY_MS;
  const step = Math.floor((DAYS * DAY_MS - 3_600_000) / messages);
  const have = Number((await db.query('SELECT count(*) AS n FROM recipients')).rows[0].n);
  if (have < 2 * messages) {
    const t0 = performance.now();
    await db.query('TRUNCATE messages, recipients, events');
    await ensurePartitions(db, base - DAY_MS, Date.now() + DAY_MS);
    // Crockford base32 of the time (the first 10 characters of a queue id); the rest is hex of n
    // (hex digits are Crockford digits), so every id is a valid queue id of its own time.
    await db.query(`CREATE OR REPLACE FUNCTION bench_qid(ms bigint, n bigint) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE out text := ''; t bigint := ms; BEGIN
        FOR i IN 1..10 LOOP out := substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', (t % 32)::int + 1, 1) || out; t := t / 32; END LOOP;
        RETURN out || lpad(upper(to_hex(n)), 16, '0'); END $$`);
    // A day at a time, so each statement stays in one partition.
    const perDay = Math.ceil(messages / DAYS);
    for (let d = 0; d < DAYS; d++) {
      const from = d * perDay;
      const to = Math.min(messages, from + perDay) - 1;
      const src = `SELECT n, bench_qid(${base} + n * ${step}, n) AS id, to_timestamp((${base} + n * ${step}) / 1000.0) AS at
                     FROM generate_series(${from}, ${to}) AS n`;
      await db.query(`INSERT INTO messages (message_id, accepted_at, header_message_id, sender, sender_domain, size_bytes, client_address)
                      SELECT id, at, 'mid-' || n || '@example.com', 'sender' || (n % 1000) || '@example.com', 'example.com', 4096, '192.0.2.1' FROM (${src}) s`);
      await db.query(`INSERT INTO recipients (message_id, accepted_at, address, destination_domain, status, attempts, updated_at, last_reply)
                      SELECT id, at, 'user' || n || '-' || k || '@d' || (n % 1000) || '.example', 'd' || (n % 1000) || '.example',
                             'delivered', 1, at + interval '1 second', '250 2.0.0 OK'
                        FROM (${src}) s, generate_series(1, 2) AS k`);
      await db.query(`INSERT INTO events (event_id, at, message_id, kind, destination_domain, recipients, attempt, reply_code, reply_enhanced, reply_text)
                      SELECT id || '.' || e.kind, at + (e.k || ' second')::interval, id, e.kind, 'd' || (n % 1000) || '.example',
                             ARRAY['user' || n || '-1@d' || (n % 1000) || '.example', 'user' || n || '-2@d' || (n % 1000) || '.example'],
                             e.k, CASE WHEN e.k = 1 THEN 250 END, CASE WHEN e.k = 1 THEN '2.0.0' ELSE '' END, ''
                        FROM (${src}) s, (VALUES ('accepted', 0), ('delivered', 1)) AS e(kind, k)`);
      console.error(`loaded day ${d + 1}/${DAYS} (${Math.round((performance.now() - t0) / 1000)} s)`);
    }
    await db.query('VACUUM ANALYZE messages, recipients, events');
    console.error(`loaded ${2 * messages} recipients in ${Math.round((performance.now() - t0) / 1000)} s`);
  }
  const counts = (
    await db.query(
      'SELECT (SELECT count(*) FROM recipients) AS recipients, (SELECT count(*) FROM events) AS events',
    )
  ).rows[0];

  const nc = await connect({ servers: nats.url });
  const js = jetstream(nc);
  const stores = await openApiStores(js, 1);
  const token = 'bench-token';
  const api = createApi({
    db,
    nc,
    js,
    suppressions: stores.suppressions,
    controls: stores.controls,
    tokens: new TokenSource({ token }),
    log: createLogger('bench', { level: 'warn' }),
    retentionDays: 30,
  });
  const http = createServer(api);
  await new Promise<void>((r) => http.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const address = http.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  /** What the lookups answer (the fields checked). */
  interface Answer {
    message: { recipients: unknown[] };
    timeline: unknown[];
    messages: unknown[];
  }
  const sample = async (n: number) => {
    const ids: { id: string; n: number }[] = [];
    for (let i = 0; i < n; i++) {
      const k = Math.floor(Math.random() * messages);
      const { rows } = await db.query('SELECT bench_qid($1::bigint, $2::bigint) AS id', [base + k * step, k]);
      ids.push({ id: rows[0].id, n: k });
    }
    return ids;
  };
  const targets = await sample(lookups);
  const measure = async (
    name: string,
    path: (t: { id: string; n: number }) => string,
    check: (body: Answer) => boolean,
  ) => {
    const times: number[] = [];
    for (const t of targets) {
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}${path(t)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = (await res.json()) as Answer;
      times.push(performance.now() - t0);
      if (res.status !== 200 || !check(body))
        throw new Error(
          `${name}: unexpected answer for ${t.id}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`,
        );
    }
    times.sort((a, b) => a - b);
    const q = (p: number) =>
      Number((times[Math.min(times.length - 1, Math.floor(p * times.length))] as number).toFixed(2));
    return { lookup: name, count: times.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) };
  };
  // Warm-up: the first requests pay for connections and plans, not for the table size.
  for (const t of targets.slice(0, 50))
    await fetch(`http://127.0.0.1:${port}/v1/messages/${t.id}`, {
      headers: { authorization: `Bearer ${token}` },
    });
  const results = [
    await measure(
      'queue id (message, recipients, timeline)',
      (t) => `/v1/messages/${t.id}`,
      (b) => b.message.recipients.length === 2 && b.timeline.length === 2,
    ),
    await measure(
      'recipient address',
      (t) => `/v1/messages?recipient=user${t.n}-2@d${t.n % 1000}.example`,
      (b) => b.messages.length === 1,
    ),
    await measure(
      'Message-ID',
      (t) => `/v1/messages?message_id=mid-${t.n}@example.com`,
      (b) => b.messages.length === 1,
    ),
  ];
  console.log(
    JSON.stringify(
      { recipients: Number(counts.recipients), events: Number(counts.events), results },
      null,
      1,
    ),
  );
  http.close();
  stores.stop();
  await nc.close();
  await db.end();
} finally {
  await nats.stop();
  await postgres.stop();
}
