// Composition root of the SMTP ingress: settings, NATS, runtime config, policy, listener.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { liveDomains } from '@petrel/config';
import { ensureStreams } from '@petrel/queue';
import { createLogger } from '@petrel/telemetry';
import { Acceptor } from './acceptor.ts';
import { ingressConfigFromEnv } from './config.ts';
import { SmtpListener } from './listener.ts';
import { RelayPolicy } from './policy.ts';

const log = createLogger('ingress');

async function main(): Promise<void> {
  const config = ingressConfigFromEnv(process.env);
  const domains = await liveDomains(config.runtimeConfigPath, log);

  const nc = await connect({
    servers: config.natsUrl,
    name: `petrel-ingress-${process.pid}`,
    maxReconnectAttempts: -1,
  });
  await ensureStreams(await jetstreamManager(nc), { replicas: config.streamReplicas });
  const js = jetstream(nc);
  const policy = new RelayPolicy(() => domains.current());
  const acceptor = new Acceptor(js, log, { publishTimeoutMs: config.publishTimeoutMs });
  const listener = new SmtpListener(
    {
      rcptTo: (_session, _tx, recipient) => policy.checkRecipient(recipient),
      message: (session, tx, body) => acceptor.accept(session, tx, body),
    },
    log,
    {
      host: config.smtpHost,
      port: config.smtpPort,
      hostname: config.hostname,
      maxMessageSize: config.maxMessageSize,
    },
  );
  const port = await listener.listen();
  log.info({ port, domains: domains.current().config.domains.length }, 'ingress listening');
  process.send?.({ type: 'ready', component: 'ingress', port });

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, sessions: listener.activeSessions }, 'ingress stopping');
    process.send?.({ type: 'stopping', component: 'ingress' });
    await listener.close(config.shutdownGraceMs);
    domains.close();
    await nc.drain().catch(() => nc.close());
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
