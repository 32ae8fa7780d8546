import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { limitArg, timeArg } from './args.ts';
import {
  checkOperation,
  OPERATION_SUMMARY,
  type OperationOptions,
  QueueOperation,
  queueList,
  queueOperation,
  queueShow,
} from './commands/queue.ts';
import {
  type AddOptions,
  type ListOptions,
  suppressAdd,
  suppressList,
  suppressRemove,
} from './commands/suppress.ts';
import { type TraceOptions, trace } from './commands/trace.ts';
import { ExitCode } from './errors.ts';
import { type ApiOptions, type Io, runApiCommand } from './run.ts';

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
// Before the commands are added: they inherit both. Each command's options follow its own name
// (`petrel queue retry x --json` is retry's --json), and a bad command line exits 2, not 1.
program.enablePositionalOptions().exitOverride();

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
    // Loaded when used: the API commands start three times faster without it.
    const { runDev } = await import('./dev.ts');
    process.exitCode = await runDev(options);
  });

program
  .command('crds')
  .description('print the CustomResourceDefinitions of petrel.dev (for kubectl apply -f -)')
  .action(async () => {
    const { crdsYaml } = await import('@petrel/operator/crds');
    process.stdout.write(crdsYaml());
  });

program
  .command('operator')
  .description(
    'run the operator against a cluster (MailDomain, DeliveryPolicy → runtime config, keys, certificates)',
  )
  .option('--kubeconfig <path>', 'kubeconfig file (default: KUBECONFIG, else the pod service account)')
  .option(
    '--namespace <ns>',
    "the operator's namespace: its Lease and CA (default: POD_NAMESPACE or the kubeconfig's)",
  )
  .option(
    '--watch-namespaces <list>',
    'comma-separated namespaces it manages (PETREL_WATCH_NAMESPACES; default its own)',
  )
  .option('--nats-url <url>', 'NATS with JetStream, where the runtime config is published (PETREL_NATS_URL)')
  .option(
    '--config-key-file <path>',
    'the 32-byte key the runtime config is encrypted with (PETREL_CONFIG_KEY_FILE)',
  )
  .option(
    '--config-bucket <name>',
    'Object Store bucket of the runtime config (PETREL_RUNTIME_CONFIG_STORE)',
    'PETREL_CONFIG',
  )
  .option(
    '--database-url <url>',
    "the recorder's Postgres: deleted domains finish when their queue drained (PETREL_DATABASE_URL)",
  )
  .option('--dns-server <host:port>', 'check DNS records through this server (PETREL_DNS_SERVERS)', hostPort)
  .option('--dns-check-interval <duration>', 'how often DNS is checked for the records (default 5m)')
  .option(
    '--drain-grace <duration>',
    'wait after a deleted domain stops accepting, before asking the queue (default 2m)',
  )
  .option(
    '--cert-manager-issuer <kind/name>',
    'default cert-manager issuer: Issuer/<name> or ClusterIssuer/<name>',
  )
  .option('--identity <name>', 'this replica in leader election (default POD_NAME or the host name)')
  .option('--lease-duration <duration>', 'leader election lease (default 15s)')
  .option('--workers <n>', 'MailDomains reconciled at once', (v) => Number.parseInt(v, 10), 8)
  .action(async (options) => {
    const { runOperatorCommand } = await import('@petrel/operator/run');
    process.exitCode = await runOperatorCommand(options);
  });

const io: Io = {
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
  now: Date.now,
};

/** `petrel trace x | head`: the reader is gone; end quietly instead of with a stack trace. */
function quietOnClosedPipe(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? ExitCode.Ok);
  });
}

/** The options every API command takes: where the API is, the token, and --json. */
function apiCommand(parent: Command, name: string, description: string): Command {
  return parent
    .command(name)
    .description(description)
    .option('--api <url>', 'the trace API (default: $PETREL_API, else the petrel dev of --data-dir)')
    .option('--token <token>', "its bearer token (default: $PETREL_TOKEN, else petrel dev's)")
    .option('--data-dir <dir>', 'the data dir of a local petrel dev, to find its API and token', './.petrel')
    .option('--json', "print the API's JSON answer instead of a table");
}

