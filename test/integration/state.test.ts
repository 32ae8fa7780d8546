// State in Postgres through the real relay (issue 5): ingress → delivery → recorder → trace API,
// with a scripted next hop. Timelines of delivered, deferred-then-delivered, bounced and expired
// mail; and Postgres stopped under load: mail keeps flowing, the state catches up.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { startPostgres as startPostgresProcess } from '@petrel/localenv';
import { ensureDatabase } from '@petrel/store';
import {
  type SinkBehaviour,
  startPetrelDev,
  startSmtpSink,
  swaks,
  tempDir,
  waitFor,
} from '@petrel/test-harness';
import { verifySignature } from '@petrel/webhooks';
import { exampleConfigDir } from './fixtures.ts';

interface Recipient {
  address: string;
  status: string;
  attempts: number;
  lastReply: string;
  dsnQueueId: string | null;
}
interface Trace {
  message: { queueId: string; sender: string; messageId: string; recipients: Recipient[] };
  timeline: { event: string; attempt: number; reply: { code: number } | null; dsnQueueId: string | null }[];
}

/** Errors the components logged (pino levels 50, 60, and stack traces), as test diagnostics: a failure says why. */
function reportComponentErrors(t: TestContext, dataDir: string): void {
  t.after(async () => {
    for (const name of ['recorder', 'delivery', 'ingress']) {
      const text = await readFile(join(dataDir, 'logs', `${name}.log`), 'utf8').catch(() => '');
      // Errors and fatals, and what is not a log line at all (an uncaught exception's stack).
      const lines = text
        .split('\n')
        .filter((l) => l !== '' && (!l.startsWith('{') || /"level":(50|60)/.test(l)));
      for (const line of lines.slice(-20)) {
        t.diagnostic(`${name}: ${line.slice(0, 2000)}`);
      }
    }
  });
}

async function api(port: number, token: string, path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.json() };
}

async function send(port: number, to: string, messageId: string): Promise<string> {
  const r = await swaks([
    '--server',
    `127.0.0.1:${port}`,
    '--from',
    'alice@sender.example',
    '--to',
    to,
    '--header',
    `Message-Id: <${messageId}>`,
  ]);
  const queued = /queued as ([0-9A-Z]{26})/.exec(r.stdout + r.stderr)?.[1];
  assert.ok(queued, `no queue id in: ${r.stdout.slice(-400)}`);
  return queued;
}

/** The next hop: "later-" fails once then accepts, "tempfail-" always fails, "permfail-" 550 5.1.1. */
function scripted(): (rcpt: string) => SinkBehaviour {
  const seen = new Map<string, number>();
  return (rcpt) => {
    const n = (seen.get(rcpt) ?? 0) + 1;
    seen.set(rcpt, n);
    if (rcpt.startsWith('later-')) return n === 1 ? { kind: 'tempfail' } : { kind: 'accept' };
    if (rcpt.startsWith('tempfail-')) return { kind: 'tempfail' };
    if (rcpt.startsWith('permfail-')) return { kind: 'permfail' };
    return { kind: 'accept' };
  };
}

