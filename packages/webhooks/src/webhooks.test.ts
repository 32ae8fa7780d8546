import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort } from '@petrel/localenv';
import { AckPublisher, publishEvent, publishEventBatchWith, STREAM_EVENTS } from '@petrel/queue';
import { waitFor } from '@petrel/test-harness';
import {
  closeEnv,
  logRows,
  Receiver,
  SECRETS,
  type SubscriptionId,
  scenario,
  startEnv,
  type TestEnv,
  testDomains,
  testLog,
} from '../test/support.ts';
import { idempotencyKey } from './matching.ts';
import type { WebhookOptions } from './options.ts';
import { verifySignature } from './signature.ts';
import { startWebhooks } from './start.ts';
import { CONSUMER_FANOUT, CONSUMER_SENDER, STREAM_WEBHOOKS } from './streams.ts';

/** Retries within a test's patience. */
const FAST: WebhookOptions = {
  retryDelaysMs: [100, 200, 300],
  jitter: 0,
  maxAgeMs: 120_000,
  // Not shorter: a stall of a second or two during a POST would time it out and retry it, breaking exact counts.
  requestTimeoutMs: 10_000,
};
const WAIT = { timeoutMs: 30_000, intervalMs: 50 };

async function publishScenario(env: TestEnv, s: ReturnType<typeof scenario>): Promise<void> {
  const publisher = new AckPublisher(env.nc);
  try {
    await publishEventBatchWith(publisher, s.batch, { timeoutMs: 5_000 });
  } finally {
    publisher.close();
  }
  for (const event of s.single) await publishEvent(env.js, event, { timeoutMs: 5_000 });
}

/** Every job settled: none left in the stream, none held by the sender. */
async function jobsSettled(env: TestEnv): Promise<boolean> {
  const stream = await env.jsm.streams.info(STREAM_WEBHOOKS);
  const sender = await env.jsm.consumers.info(STREAM_WEBHOOKS, CONSUMER_SENDER);
  return stream.state.messages === 0 && sender.num_ack_pending === 0 && sender.num_pending === 0;
}

