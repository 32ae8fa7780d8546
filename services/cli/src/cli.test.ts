/**
 * The API commands end to end: the `petrel` binary as a child process against the real trace API
 * (createApi from the recorder) on real Postgres and NATS, with state written by the recorder's
 * own EventWriter. Asserts stdout, stderr and the exit code of each command, as tables and as
 * --json, and the failures: wrong token, API down, Postgres down, no workers, discovery.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { QUEUE_OPERATIONS_SUBJECT } from '@petrel/delivery';
import { type DeliveryEvent, EventKind } from '@petrel/proto';
import { deliveryEvent, ensureStreams, newMessageId } from '@petrel/queue';
import { createApi, EventWriter, openApiStores, TokenSource } from '@petrel/recorder';
import { migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { startNats, startPostgres, tempDir, waitFor } from '@petrel/test-harness';
import pg from 'pg';

const BIN = resolve(fileURLToPath(import.meta.url), '../../bin/petrel.js');
const HOUR = 3_600_000;
const ESC = '\u001b';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `petrel <args>` with a clean environment (no PETREL_* of the machine) in `cwd`. */
function petrel(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd,
      env: { PATH: process.env['PATH'] ?? '', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Cleanups run in reverse at the end of the test body, before the harness stops the servers. */
type Defer = (fn: () => Promise<unknown> | unknown) => void;

async function listen(defer: Defer, handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  defer(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  assert.ok(child.pid);
  return child.pid;
}

const mx = { remoteHost: 'mx.example.org', remoteAddress: '192.0.2.25', tlsProtocol: 'TLSv1.3' };

function accepted(id: string, at: number, sender: string, recipients: string[], header: string) {
  return deliveryEvent({
    eventId: `${id}.accepted`,
    kind: EventKind.ACCEPTED,
    messageId: id,
    recipients,
    atMs: at,
    remoteHost: 'client.example',
    tlsProtocol: 'TLSv1.3',
    sender,
    size: 2048n,
    headerMessageId: header,
    clientAddress: '192.0.2.10',
  });
}

function outcome(
  id: string,
  kind: EventKind,
  at: number,
  recipients: string[],
  reply: { code: number; enhanced: string; text: string },
  extra: { dsnMessageId?: string; attempt?: number } = {},
): DeliveryEvent {
  const domain = recipients[0]?.split('@')[1] ?? '';
  return deliveryEvent({
    eventId: `${id}.${domain}.${recipients.join(',')}.${EventKind[kind]}`,
    kind,
    messageId: id,
    destinationDomain: domain,
    recipients,
    atMs: at,
    attempt: extra.attempt ?? 1,
    ...mx,
    reply,
    durationMs: 40n,
    sender: 'alice@example.com',
    ...(extra.dsnMessageId === undefined ? {} : { dsnMessageId: extra.dsnMessageId }),
  });
}

/** Four messages: delivered, deferred (2 recipients), one bounced + one delivered, one queued. */
function seed(now: number) {
  const delivered = newMessageId(now - 3 * HOUR);
  const deferred = newMessageId(now - 2 * HOUR);
  const mixed = newMessageId(now - HOUR);
  const queued = newMessageId(now - HOUR / 2);
  const dsn = newMessageId(now - HOUR + 2000);
  const events = [
    accepted(delivered, now - 3 * HOUR, 'alice@example.com', ['bob@example.org'], 'one@example.com'),
    outcome(delivered, EventKind.DELIVERED, now - 3 * HOUR + 1500, ['bob@example.org'], {
      code: 250,
      enhanced: '2.0.0',
      text: 'OK queued as 4711',
    }),
    accepted(
      deferred,
      now - 2 * HOUR,
      'alice@example.com',
      ['carol@slow.example', 'dave@slow.example'],
      'two@example.com',
    ),
    // A remote server's reply with an escape sequence: shown escaped, never sent to the terminal.
    outcome(
      deferred,
      EventKind.DEFERRED,
      now - 2 * HOUR + 1000,
      ['carol@slow.example', 'dave@slow.example'],
      {
        code: 451,
        enhanced: '4.7.1',
        text: `greylisted ${ESC}[31mtry later`,
      },
    ),
    accepted(
      mixed,
      now - HOUR,
      'alice@example.com',
      ['nobody@example.org', 'erin@example.org'],
      'three@example.com',
    ),
    outcome(
      mixed,
      EventKind.BOUNCED,
      now - HOUR + 1000,
      ['nobody@example.org'],
      { code: 550, enhanced: '5.1.1', text: 'no such user' },
      { dsnMessageId: dsn },
    ),
    outcome(mixed, EventKind.DELIVERED, now - HOUR + 1000, ['erin@example.org'], {
      code: 250,
      enhanced: '2.0.0',
      text: 'OK',
    }),
    accepted(queued, now - HOUR / 2, 'bob@example.net', ['frank@queued.example'], 'four@example.net'),
  ];
  return { delivered, deferred, mixed, queued, dsn, events };
}

interface WorkerRequest {
  op: string;
  body: { domain: string; until?: string; reason?: string };
}

test('petrel trace, queue and suppress against the real API', async (t) => {
  const now = Date.now();
  const postgres = await startPostgres(t.after.bind(t));
  const nats = await startNats(t.after.bind(t));
  await migrate(postgres.databaseUrl);
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  const outcome = await scenario(t, now, postgres.databaseUrl, nats.url, (fn) => cleanups.push(fn)).then(
    () => ({ ok: true as const }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  // Every cleanup runs even when one fails: a pool left open when the harness stops Postgres
  // would get "terminating connection" as an error nobody handles.
  const failures: unknown[] = [];
  for (const fn of cleanups.reverse()) {
    await Promise.resolve()
      .then(fn)
      .catch((error: unknown) => failures.push(error));
  }
  if (!outcome.ok) throw outcome.error;
  if (failures.length > 0) throw failures[0];
});

async function scenario(t: TestContext, now: number, databaseUrl: string, natsUrl: string, defer: Defer) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  pool.on('error', () => undefined); // idle connections of a server being stopped
  defer(() => pool.end());
  const nc = await connect({ servers: natsUrl });
  defer(() => nc.close());
  await ensureStreams(await jetstreamManager(nc), { replicas: 1 });
  const js = jetstream(nc);
  const stores = await openApiStores(js, 1);
  defer(() => stores.stop());
  const { suppressions, controls } = stores;

  const token = randomBytes(18).toString('base64url');
  const log = createLogger('cli-test', { level: 'silent' });
  const deps = { nc, js, suppressions, controls, log, retentionDays: 30 };
  const url = await listen(defer, createApi({ ...deps, db: pool, tokens: new TokenSource({ token }) }));

  const s = seed(now);
  await new EventWriter(pool).write(s.events);

  // A stand-in for the delivery workers: answers the queue operations as they do.
  const requests: WorkerRequest[] = [];
  const worker = nc.subscribe(`${QUEUE_OPERATIONS_SUBJECT}.*`, {
    callback: (error, m) => {
      if (error !== null) return;
      const op = m.subject.slice(QUEUE_OPERATIONS_SUBJECT.length + 1);
      const body = m.json<WorkerRequest['body']>();
      requests.push({ op, body });
      void (async () => {
        if (op === 'suspend')
          await controls.suspend(body.domain, body.until === undefined ? undefined : new Date(body.until));
        if (op === 'resume') await controls.resume(body.domain);
        m.respond(JSON.stringify({ ok: true, count: op === 'suspend' || op === 'resume' ? 1 : 3 }));
      })();
    },
  });
  defer(() => worker.unsubscribe());

  const cwd = await tempDir('cli');
  const flags = ['--api', url, '--token', token];
  const run = (...args: string[]) => petrel([...args, ...flags], { cwd });

  await t.test('trace <queue id>: envelope, recipients and timeline, aligned', async () => {
    const r = await run('trace', s.delivered);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `Queue id    ${s.delivered}`);
    assert.ok(lines.includes('Sender      alice@example.com'), r.stdout);
    assert.ok(lines.includes('Message-ID  <one@example.com>'), r.stdout);
    assert.ok(lines.includes('Size        2048 bytes'), r.stdout);
    assert.ok(lines.includes(`Accepted    ${new Date(now - 3 * HOUR).toISOString().slice(0, 19)}Z`));
    const recipientsAt = lines.indexOf('Recipients');
    assert.match(
      lines[recipientsAt + 1] ?? '',
      /^RECIPIENT\s+STATUS\s+ATTEMPTS\s+UPDATED\s+DSN\s+LAST REPLY$/,
    );
    assert.match(
      lines[recipientsAt + 2] ?? '',
      /^bob@example\.org\s+delivered\s+1\s+\S+Z\s+-\s+250 2\.0\.0 OK queued as 4711$/,
    );
    const timelineAt = lines.indexOf('Timeline');
    const header = lines[timelineAt + 1] ?? '';
    assert.match(header, /^AT\s+EVENT\s+RECIPIENTS\s+ATTEMPT\s+REMOTE\s+TOOK\s+DETAIL$/);
    const rows = lines.slice(timelineAt + 2).filter((l) => l !== '');
    assert.equal(rows.length, 2);
    // Aligned: each row's event and remote start under their headers.
    for (const [row, event] of rows.map((row, i) => [row, ['accepted', 'delivered'][i]] as const)) {
      assert.equal(row.indexOf(event ?? ''), header.indexOf('EVENT'), row);
    }
    assert.equal((rows[1] ?? '').indexOf('mx.example.org [192.0.2.25] TLSv1.3'), header.indexOf('REMOTE'));
    assert.match(
      rows[0] ?? '',
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s+accepted\s+bob@example\.org\s+-\s+client\.example TLSv1\.3\s+-\s+-$/,
    );
    assert.match(
      rows[1] ?? '',
      /delivered\s+bob@example\.org\s+1\s+.*\s+40ms\s+250 2\.0\.0 OK queued as 4711$/,
    );
  });

  await t.test('trace <queue id> --json: the API answer, nothing on stderr', async () => {
    const r = await run('trace', s.delivered.toLowerCase(), '--json');
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    const body = JSON.parse(r.stdout);
    assert.equal(body.message.queueId, s.delivered);
    assert.equal(body.message.sender, 'alice@example.com');
    assert.deepEqual(
      body.timeline.map((e: { event: string }) => e.event),
      ['accepted', 'delivered'],
    );
    assert.equal(body.timeline[1].reply.code, 250);
  });

  await t.test('trace <address>: the matches, newest first, with a status summary', async () => {
    const r = await run('trace', 'alice@example.com');
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^QUEUE ID\s+ACCEPTED\s+SENDER\s+RCPTS\s+STATUS\s+MESSAGE-ID$/);
    assert.equal(lines.length, 4);
    assert.match(
      lines[1] ?? '',
      new RegExp(
        `^${s.mixed}\\s+\\S+Z\\s+alice@example\\.com\\s+2\\s+1 delivered, 1 bounced\\s+three@example\\.com$`,
      ),
    );
    assert.match(lines[2] ?? '', new RegExp(`^${s.deferred}\\s.*\\s2\\s+2 deferred\\s+two@example\\.com$`));
    assert.match(lines[3] ?? '', new RegExp(`^${s.delivered}\\s.*\\s1\\s+1 delivered\\s+one@example\\.com$`));
    // RCPTS is a number column: right-aligned under its header's end.
    const end = (lines[0] ?? '').indexOf('RCPTS') + 'RCPTS'.length;
    for (const l of lines.slice(1)) assert.match(l.slice(end - 1, end), /\d/);

    const json = await run('trace', 'alice@example.com', '--json');
    assert.equal(json.code, 0);
    assert.deepEqual(
      JSON.parse(json.stdout).messages.map((m: { queueId: string }) => m.queueId),
      [s.mixed, s.deferred, s.delivered],
    );
  });

  await t.test('trace with one match shows its timeline; --since, --limit', async () => {
    const one = await run('trace', '<three@example.com>');
    assert.equal(one.code, 0);
    assert.ok(one.stdout.startsWith(`Queue id    ${s.mixed}\n`), one.stdout);
    assert.match(one.stdout, /\nTimeline\n/);
    assert.match(
      one.stdout,
      new RegExp(`bounced\\s+nobody@example\\.org\\s+1\\s.*550 5\\.1\\.1 no such user; DSN ${s.dsn}`),
    );
    assert.match(
      one.stdout,
      new RegExp(`nobody@example\\.org\\s+bounced\\s+1\\s+\\S+Z\\s+${s.dsn}\\s+550 5\\.1\\.1 no such user`),
    );

    const since = await run('trace', 'alice@example.com', '--since', '90m');
    assert.equal(since.code, 0);
    assert.ok(since.stdout.startsWith(`Queue id    ${s.mixed}\n`), since.stdout);

    const limited = await run('trace', 'alice@example.com', '--limit', '2');
    assert.equal(limited.code, 0);
    assert.equal(limited.stdout.trimEnd().split('\n').length, 3);
    assert.equal(
      limited.stderr,
      'petrel: showing the newest 2; narrow it with --since/--until or raise --limit\n',
    );
  });

  await t.test('trace shows a remote reply escaped, never its control characters', async () => {
    const r = await run('trace', s.deferred);
    assert.equal(r.code, 0);
    assert.ok(!r.stdout.includes(ESC), 'no raw ESC on stdout');
    assert.match(r.stdout, /451 4\.7\.1 greylisted \\x1b\[31mtry later/);
    assert.match(r.stdout, /deferred\s+carol@slow\.example \+1\s+1\s/);
  });

  await t.test('trace: nothing found is exit 1 with a message', async () => {
    const none = await run('trace', 'nobody-home@example.org');
    assert.equal(none.code, 1);
    assert.equal(none.stdout, '');
    assert.equal(
      none.stderr,
      'petrel: no message matches "nobody-home@example.org" (within the retention)\n',
    );
    const noneJson = await run('trace', 'nobody-home@example.org', '--json');
    assert.equal(noneJson.code, 1);
    assert.deepEqual(JSON.parse(noneJson.stdout), { messages: [] });

    const unknown = newMessageId(now);
    const r = await run('trace', unknown);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `petrel: not found: no message with queue id ${unknown} [PETREL_ERR_API_NOT_FOUND]\n`,
    );
  });

  await t.test('queue: a table of destinations, and one destination in detail', async () => {
    const r = await run('queue');
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'DESTINATION     READY  DEFERRED  OLDEST  RATE  SUSPENDED');
    assert.match(lines[1] ?? '', /^slow\.example\s+0\s+2\s+2h0\dm\s+-\s+-$/);
    assert.match(lines[2] ?? '', /^queued\.example\s+1\s+0\s+3\dm\d\ds\s+-\s+-$/);
    assert.equal(lines.length, 3);

    const json = await run('queue', '--json');
    assert.equal(json.code, 0);
    const body = JSON.parse(json.stdout);
    assert.deepEqual(
      body.destinations.map((d: { domain: string; ready: number; deferred: number }) => [
        d.domain,
        d.ready,
        d.deferred,
      ]),
      [
        ['slow.example', 0, 2],
        ['queued.example', 1, 0],
      ],
    );

    const one = await run('queue', 'slow.example');
    assert.equal(one.code, 0);
    assert.match(
      one.stdout,
      /^Destination {6}slow\.example\nReady {12}0 recipients\nDeferred {9}2 recipients\nOldest {11}\S+ in the queue\nRate now {9}-\nRate configured {2}-\nSuspended {8}no\n$/,
    );
    const oneJson = await run('queue', 'slow.example', '--json');
    assert.equal(JSON.parse(oneJson.stdout).destination.deferred, 2);
  });

  await t.test('queue retry, bounce, purge: the count on stdout, progress on stderr only', async () => {
    const retry = await run('queue', 'retry', 'slow.example');
    assert.equal(retry.code, 0);
    assert.equal(retry.stdout, 'slow.example: 3 deferred messages queued for delivery now\n');
    // stderr is a pipe here: one line, no spinner.
    assert.equal(
      retry.stderr,
      'petrel: retrying the deferred mail of slow.example… (working; this can take a while)\n',
    );
    assert.deepEqual(requests.at(-1), { op: 'retry', body: { domain: 'slow.example' } });

    const bounce = await run(
      'queue',
      'bounce',
      'slow.example',
      '--reason',
      'mailbox migration',
      '--yes',
      '--json',
    );
    assert.equal(bounce.code, 0);
    assert.equal(bounce.stderr, '', 'no progress display with --json');
    assert.deepEqual(JSON.parse(bounce.stdout), { domain: 'slow.example', operation: 'bounce', count: 3 });
    assert.deepEqual(requests.at(-1), {
      op: 'bounce',
      body: { domain: 'slow.example', reason: 'mailbox migration' },
    });

    const purge = await run('queue', 'purge', 'slow.example', '--yes');
    assert.equal(purge.code, 0);
    assert.equal(purge.stdout, 'slow.example: 3 deferred messages dropped (no DSN)\n');
  });

  await t.test('queue bounce and purge do nothing without --yes (exit 2)', async () => {
    const before = requests.length;
    for (const op of ['bounce', 'purge']) {
      const r = await run('queue', op, 'slow.example');
      assert.equal(r.code, 2);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /nothing is done without --yes \[PETREL_ERR_CLI_USAGE\]\n/);
      assert.match(r.stderr, new RegExp(`petrel: to go ahead: petrel queue ${op} slow\\.example --yes\\n$`));
    }
    assert.equal(requests.length, before, 'no request reached the workers');
  });

  await t.test('queue suspend --until, shown in the table; resume', async () => {
    const r = await run('queue', 'suspend', 'slow.example', '--until', '2h');
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    const until = requests.at(-1)?.body.until;
    assert.ok(until !== undefined);
    assert.ok(Math.abs(Date.parse(until) - (Date.now() + 2 * HOUR)) < 60_000, until);
    assert.equal(r.stdout, `slow.example: delivery suspended until ${until.slice(0, 19)}Z\n`);
    await waitFor(() => controls.suspendedUntil('slow.example'), { timeoutMs: 5_000, message: 'suspension' });
    const table = await run('queue');
    assert.match(
      table.stdout,
      new RegExp(`^slow\\.example\\s+0\\s+2\\s+\\S+\\s+-\\s+until ${until.slice(0, 19)}Z$`, 'm'),
    );

    const resumed = await run('queue', 'resume', 'slow.example');
    assert.equal(resumed.code, 0);
    assert.equal(resumed.stdout, 'slow.example: delivery resumed\n');
    assert.equal(controls.suspendedUntil('slow.example'), undefined);
  });

  await t.test('suppress add, list, remove', async () => {
    const add = await run(
      'suppress',
      'add',
      'Bob@Example.org',
      '--reason',
      'asked to stop',
      '--expires',
      '12h',
    );
    assert.equal(add.code, 0);
    assert.equal(add.stderr, '');
    const expires = suppressions.get('bob@example.org')?.expiresAt;
    assert.ok(expires !== undefined);
    assert.ok(Math.abs(Date.parse(expires) - (Date.now() + 12 * HOUR)) < 60_000, expires);
    assert.equal(
      add.stdout,
      `bob@example.org suppressed until ${expires.slice(0, 19)}Z (reason: asked to stop)\n`,
    );

    const addJson = await run('suppress', 'add', 'carol@example.org', '--json');
    assert.equal(addJson.code, 0);
    assert.equal(JSON.parse(addJson.stdout).suppression.reason, 'added by an operator');

    const list = await run('suppress', 'list');
    assert.equal(list.code, 0);
    const lines = list.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^ADDRESS\s+SOURCE\s+STATUS\s+CREATED\s+EXPIRES\s+REASON$/);
    assert.match(lines[1] ?? '', /^bob@example\.org\s+manual\s+-\s+\S+Z\s+\S+Z\s+asked to stop$/);
    assert.match(lines[2] ?? '', /^carol@example\.org\s+manual\s+-\s+\S+Z\s+\S+Z\s+added by an operator$/);
    assert.equal(lines.length, 3);

    const filtered = await run('suppress', 'list', '--address', 'carol', '--json');
    const body = JSON.parse(filtered.stdout);
    assert.equal(body.total, 1);
    assert.equal(body.suppressions[0].address, 'carol@example.org');
    const limited = await run('suppress', 'list', '--limit', '1');
    assert.equal(limited.stderr, 'petrel: showing 1 of 2; raise --limit to see more\n');
    const none = await run('suppress', 'list', '--address', 'zed');
    assert.equal(none.stdout, 'No suppressed address contains "zed".\n');

    const removed = await run('suppress', 'remove', 'bob@example.org');
    assert.equal(removed.code, 0);
    assert.equal(removed.stdout, 'bob@example.org removed from the suppression list\n');
    assert.equal(suppressions.get('bob@example.org'), undefined);
    const again = await run('suppress', 'remove', 'bob@example.org', '--json');
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    assert.equal(
      again.stderr,
      'petrel: not found: bob@example.org is not on the suppression list [PETREL_ERR_API_NOT_FOUND]\n',
    );

    const bad = await run('suppress', 'add', 'not-an-address');
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /the API refused the request: address must be an email address .*\[PETREL_ERR_API_BAD_REQUEST\]/,
    );
  });

  await t.test('a wrong token: exit 1, naming where the token came from', async () => {
    const flag = await petrel(['queue', '--api', url, '--token', 'wrong'], { cwd });
    assert.equal(flag.code, 1);
    assert.equal(flag.stdout, '');
    assert.match(
      flag.stderr,
      new RegExp(
        `^petrel: the API at ${url}/ refused the token from --token: the bearer token is not valid \\[PETREL_ERR_API_UNAUTHORIZED\\]\\n`,
      ),
    );
    const env = await petrel(['queue', '--json'], { cwd, env: { PETREL_API: url, PETREL_TOKEN: 'wrong' } });
    assert.equal(env.code, 1);
    assert.equal(env.stdout, '');
    assert.match(env.stderr, /refused the token from PETREL_TOKEN: the bearer token is not valid/);
  });

  await t.test('the API unreachable: exit 1, naming the URL', async () => {
    const port = await closedPort();
    const r = await petrel(['trace', s.delivered, '--api', `http://127.0.0.1:${port}`, '--token', token], {
      cwd,
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `petrel: cannot reach the API at http://127.0.0.1:${port}/ (from --api): connection refused [PETREL_ERR_CLI_API_UNREACHABLE]\n` +
        "petrel: check the URL (from --api) and that the recorder's API can be reached from here\n",
    );
  });

  await t.test('Postgres unavailable: exit 1 with the 503 message', async () => {
    const down = new pg.Pool({
      connectionString: `postgres://petrel@127.0.0.1:${await closedPort()}/petrel`,
      connectionTimeoutMillis: 2_000,
    });
    defer(() => down.end());
    const downUrl = await listen(defer, createApi({ ...deps, db: down, tokens: new TokenSource({ token }) }));
    const r = await petrel(['trace', 'alice@example.com', '--api', downUrl, '--token', token], { cwd });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `petrel: the API at ${downUrl}/ cannot reach Postgres right now; try again shortly [PETREL_ERR_API_DATABASE_UNAVAILABLE]\n`,
    );
  });

  await t.test('no delivery worker: exit 1 with the 503 message', async () => {
    await worker.drain();
    const r = await run('queue', 'retry', 'slow.example');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(
      r.stderr,
      /petrel: no delivery worker is running to carry out the operation \[PETREL_ERR_API_NO_WORKERS\]\npetrel: check that the delivery workers run/,
    );
  });

  await t.test("discovery: petrel dev's data dir gives the API and its token", async () => {
    const home = await tempDir('cli-home');
    const dataDir = join(home, '.petrel');
    mkdirSync(dataDir);
    const tokenFile = join(dataDir, 'api-token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    writeFileSync(join(dataDir, 'api.json'), `${JSON.stringify({ url, tokenFile, pid: process.pid })}\n`);

    // Default --data-dir: ./.petrel of the working directory.
    const here = await petrel(['trace', s.delivered], { cwd: home });
    assert.equal(here.stderr, '');
    assert.equal(here.code, 0);
    assert.ok(here.stdout.startsWith(`Queue id    ${s.delivered}\n`));
    // --data-dir from elsewhere.
    const there = await petrel(['queue', '--json', '--data-dir', dataDir], { cwd });
    assert.equal(there.code, 0);
    assert.equal(JSON.parse(there.stdout).destinations.length, 2);
    // The flags come first: a wrong --token is used, and named.
    const flagged = await petrel(['queue', '--token', 'wrong'], { cwd: home });
    assert.equal(flagged.code, 1);
    assert.match(flagged.stderr, /refused the token from --token/);

    // Another petrel dev's token (a stale token file): named as petrel dev's.
    writeFileSync(tokenFile, 'another-token\n');
    const stale = await petrel(['queue'], { cwd: home });
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, new RegExp(`refused the token from ${tokenFile} \\(petrel dev's token\\)`));

    // petrel dev gone without removing api.json (killed): the hint says so.
    const port = await closedPort();
    writeFileSync(
      join(dataDir, 'api.json'),
      JSON.stringify({ url: `http://127.0.0.1:${port}`, tokenFile, pid: await deadPid() }),
    );
    const gone = await petrel(['queue'], { cwd: home });
    assert.equal(gone.code, 1);
    assert.match(
      gone.stderr,
      new RegExp(
        `cannot reach the API at http://127\\.0\\.0\\.1:${port}/ \\(from \\.petrel/api\\.json\\): connection refused`,
      ),
    );
    assert.match(
      gone.stderr,
      /petrel: petrel dev \(pid \d+\), which wrote \.petrel\/api\.json, is not running any more; start it again: petrel dev --data-dir \.\/\.petrel\n$/,
    );
  });

  await t.test('nothing to talk to: exit 1 saying what to do', async () => {
    const r = await petrel(['trace', s.delivered], { cwd });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'petrel: no API to talk to: neither --api nor PETREL_API is set, and there is no running petrel dev with data dir ./.petrel (no .petrel/api.json) [PETREL_ERR_CLI_NO_API]\n' +
        "petrel: start `petrel dev` (and run this command with the same --data-dir), or pass --api URL and --token TOKEN (or set PETREL_API and PETREL_TOKEN) to use a cluster's API\n",
    );
    const noToken = await petrel(['queue', '--api', 'https://petrel.example.net'], { cwd });
    assert.equal(noToken.code, 1);
    assert.match(
      noToken.stderr,
      /^petrel: no API token for https:\/\/petrel\.example\.net\/ \(from --api\) \[PETREL_ERR_CLI_NO_TOKEN\]\n/,
    );
  });

  await t.test('a bad command line: exit 2, nothing sent', async () => {
    for (const args of [
      ['trace', 'x', '--limit', '0'],
      ['trace', 'x', '--since', 'yesterday'],
      ['queue', 'retry'],
      ['suppress', 'add', 'a@example.org', '--expires', 'soon'],
      ['queue', '--api', 'ftp://example.net', '--token', 't'],
      ['frobnicate'],
    ]) {
      const r = await petrel([...args, ...(args.includes('--api') ? [] : flags)], { cwd });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.notEqual(r.stderr, '');
    }
  });
}