test('timelines of delivered, deferred-then-delivered, bounced and expired messages, from the trace API', async (t) => {
  const sink = await startSmtpSink({ behaviour: scripted() });
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
    env: { PETREL_RETRY_DELAYS_MS: '300', PETREL_QUEUE_LIFETIME: '4s' },
  });
  t.after(() => dev.stop());
  reportComponentErrors(t, dev.dataDir);
  const token = (await readFile(join(dev.dataDir, 'api-token'), 'utf8')).trim();

  const ids = {
    delivered: await send(dev.smtpPort, 'ok@example.org', 'delivered@sender.example'),
    later: await send(dev.smtpPort, 'later-1@example.org', 'later@sender.example'),
    bounced: await send(dev.smtpPort, 'permfail-1@example.org', 'bounced@sender.example'),
    expired: await send(dev.smtpPort, 'tempfail-1@example.org', 'expired@sender.example'),
  };
  const trace = async (id: string) => {
    const r = await api(dev.apiPort, token, `/v1/messages/${id}`);
    return r.status === 200 ? (r.body as Trace) : undefined;
  };
  // The ingress's ACCEPTED event and the worker's outcome reach the recorder on separate paths,
  // so the outcome may be written first: wait for both (a DSN has no ACCEPTED event).
  const final = async (id: string, status: string, accepted = true) =>
    await waitFor(
      async () => {
        const tr = await trace(id);
        const settled =
          tr?.message.recipients[0]?.status === status &&
          (!accepted || tr.timeline.some((e) => e.event === 'accepted'));
        return settled ? tr : undefined;
      },
      { timeoutMs: 60_000, message: `${id} to be ${status}` },
    );

  const delivered = await final(ids.delivered, 'delivered');
  assert.equal(delivered.message.sender, 'alice@sender.example');
  assert.equal(delivered.message.messageId, 'delivered@sender.example');
  assert.deepEqual(
    delivered.timeline.map((e) => [e.event, e.attempt, e.reply?.code ?? null]),
    [
      ['accepted', 0, null],
      ['delivered', 1, 250],
    ],
  );

  const later = await final(ids.later, 'delivered');
  assert.equal(later.message.recipients[0]?.attempts, 2);
  assert.deepEqual(
    later.timeline.map((e) => [e.event, e.attempt, e.reply?.code ?? null]),
    [
      ['accepted', 0, null],
      ['deferred', 1, 450],
      ['delivered', 2, 250],
    ],
  );

  const bounced = await final(ids.bounced, 'bounced');
  const dsn = bounced.message.recipients[0]?.dsnQueueId;
  assert.ok(dsn, 'the DSN sent is named');
  assert.match(bounced.message.recipients[0]?.lastReply ?? '', /^550 5\.1\.1/);
  assert.deepEqual(
    bounced.timeline.map((e) => e.event),
    ['accepted', 'bounced', 'suppressed'],
  );
  assert.equal(bounced.timeline[1]?.dsnQueueId, dsn);
  // The DSN is a message of its own, traced like any other: to the sender, from the null sender.
  const dsnTrace = await final(dsn, 'delivered', false);
  assert.equal(dsnTrace.message.sender, '');
  assert.equal(dsnTrace.message.recipients[0]?.address, 'alice@sender.example');
  // Found by the bounced address too, and the address is now suppressed.
  const found = await api(dev.apiPort, token, '/v1/messages?recipient=PERMFAIL-1@example.org');
  assert.deepEqual(
    (found.body as { messages: { queueId: string }[] }).messages.map((m) => m.queueId),
    [ids.bounced],
  );
  const suppressed = await api(dev.apiPort, token, '/v1/suppressions?address=permfail-1');
  assert.equal((suppressed.body as { total: number }).total, 1);

  const expired = await final(ids.expired, 'expired');
  const events = expired.timeline.map((e) => e.event);
  assert.equal(events[0], 'accepted');
  assert.equal(events.at(-1), 'expired');
  assert.ok(events.slice(1, -1).every((e) => e === 'deferred') && events.length >= 3, events.join(','));
  assert.ok(expired.timeline.at(-1)?.dsnQueueId, 'the expiry DSN is named');
  assert.equal(expired.message.recipients[0]?.attempts, events.length - 1);

  // By Message-ID header field, brackets or not.
  const byHeader = await api(
    dev.apiPort,
    token,
    `/v1/messages?message_id=${encodeURIComponent('<later@sender.example>')}`,
  );
  assert.deepEqual(
    (byHeader.body as { messages: { queueId: string }[] }).messages.map((m) => m.queueId),
    [ids.later],
  );

  // Queue operations through the API, carried out by the real worker; the summary shows them.
  const post = async (path: string, body: object) => {
    const res = await fetch(`http://127.0.0.1:${dev.apiPort}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { count?: number } };
  };
  const destination = async () =>
    (
      (await api(dev.apiPort, token, '/v1/queue/example.org')).body as {
        destination: { suspended: boolean; suspendedUntil: string | null };
      }
    ).destination;
  assert.equal((await post('/v1/queue/example.org/suspend', { until: '2099-01-01T00:00:00Z' })).status, 200);
  await waitFor(async () => (await destination()).suspended, {
    timeoutMs: 10_000,
    message: 'example.org suspended',
  });
  assert.equal((await destination()).suspendedUntil, '2099-01-01T00:00:00.000Z');
  assert.equal((await post('/v1/queue/example.org/resume', {})).status, 200);
  await waitFor(async () => !(await destination()).suspended, {
    timeoutMs: 10_000,
    message: 'example.org resumed',
  });
  const retry = await post('/v1/queue/example.org/retry', {});
  assert.equal(retry.status, 200);
  assert.equal(retry.body.count, 0, 'nothing deferred for example.org any more');
});

test('Postgres stopped under load: mail keeps flowing, and the state catches up with nothing missing', async (t) => {
  const dir = await tempDir('pg-outage');
  let postgres = await startPostgresProcess({ dir, durable: false });
  const port = postgres.port;
  t.after(() => postgres.stop());
  await ensureDatabase(postgres.url, 'petrel');
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
    databaseUrl: postgres.urlFor('petrel'),
  });
  t.after(() => dev.stop());
  reportComponentErrors(t, dev.dataDir);
  const token = (await readFile(join(dev.dataDir, 'api-token'), 'utf8')).trim();

  const first = await send(dev.smtpPort, 'before@example.org', 'before@sender.example');
  await waitFor(async () => (await api(dev.apiPort, token, `/v1/messages/${first}`)).status === 200, {
    timeoutMs: 30_000,
    message: 'the first message recorded',
  });

  await postgres.stop();
  // The API says so, precisely, rather than hanging or failing obscurely.
  const down = await api(dev.apiPort, token, `/v1/messages/${first}`);
  assert.equal(down.status, 503);
  assert.equal((down.body as { error: { code: string } }).error.code, 'PETREL_ERR_API_DATABASE_UNAVAILABLE');

  // Six clients at a time, 60 messages, while Postgres is down.
  const during: string[] = [];
  for (let i = 0; i < 60; i += 6) {
    const round = Array.from({ length: 6 }, (_, k) => i + k);
    during.push(
      ...(await Promise.all(
        round.map((n) => send(dev.smtpPort, `during-${n}@example.org`, `during-${n}@sender.example`)),
      )),
    );
  }
  // Every message accepted and delivered while Postgres is down.
  await waitFor(() => sink.messages.length >= 61, {
    timeoutMs: 60_000,
    message: 'all 61 messages at the next hop',
  });
  // The recorder says it is failing while it retries (it used to say so only once it was over),
  // and its lag counts the events it holds.
  const metrics = await waitFor(
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${dev.apiPort}/metrics`)).text();
      return /^petrel_recorder_failing 1$/m.test(text) && /^petrel_recorder_lag_messages [1-9]/m.test(text)
        ? text
        : undefined;
    },
    { timeoutMs: 30_000, message: 'petrel_recorder_failing 1 and a lag' },
  );
  assert.match(metrics, /^petrel_recorder_failing 1$/m);

  postgres = await startPostgresProcess({ dir, port, durable: false });
  for (const id of during) {
    await waitFor(
      async () => {
        const r = await api(dev.apiPort, token, `/v1/messages/${id}`);
        const tr = r.body as Trace;
        return (
          r.status === 200 && tr.message.recipients[0]?.status === 'delivered' && tr.timeline.length === 2
        );
      },
      { timeoutMs: 60_000, message: `${id} recorded as delivered after Postgres came back` },
    );
  }
  await waitFor(
    async () =>
      /petrel_recorder_lag_messages 0\n/.test(
        await (await fetch(`http://127.0.0.1:${dev.apiPort}/metrics`)).text(),
      ),
    { timeoutMs: 30_000, message: 'the recorder lag back to 0' },
  );
});

