/**
 * Recorder throughput (issue 5: ≥ 10,000 events/s written on a 2-core machine, Postgres on the
 * same machine). A real nats-server (JetStream) and a real Postgres (durable: fsync on, as in
 * production) on this machine; N messages' events (ACCEPTED + DELIVERED, one recipient each,
 * as the ingress and the workers publish them: DeliveryEventBatch messages of `batch` events)
 * are published to PETREL_EVENTS first, then the recorder is started and timed until every event
 * is in Postgres and acked.
 *
 *   bash -c 'source scripts/node24.sh && node bench/recorder.bench.ts [messages=100000] [batch=100]'
 */
import { cpuUsage } from 'node:process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { findNatsServer, startNatsServer, startPostgres } from '@petrel/localenv';
import { EventKind } from '@petrel/proto';
import {
  AckPublisher,
  deliveryEvent,
  ensureStreams,
  newMessageId,
  publishEventBatchWith,
} from '@petrel/queue';
import { EventWriter, ensureRecorderConsumer, Recorder } from '@petrel/recorder';
import { ensureDatabase, migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { tempDir } from '@petrel/test-harness';
import pg from 'pg';

const messages = Number(process.argv[2] ?? 100_000);
const batch = Number(process.argv[3] ?? 100);
const log = createLogger('bench', { level: 'warn' });

const nats = await startNatsServer({
  binary: await findNatsServer({}),
  dir: await tempDir('bench-nats'),
  name: 'bench',
});
const postgres = await startPostgres({ dir: await tempDir('bench-pg') });
try {
  await ensureDatabase(postgres.url, 'petrel');
  const url = postgres.urlFor('petrel');
  await migrate(url);
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: 1 });
  await ensureRecorderConsumer(jsm);
  const js = jetstream(nc);
  const publisher = new AckPublisher(nc);

  const now = Date.now();
  let events = [];
  let published = 0;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < messages; i++) {
    const at = now - (messages - i);
    const id = newMessageId(at);
    const common = {
      messageId: id,
      destinationDomain: `d${i % 500}.example`,
      recipients: [`user${i}@d${i % 500}.example`],
      tlsProtocol: 'TLSv1.3',
      sender: `sender${i % 100}@example.com`,
    };
    events.push(
      deliveryEvent({
        ...common,
        eventId: `${id}.accepted`,
        kind: EventKind.ACCEPTED,
        atMs: at,
        remoteHost: 'client',
        size: 4096n,
        headerMessageId: `${id}@example.com`,
        clientAddress: '192.0.2.1',
      }),
      deliveryEvent({
        ...common,
        eventId: `${id}.d.1.d`,
        kind: EventKind.DELIVERED,
        atMs: at + 50,
        attempt: 1,
        remoteHost: 'mx.example',
        reply: { code: 250, enhanced: '2.0.0', text: 'OK' },
      }),
    );
    if (events.length >= batch) {
      pending.push(publishEventBatchWith(publisher, events, { timeoutMs: 30_000 }));
      published += events.length;
      events = [];
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
  }
  if (events.length > 0) {
    pending.push(publishEventBatchWith(publisher, events, { timeoutMs: 30_000 }));
    published += events.length;
  }
  await Promise.all(pending);

  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const recorder = new Recorder({ js, jsm, writer: new EventWriter(pool), log });
  const cpu0 = cpuUsage();
  const t0 = performance.now();
  recorder.start();
  while (recorder.stats.written + recorder.stats.duplicates < published)
    await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuUsage(cpu0);
  await recorder.stop();
  const rows = await pool.query(
    'SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM recipients) AS recipients',
  );
  await pool.end();
  publisher.close();
  await nc.close();
  console.log(
    JSON.stringify({
      messages,
      events: published,
      batch,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: Math.round(published / seconds),
      recorderCpuUsPerEvent: Number(((cpu.user + cpu.system) / published).toFixed(1)),
      rows: rows.rows[0],
    }),
  );
} finally {
  await nats.stop();
  await postgres.stop();
}
