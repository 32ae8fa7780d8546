// Composition root of the SMTP ingress: settings, NATS, runtime config, certificates, policy,
// limits, inbound checks, the three listeners and the health endpoint.
import { createServer as createHttpServer } from 'node:http';
import { BlockList } from 'node:net';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { runtimeConfigSource } from '@petrel/config';
import { DnsResolver } from '@petrel/dns';
import {
  AckPublisher,
  EventBatcher,
  ensureStreams,
  liveDomainsFromSource,
  publishMessage,
} from '@petrel/queue';
import { ListenerMode } from '@petrel/smtp';
import { createLogger } from '@petrel/telemetry';
import { startTracing } from '@petrel/telemetry/sdk';
import { Acceptor } from './acceptor.ts';
import { CertificateStore, configCertificates } from './certificates.ts';
import { ingressConfigFromEnv } from './config.ts';
import { etrnQueueRun } from './etrn.ts';
import { Greylist } from './greylist.ts';
import { InboundChecks } from './inbound/index.ts';
import { AuthThrottle, ConnectionLimiter } from './limits.ts';
import { SmtpListener } from './listener.ts';
import { RelayPolicy } from './policy.ts';
import { ingressHandler } from './sessions.ts';
import { TurnBatch } from './turn-batch.ts';

const log = createLogger('ingress');
// Before anything starts spans: trace context on every message, OTLP export when configured.
const tracing = startTracing('ingress');

function blockList(cidrs: readonly string[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefix = ''] = cidr.split('/');
    list.addSubnet(address, Number(prefix), address.includes(':') ? 'ipv6' : 'ipv4');
  }
  return list;
}

async function main(): Promise<void> {
  const config = ingressConfigFromEnv(process.env);
  // NATS first: in a cluster the runtime config comes from it.
  const nc = await connect({
    servers: config.natsUrl,
    name: `petrel-ingress-${process.pid}`,
    maxReconnectAttempts: -1,
  });
  // Alive (not ready) while it waits for the operator's first runtime config, so that a
  // liveness probe does not restart a pod that is merely early.
  let ready = false;
  let stopping = false;
  const health = createHttpServer((req, res) => {
    const ok = req.url === '/healthz' ? true : req.url === '/readyz' ? ready && !nc.isClosed() : undefined;
    if (ok === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
  });
  if (config.healthPort !== 'off') {
    await new Promise<void>((resolve, reject) => {
      health.once('error', reject);
      health.listen({ host: config.healthHost, port: config.healthPort }, () => resolve());
    });
  }
  const domains = await liveDomainsFromSource(runtimeConfigSource(config), nc, log);
  const certificates = await CertificateStore.open({
    dir: config.tlsDir,
    hostname: config.hostname,
    selfSigned: config.tlsSelfSigned,
    names: domains.current().config.domains.map((d) => d.domain),
    configCertificates: configCertificates(domains.current().config),
    log,
    watch: true,
  });
  // The domains' own certificates follow the runtime config.
  domains.onReload((index) => certificates.setConfigCertificates(configCertificates(index.config)));
  await ensureStreams(await jetstreamManager(nc), { replicas: config.streamReplicas });
  const js = jetstream(nc);
  const greylistKv = await new Kvm(nc).create('petrel_greylist', {
    replicas: config.streamReplicas,
    ttl: 7 * 24 * 3600 * 1000,
  });
  const resolver = new DnsResolver({
    servers: config.dnsServers === '' ? undefined : config.dnsServers.split(','),
  });
  const publisher = new AckPublisher(nc);
  // The publishes of one event-loop turn go to NATS in one write (turn-batch.ts).
  const publishes = new TurnBatch();
  // ACCEPTED events for the recorder (docs/state.md): published after the message, not waited for.
  const events = new EventBatcher({
    publisher,
    timeoutMs: config.publishTimeoutMs,
    log,
  });
  const acceptor = new Acceptor(
    {
      write: (messageId, envelopes, body) =>
        publishes.run(() =>
          publishMessage(js, nc, {
            publisher,
            messageId,
            envelopes,
            body,
            timeoutMs: config.publishTimeoutMs,
          }),
        ),
    },
    log,
    events,
  );
  const handler = ingressHandler({
    hostname: config.hostname,
    domains: () => domains.current(),
    policy: new RelayPolicy(() => domains.current(), blockList(config.relayNetworks)),
    connections: new ConnectionLimiter({
      maxTotal: config.maxConnections,
      maxPerAddress: config.maxConnectionsPerAddress,
    }),
    authThrottle: new AuthThrottle({}),
    acceptor,
    inbound: new InboundChecks({ resolver, hostname: config.hostname }),
    greylist: new Greylist(greylistKv, { log }),
    etrnNetworks: blockList(config.etrnNetworks),
    queueRun: etrnQueueRun(nc),
    receivedAuthIdentity: config.receivedAuthIdentity,
    log,
  });
  const common = {
    host: config.smtpHost,
    hostname: config.hostname,
    maxMessageSize: config.maxMessageSize,
    maxRecipients: config.maxRecipients,
    maxErrors: config.maxErrors,
    maxCommands: config.maxCommands,
    idleTimeoutMs: config.idleTimeoutMs,
    dataTimeoutMs: config.dataTimeoutMs,
    minDataRate: config.minDataRate,
    bareLineEndings: config.bareLineEndings,
    ...(config.postmaster === undefined ? {} : { postmaster: config.postmaster }),
    tls: () => certificates.tlsOptions(),
  };
  const listeners: { mode: ListenerMode; listener: SmtpListener; port: number }[] = [];
  for (const [mode, port, proxy] of [
    [ListenerMode.Mx, config.smtpPort, config.smtpProxyNetworks],
    [ListenerMode.Submission, config.submissionPort, config.submissionProxyNetworks],
    [ListenerMode.Smtps, config.smtpsPort, config.smtpsProxyNetworks],
  ] as const) {
    if (port === 'off') continue;
    const listener = new SmtpListener(handler, log, {
      ...common,
      mode,
      port,
      proxyNetworks: blockList(proxy),
    });
    listeners.push({ mode, listener, port: await listener.listen() });
  }

  ready = true;

  const ports = Object.fromEntries(listeners.map((l) => [l.mode, l.port]));
  log.info({ ports, domains: domains.current().config.domains.length }, 'ingress listening');
  process.send?.({ type: 'ready', component: 'ingress', ports });

  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    // Readiness first, so that the load balancer stops sending; then the listeners.
    ready = false;
    log.info(
      { signal, sessions: listeners.reduce((n, l) => n + l.listener.activeSessions, 0) },
      'ingress stopping',
    );
    process.send?.({ type: 'stopping', component: 'ingress' });
    await Promise.all(listeners.map((l) => l.listener.close(config.shutdownGraceMs)));
    await events.drain();
    publisher.close();
    certificates.close();
    domains.close();
    health.close();
    await nc.drain().catch(() => nc.close());
    await tracing.shutdown().catch(() => undefined);
    log.info('ingress stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // The supervisor went away (petrel dev killed): stop too.
  process.on('disconnect', () => void stop('disconnect'));
}

main().catch((error: unknown) => {
  log.fatal({ err: error }, 'ingress failed to start');
  process.exit(1);
});