test('receiver down then up: every event delivered, signatures verify, every attempt in the log', async (t) => {
  const env = await startEnv(t);
  const port = await freePort();
  const domains = testDomains(port);
  const log = testLog();
  const webhooks = await startWebhooks({ ...env, domains: () => domains, log, options: FAST });
  let receiver: Receiver | undefined;
  try {
    const s = scenario('down-up');
    assert.equal(s.expected.size, 9);
    await publishScenario(env, s);

    // Down: nothing listens on the port. Every job fails (connection refused) and is logged.
    await waitFor(
      async () => {
        const refused = (await logRows(env.pool)).filter((r) => /ECONNREFUSED/.test(r.error));
        return new Set(refused.map((r) => r.idempotency_key)).size === s.expected.size;
      },
      { ...WAIT, message: 'a refused attempt of every job in the delivery log' },
    );
    // Up, but unavailable: 503 until every job has had one.
    receiver = await Receiver.listen(port, 503);
    const r = receiver;
    await waitFor(() => r.keysAnswered(503).size === s.expected.size, {
      ...WAIT,
      message: 'a 503 for every job',
    });
    // Up: 200.
    r.status = 200;
    await waitFor(() => r.keysAnswered(200).size === s.expected.size, {
      ...WAIT,
      message: 'every job delivered',
    });
    await waitFor(() => jobsSettled(env), { ...WAIT, message: 'every job acked' });

    // Exactly the expected (subscription, event) pairs, nothing else, at the right paths.
    const keys = new Set(r.requests.map((q) => String(q.headers['idempotency-key'])));
    assert.deepEqual([...keys].sort(), [...s.expected.keys()].sort());
    const bySubscription = {
      'default/a-example/ops': '/a.example/ops',
      'default/b-example/audit': '/b.example/audit',
    };
    for (const q of r.requests) {
      const key = String(q.headers['idempotency-key']);
      const want = s.expected.get(key);
      assert.ok(want, `unexpected POST ${key}`);
      const body = JSON.parse(q.body);
      assert.equal(q.path, bySubscription[want.subscription]);
      assert.equal(q.headers['content-type'], 'application/json');
      assert.equal(body.id, key);
      assert.equal(body.id, idempotencyKey(want.subscription, want.eventId));
      assert.equal(body.subscription, want.subscription);
      assert.equal(body.event.eventId, want.eventId);
      assert.equal(q.headers['petrel-event'], body.type);
      assert.match(String(q.headers['petrel-delivery-attempt']), /^[1-9]\d*$/);
      // Signed with the subscription's own secret; the other secret does not verify it.
      const signature = String(q.headers['petrel-signature']);
      assert.match(signature, /^t=\d+,v1=[0-9a-f]{64}$/);
      assert.equal(verifySignature(SECRETS[want.subscription], signature, q.body), true);
      const other = (Object.keys(SECRETS) as SubscriptionId[]).find((id) => id !== want.subscription);
      assert.ok(other);
      assert.equal(verifySignature(SECRETS[other], signature, q.body), false);
      assert.equal(
        verifySignature(SECRETS[want.subscription], signature, q.body.replace('"type"', '"typ"')),
        false,
      );
    }
    // A retried POST carries the same key and the same body; attempts count up; one 200 per job.
    for (const key of s.expected.keys()) {
      const tries = r.requests.filter((q) => q.headers['idempotency-key'] === key);
      assert.equal(new Set(tries.map((q) => q.body)).size, 1, 'the same body on every attempt');
      const attempts = tries.map((q) => Number(q.headers['petrel-delivery-attempt']));
      assert.deepEqual(
        attempts,
        [...attempts].sort((a, b) => a - b),
      );
      assert.ok((attempts[0] ?? 0) >= 2, 'the refused attempts came first');
      assert.equal(tries.filter((q) => q.status === 200).length, 1);
      assert.equal(tries.at(-1)?.status, 200);
    }
    // The body as a receiver reads it.
    const bounced = r.requests.find((q) => JSON.parse(q.body).event.eventId === 'down-up-a-bounced');
    assert.ok(bounced);
    const { event, ...envelope } = JSON.parse(bounced.body);
    assert.deepEqual(envelope, {
      id: idempotencyKey('default/a-example/ops', 'down-up-a-bounced'),
      type: 'bounced',
      domain: 'a.example',
      subscription: 'default/a-example/ops',
    });
    assert.equal(event.messageId, 'm-down-up-a-bounced');
    assert.equal(event.sender, 'app@a.example');
    assert.deepEqual(event.recipients, ['rcpt@x.test']);
    assert.deepEqual(event.reply, { code: 550, enhanced: '5.1.1', text: 'no such user' });
    assert.equal(event.dsnMessageId, 'dsn-1');
    assert.ok(!Number.isNaN(Date.parse(event.at)));

    // The delivery log: the refused attempts, the 503s, and one success per job, last.
    const rows = await waitFor(
      async () => {
        const all = await logRows(env.pool);
        return all.filter((row) => row.status_code === 200).length === s.expected.size ? all : undefined;
      },
      { ...WAIT, message: 'every success in the delivery log' },
    );
    assert.deepEqual(
      [...new Set(rows.map((row) => row.idempotency_key))].sort(),
      [...s.expected.keys()].sort(),
    );
    for (const [key, want] of s.expected) {
      const attempts = rows.filter((row) => row.idempotency_key === key);
      const sent = r.requests.filter((q) => q.headers['idempotency-key'] === key);
      assert.ok(attempts.some((row) => row.status_code === null && /ECONNREFUSED/.test(row.error)));
      assert.equal(
        attempts.filter((row) => row.status_code === 503).length,
        sent.filter((q) => q.status === 503).length,
      );
      for (const row of attempts.filter((x) => x.status_code === 503))
        assert.match(row.error, /^HTTP 503: unavailable/);
      const last = attempts.at(-1);
      assert.equal(last?.status_code, 200);
      assert.equal(last?.error, '');
      assert.ok(last?.delivered_at instanceof Date);
      assert.equal(last?.delivery_id, `${key}.${last?.attempt}`);
      assert.equal(last?.subscription, want.subscription);
      assert.equal(last?.event_id, want.eventId);
      assert.equal(last?.url, `http://127.0.0.1:${port}${bySubscription[want.subscription]}`);
      assert.equal(attempts.filter((row) => row.delivered_at !== null).length, 1);
    }
    const stats = webhooks.stats();
    assert.equal(stats.sender.delivered, s.expected.size);
    assert.equal(stats.fanout.jobs, s.expected.size);
    assert.equal(stats.deliveryLog.dropped, 0);
  } finally {
    await webhooks.stop();
    await receiver?.close();
    await closeEnv(env);
  }
});

