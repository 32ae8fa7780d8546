// Composition root of the delivery worker: settings, NATS, runtime config, worker.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { runtimeConfigSource } from '@petrel/config';
import { DnsResolver, TlsaResolver } from '@petrel/dns';
import { AckPublisher, ensureDeliveryConsumers, ensureStreams, liveDomainsFromSource } from '@petrel/queue';
import { createLogger } from '@petrel/telemetry';
import { startTracing } from '@petrel/telemetry/sdk';
import { dsnSender } from './bounce.ts';
import { deliveryConfigFromEnv } from './config.ts';
import { LEASE_TTL_MS, LEASES_BUCKET } from './leases.ts';
import { DestinationLimiter } from './limiter.ts';
import { lookupVia, MtaSts, stsTxtVia } from './mta-sts.ts';
import {
  DestinationControls,
  openDestinationsKv,
  serveDestinationStatus,
  serveQueueOperations,
} from './operations.ts';
import { ClusterRate, RATES_BUCKET, RATES_TTL_MS } from './rates.ts';
import { DEFAULT_RETRY_POLICY } from './schedule.ts';
import { openSuppressionsKv, SuppressionList } from './suppressions.ts';
import { DeliveryWorker } from './worker.ts';

const log = createLogger('delivery');
// Before anything starts spans: trace context on every message, OTLP export when configured.
const tracing = startTracing('delivery');

async function main(): Promise<void> {
  const config = deliveryConfigFromEnv(process.env);

  const nc = await connect({
    servers: config.natsUrl,
    name: `petrel-delivery-${process.pid}`,
    maxReconnectAttempts: -1,
    // No stack-carrying Error per request (a CPU profile showed 10 % of the worker building them).
    noAsyncTraces: true,
  });
  // After NATS: in a cluster the runtime config comes from it.
  const domains = await liveDomainsFromSource(runtimeConfigSource(config), nc, log);
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { replicas: config.streamReplicas });
  await ensureDeliveryConsumers(jsm, { ackWaitMs: config.ackWaitMs });
  const js = jetstream(nc);
  const suppressions = new SuppressionList(await openSuppressionsKv(js, config.streamReplicas));
  await suppressions.start();
  const resolver = new DnsResolver({
    servers: config.dnsServers === '' ? undefined : config.dnsServers.split(','),
  });
  const controls = new DestinationControls(await openDestinationsKv(js, config.streamReplicas));
  await controls.start();
  const bounces = dsnSender({ js, nc, hostname: config.hostname, log, domains: () => domains.current() });
  const tlsCa = config.tlsCaFile === '' ? undefined : await readFile(config.tlsCaFile);
  const mtaSts = new MtaSts({
    txt: stsTxtVia(resolver),
    lookup: lookupVia((name) => resolver.a(name)),
    port: config.mtaStsPort,
    ca: tlsCa,
  });
  // Shard ownership and the cluster-wide token batches (docs/queue-model.md); entries expire
  // unless renewed, so a dead worker's shards come free by themselves.
  const leases = await new Kvm(js).create(LEASES_BUCKET, {
    storage: 'memory',
    replicas: config.streamReplicas,
    history: 1,
    ttl: LEASE_TTL_MS,
  });
  const rates = await new Kvm(js).create(RATES_BUCKET, {
    storage: 'memory',
    replicas: config.streamReplicas,
    history: 1,
    ttl: RATES_TTL_MS,
  });
  let worker: DeliveryWorker | undefined;
  const workers = () => worker?.workers ?? 1;
  const limiter = new DestinationLimiter({ cluster: new ClusterRate({ kv: rates, workers }), workers });
  const publisher = new AckPublisher(nc);
  worker = new DeliveryWorker({
    js,
    publisher,
    log,
    domains: () => domains.current(),
    config,
    resolver,
    retryPolicy: {
      ...DEFAULT_RETRY_POLICY,
      delaysMs: config.retryDelaysMs,
      lifetimeMs: config.queueLifetimeMs,
    },
    suppressions,
    controls,
    mtaSts,
    ...(tlsCa === undefined ? {} : { tlsCa }),
    bounces,
    leases,
    workerId: `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    limiter,
    ...(config.daneResolvers === ''
      ? {}
      : { dane: new TlsaResolver({ servers: config.daneResolvers.split(',') }) }),
    ...(config.smarthost !== undefined && config.smarthostUsername !== ''
      ? {
          smarthost: {
            ...config.smarthost,
            auth: { username: config.smarthostUsername, password: config.smarthostPassword },
          },
        }
      : {}),
  });
  const operations = serveQueueOperations({ nc, js, jsm, controls, log, bounces });
  const workerId = `${hostname()}-${process.pid}`;
  const status = serveDestinationStatus(nc, workerId, limiter);
  const running = worker.run();
  log.info({ smarthost: config.smarthost, concurrency: config.concurrency }, 'delivery worker consuming');
  process.send?.({ type: 'ready', component: 'delivery' });

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, inFlight: worker.inFlight }, 'delivery stopping');
    await worker.stop(30_000);
    await running.catch(() => undefined);
    publisher.close();
    domains.close();
    controls.stop();
    suppressions.stop();
    await mtaSts.close();
    await operations.drain().catch(() => undefined);
    await status.drain().catch(() => undefined);
    await nc.drain().catch(() => nc.close());
    await tracing.shutdown().catch(() => undefined);
    log.info('delivery stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('disconnect', () => void stop('disconnect'));
  running.catch((error: unknown) => {
    log.fatal({ err: error }, 'consumer failed');
    process.exit(1);
  });
}

main().catch((error: unknown) => {
  log.fatal({ err: error }, 'delivery failed to start');
  process.exit(1);
});
