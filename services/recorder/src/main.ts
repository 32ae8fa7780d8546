// Composition root of the recorder: settings, Postgres (migrated), NATS, the event consumer, the
// suppression mirror, retention, webhooks, and the HTTP port (trace API, health, metrics).
import { createServer } from 'node:http';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { runtimeConfigSource } from '@petrel/config';
import { ensureStreams, liveDomainsFromSource } from '@petrel/queue';
import { migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { startTracing } from '@petrel/telemetry/sdk';
import { ensureWebhookStream, startWebhooks } from '@petrel/webhooks';
import pg from 'pg';
import { createApi } from './api/server.ts';
import { openApiStores } from './api/stores.ts';
import { TokenSource } from './api/tokens.ts';
import { recorderConfigFromEnv } from './config.ts';
import { ensureRecorderConsumer, Recorder } from './recorder.ts';
import { scheduleRetention } from './retention.ts';
import { SuppressionsMirror } from './suppressions-mirror.ts';
import { EventWriter } from './writer.ts';

const log = createLogger('recorder');
const tracing = startTracing('recorder');

async function main(): Promise<void> {
  const config = recorderConfigFromEnv(process.env);
  // Under an advisory lock: several recorders may start together; an older one refuses a newer schema.
  await migrate(config.databaseUrl);
  const db = new pg.Pool({ connectionString: config.databaseUrl, max: 8, connectionTimeoutMillis: 5_000 });
  // An idle connection dropped by a Postgres restart must not take the process down.
  db.on('error', (error) => log.warn({ err: error }, 'idle Postgres connection failed'));

  const nc = await connect({
    servers: config.natsUrl,
    name: `petrel-recorder-${process.pid}`,
    maxReconnectAttempts: -1,
  });
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: config.streamReplicas });
  await ensureRecorderConsumer(jsm);
  const js = jetstream(nc);

  const writer = new EventWriter(db, { retentionDays: config.retentionDays });
  const recorder = new Recorder({ js, jsm, writer, log, options: { maxEvents: config.batchEvents } });
  // Per-MailDomain subscriptions from the runtime config (docs/webhooks.md).
  const domains = config.webhooks
    ? await liveDomainsFromSource(runtimeConfigSource(config), nc, log)
    : undefined;
  if (domains !== undefined) await ensureWebhookStream(jsm, { replicas: config.streamReplicas });
  const webhooks =
    domains === undefined
      ? undefined
      : await startWebhooks({ js, jsm, pool: db, domains: () => domains.current(), log });
  const retention = scheduleRetention({
    pool: db,
    retentionDays: config.retentionDays,
    log,
    onDropped: () => {
      writer.forgetPartitions();
      webhooks?.forgetPartitions();
    },
  });
  const stores = await openApiStores(js, config.streamReplicas);
  const mirror = new SuppressionsMirror(stores.suppressionsKv, db, log);
  await mirror.start();

  let stopping = false;
  const api = createApi({
    db,
    nc,
    js,
    suppressions: stores.suppressions,
    controls: stores.controls,
    tokens: new TokenSource({
      file: config.apiTokenFile === '' ? undefined : config.apiTokenFile,
      token: config.apiToken === '' ? undefined : config.apiToken,
    }),
    log,
    retentionDays: config.retentionDays,
    suppressionMs: config.suppressionMs,
    stats: () => recorder.refreshLag().catch(() => recorder.stats),
    ready: () => !stopping && !nc.isClosed(),
  });
  const http = createServer(api);
  const port = await new Promise<number>((resolve, reject) => {
    http.once('error', reject);
    http.listen({ host: config.httpHost, port: config.httpPort }, () => {
      const address = http.address();
      resolve(typeof address === 'object' && address !== null ? address.port : config.httpPort);
    });
  });
  recorder.start();
  log.info({ port, retentionDays: config.retentionDays }, 'recorder consuming events; API listening');
  process.send?.({ type: 'ready', component: 'recorder', ports: { http: port } });

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'recorder stopping');
    http.close();
    await recorder.stop();
    await webhooks?.stop().catch(() => undefined);
    domains?.close();
    retention.stop();
    stores.stop();
    await mirror.stop().catch(() => undefined);
    await nc.drain().catch(() => nc.close());
    await db.end().catch(() => undefined);
    await tracing.shutdown().catch(() => undefined);
    log.info('recorder stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('disconnect', () => void stop('disconnect'));
}

main().catch((error: unknown) => {
  log.fatal({ err: error }, 'recorder failed to start');
  process.exit(1);
});