test('an event seen twice makes no second job; each (subscription, event) is POSTed once', async (t) => {
  const env = await startEnv(t);
  const port = await freePort();
  const receiver = await Receiver.listen(port, 200);
  const domains = testDomains(port);
  const webhooks = await startWebhooks({ ...env, domains: () => domains, log: testLog(), options: FAST });
  try {
    const s = scenario('twice');
    // The same batch twice (a worker publishing its events again after a crash: no Nats-Msg-Id).
    await publishScenario(env, { ...s, single: [] });
    await publishScenario(env, { ...s, single: [] });
    const expectedKeys = [...s.expected].filter(([, v]) => !v.eventId.endsWith('b-in-bounced'));
    await waitFor(
      async () => {
        const info = await env.jsm.consumers.info(STREAM_EVENTS, CONSUMER_FANOUT);
        return info.num_pending === 0 && info.num_ack_pending === 0 && webhooks.stats().fanout.messages === 2;
      },
      { ...WAIT, message: 'both events messages fanned out' },
    );
    const stats = webhooks.stats().fanout;
    assert.equal(stats.jobs, expectedKeys.length);
    assert.equal(stats.duplicates, expectedKeys.length);
    // The job stream stored each job once.
    const stream = await env.jsm.streams.info(STREAM_WEBHOOKS);
    assert.equal(stream.state.last_seq, expectedKeys.length);
    await waitFor(() => receiver.keysAnswered(200).size === expectedKeys.length, {
      ...WAIT,
      message: 'every job delivered',
    });
    await waitFor(() => jobsSettled(env), { ...WAIT, message: 'every job acked' });
    assert.equal(receiver.requests.length, expectedKeys.length);
    assert.deepEqual(
      receiver.requests.map((q) => String(q.headers['idempotency-key'])).sort(),
      expectedKeys.map(([k]) => k).sort(),
    );
  } finally {
    await webhooks.stop();
    await receiver.close();
    await closeEnv(env);
  }
});

test('a job is given up after the maximum age; a removed subscription drops its jobs', async (t) => {
  const env = await startEnv(t);
  const port = await freePort();
  let domains = testDomains(port);
  const log = testLog();
  const webhooks = await startWebhooks({
    ...env,
    domains: () => domains,
    log,
    // 10 s, not less: b's jobs must still be retrying when its subscription is removed below.
    options: { ...FAST, retryDelaysMs: [100], maxAgeMs: 10_000 },
  });
  try {
    const s = scenario('gone');
    await publishScenario(env, s);
    const b = [...s.expected].filter(([, v]) => v.subscription === 'default/b-example/audit').map(([k]) => k);
    const a = [...s.expected].filter(([, v]) => v.subscription === 'default/a-example/ops').map(([k]) => k);
    // Every job failed once (nothing listens); then b.example's subscription is removed.
    await waitFor(
      async () => new Set((await logRows(env.pool)).map((r) => r.idempotency_key)).size === s.expected.size,
      { ...WAIT, message: 'a failed attempt of every job' },
    );
    domains = testDomains(port, { withoutAudit: true });
    await waitFor(() => jobsSettled(env), { ...WAIT, message: 'every job settled' });
    const rows = await waitFor(
      async () => {
        const all = await logRows(env.pool);
        const final = all.filter((r) => /dropped$|gave up/.test(r.error));
        return final.length === s.expected.size ? all : undefined;
      },
      { ...WAIT, message: 'the final row of every job' },
    );
    for (const key of b) {
      const last = rows.filter((r) => r.idempotency_key === key).at(-1);
      assert.equal(last?.error, 'subscription removed; dropped');
      assert.equal(last?.url, '');
    }
    for (const key of a) {
      const attempts = rows.filter((r) => r.idempotency_key === key);
      assert.match(attempts.at(-1)?.error ?? '', /ECONNREFUSED.*; gave up after \d+ attempts$/);
      assert.equal(attempts.filter((r) => /gave up/.test(r.error)).length, 1);
    }
    const stats = webhooks.stats().sender;
    assert.equal(stats.dropped, b.length);
    assert.equal(stats.gaveUp, a.length);
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.msg === 'webhook given up: too old to retry'));
    assert.ok(log.lines.some((l) => l.msg === 'webhook job dropped: subscription removed'));
  } finally {
    await webhooks.stop();
    await closeEnv(env);
  }
});