// Not for `petrel dev`: it has children to stop whatever happens to its output.
program.hook('preAction', (_program, action) => {
  if (action.name() !== 'dev') quietOnClosedPipe();
});

const done = (code: ExitCode): void => {
  process.exitCode = code;
};

apiCommand(program, 'trace', 'where is my message: its recipients and every delivery attempt')
  .argument('<query>', 'a queue id, a Message-ID, or a sender or recipient address')
  .option('--since <time>', 'accepted at or after (RFC 3339, or a duration ago: 90m, 12h, 7d)', timeArg(-1))
  .option('--until <time>', 'accepted before (RFC 3339, or a duration ago)', timeArg(-1))
  .option('--limit <n>', 'at most this many matches, newest first (1-1000)', limitArg(1000), 50)
  .action(async (query: string, options: ApiOptions & TraceOptions) => {
    done(await runApiCommand(io, options, { run: (ctx) => trace(ctx, query, options) }));
  });

const queue = apiCommand(program, 'queue', 'the queue per destination, and what to do with it')
  .argument('[destination]', 'one destination domain: its details')
  .action(async (destination: string | undefined, options: ApiOptions) => {
    done(
      await runApiCommand(io, options, {
        run: (ctx) => (destination === undefined ? queueList(ctx) : queueShow(ctx, destination)),
      }),
    );
  });
for (const op of Object.values(QueueOperation)) {
  const command = apiCommand(queue, op, OPERATION_SUMMARY[op]).argument(
    '<destination>',
    'destination domain',
  );
  if (op === QueueOperation.Suspend)
    command.option('--until <time>', 'resume by itself then (RFC 3339, or a duration: 2h, 1d)', timeArg(1));
  if (op === QueueOperation.Bounce)
    command.option('--reason <text>', 'the diagnostic in the DSN (default: Returned by the relay operator)');
  if (op === QueueOperation.Bounce || op === QueueOperation.Purge)
    command.option('--yes', 'really do it (nothing happens without)');
  command.action(async (destination: string, options: ApiOptions & OperationOptions) => {
    done(
      await runApiCommand(io, options, {
        check: () => checkOperation(op, destination, options),
        run: (ctx) => queueOperation(ctx, op, destination, options),
      }),
    );
  });
}

const suppress = program
  .command('suppress')
  .description('the suppression list: addresses mail is not sent to');
apiCommand(suppress, 'list', 'the suppressions in force')
  .option('--address <text>', 'only addresses containing this (case-insensitive)')
  .option('--limit <n>', 'at most this many (1-10000)', limitArg(10_000), 100)
  .action(async (options: ApiOptions & ListOptions) => {
    done(await runApiCommand(io, options, { run: (ctx) => suppressList(ctx, options) }));
  });
apiCommand(suppress, 'add', 'suppress an address')
  .argument('<address>', 'the address (local@domain)')
  .option('--reason <text>', 'why (default: added by an operator)')
  .option(
    '--expires <time>',
    "until when (RFC 3339, or a duration from now: 12h, 30d; default: the API's, 30 days)",
    timeArg(1),
  )
  .action(async (address: string, options: ApiOptions & AddOptions) => {
    done(await runApiCommand(io, options, { run: (ctx) => suppressAdd(ctx, address, options) }));
  });
apiCommand(suppress, 'remove', 'send to an address again')
  .argument('<address>', 'the address')
  .action(async (address: string, options: ApiOptions) => {
    done(await runApiCommand(io, options, { run: (ctx) => suppressRemove(ctx, address) }));
  });

program.addHelpText(
  'after',
  `
The API commands (trace, queue, suppress) talk to the trace API: --api and --token, else
PETREL_API and PETREL_TOKEN, else the petrel dev running with --data-dir (default ./.petrel).
Exit codes: 0 done, 1 the API or the request failed (or nothing matched), 2 a bad command line.
See docs/cli.md.`,
);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Commander has printed its message (unknown option, missing argument, help).
  if (!(error instanceof CommanderError)) throw error;
  process.exitCode = error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
}
