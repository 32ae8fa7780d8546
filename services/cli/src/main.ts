import { Command, InvalidArgumentError } from 'commander';
import { runDev } from './dev.ts';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

function hostPort(value: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(value))
    throw new InvalidArgumentError('must be HOST:PORT');
  return value;
}

const program = new Command('petrel').description('Petrel, a cluster-scale SMTP relay for Kubernetes');

program
  .command('dev')
  .description('run a complete relay on this machine (NATS JetStream, Postgres, ingress, delivery)')
  .option('--config-dir <dir>', 'MailDomain / Secret manifests, watched for changes', './examples/local')
  .option('--data-dir <dir>', 'queue and database files; a restart with the same dir resumes', './.petrel')
  .option('--smtp-port <n>', 'MX listener, port-25 semantics', port, 2525)
  .option('--submission-port <n>', 'submission listener, port-587 semantics (STARTTLS + AUTH)', port, 2587)
  .option('--smtps-port <n>', 'implicit-TLS listener, port-465 semantics (AUTH)', port, 2465)
  .option('--http-port <n>', 'health endpoints', port, 8025)
  .option('--api-port <n>', 'trace API (petrel trace, queue, suppress)', port, 8026)
  .option('--smarthost <host:port>', 'deliver every message there instead of routing', hostPort)
  .option('--dns-server <host:port>', "resolve through this DNS server instead of the system's", hostPort)
  .option('--mx-port <n>', 'connect to MX hosts on this port instead of 25 (tests, benchmarks)', port)
  .option('--nats-url <url>', 'use this NATS server (JetStream enabled) instead of starting one')
  .option('--database-url <url>', 'use this Postgres instead of starting one')
  .action(async (options) => {
    process.exitCode = await runDev(options);
  });

await program.parseAsync(process.argv);