test("a MailDomain's webhook gets the delivered and bounced events of its mail, signed", async (t) => {
  const received: { body: string; signature: string; key: string }[] = [];
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      received.push({
        body,
        signature: String(req.headers['petrel-signature'] ?? ''),
        key: String(req.headers['idempotency-key'] ?? ''),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  t.after(() => receiver.close());
  const address = receiver.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const secret = 'webhook-secret-of-sender-example';
  const configDir = await exampleConfigDir();
  await writeFile(
    join(configDir, 'sender-example.yaml'),
    [
      'apiVersion: petrel.dev/v1alpha1',
      'kind: MailDomain',
      'metadata: {name: sender-example}',
      'spec:',
      '  domain: sender.example',
      '  webhooks:',
      `    - {name: ops, url: "http://127.0.0.1:${port}/hook", events: [delivered, bounced], secretRef: {name: sender-hooks, key: secret}}`,
      '---',
      'apiVersion: v1',
      'kind: Secret',
      'metadata: {name: sender-hooks}',
      `stringData: {secret: "${secret}"}`,
      '',
    ].join('\n'),
  );
  const sink = await startSmtpSink({ behaviour: scripted() });
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), { configDir, smarthost: sink.address });
  t.after(() => dev.stop());

  const ok = await send(dev.smtpPort, 'ok@example.org', 'hooked@sender.example');
  const refused = await send(dev.smtpPort, 'permfail-2@example.org', 'refused@sender.example');
  const bodies = await waitFor(
    () => {
      const parsed = received.map(
        (r) => JSON.parse(r.body) as { type: string; event: { messageId: string } },
      );
      const want = [`delivered ${ok}`, `bounced ${refused}`];
      const have = parsed.map((p) => `${p.type} ${p.event.messageId}`);
      return want.every((w) => have.includes(w)) ? parsed : undefined;
    },
    { timeoutMs: 60_000, message: 'the delivered and bounced events at the webhook' },
  );
  // Only the kinds subscribed to: no deferred, no accepted, no suppressed.
  assert.ok(
    bodies.every((b) => b.type === 'delivered' || b.type === 'bounced'),
    JSON.stringify(bodies),
  );
  for (const r of received) {
    assert.ok(
      verifySignature(secret, r.signature, r.body),
      'signature verifies with the subscription secret',
    );
    assert.equal(verifySignature('another-secret-entirely', r.signature, r.body), false);
    assert.match(r.key, /^[0-9a-f]{64}$/);
  }
  // The delivery log, through the API.
  const token = (await readFile(join(dev.dataDir, 'api-token'), 'utf8')).trim();
  const log = await waitFor(
    async () => {
      const r = await api(
        dev.apiPort,
        token,
        '/v1/webhooks/deliveries?subscription=default/sender-example/ops',
      );
      const deliveries = (r.body as { deliveries: { statusCode: number; queueId: string }[] }).deliveries;
      return deliveries.length >= 2 ? deliveries : undefined;
    },
    { timeoutMs: 30_000, message: 'the webhook delivery log' },
  );
  assert.ok(log.every((d) => d.statusCode === 204));
});
