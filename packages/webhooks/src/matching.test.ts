import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DomainIndex } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { EventKind } from '@petrel/proto';
import { deliveryEvent, type EventFields } from '@petrel/queue';
import { WebhookError } from './errors.ts';
import { idempotencyKey, matchEvent } from './matching.ts';
import { resolveOptions } from './options.ts';
import { decodeJob, encodeJob, eventJson, jobFor } from './payload.ts';
import { retryDelay } from './retry.ts';

function domain(name: string, webhooks: { name: string; events: string[] }[]) {
  return runtimeDomain(name, {
    source: `default/${name}`,
    webhooks: webhooks.map((w) => ({
      id: `default/${name}/${w.name}`,
      name: w.name,
      url: `https://hooks.example/${name}/${w.name}`,
      events: w.events,
      secret: `${name}-${w.name}-secret-0123456789`,
    })),
  });
}

const index = new DomainIndex(
  runtimeConfigOf([
    domain('a.example', [
      { name: 'all', events: ['delivered', 'deferred', 'bounced', 'expired', 'suppressed'] },
    ]),
    domain('b.example', [
      { name: 'audit', events: ['delivered', 'bounced'] },
      { name: 'bounces', events: ['bounced'] },
    ]),
    domain('quiet.example', []),
  ]),
);

function event(f: Partial<EventFields>) {
  return deliveryEvent({
    eventId: 'e1',
    kind: EventKind.DELIVERED,
    messageId: 'm1',
    destinationDomain: 'elsewhere.example',
    recipients: ['r@elsewhere.example'],
    atMs: Date.parse('2026-11-23T12:00:00.123Z'),
    attempt: 1,
    remoteHost: 'mx.elsewhere.example',
    remoteAddress: '192.0.2.1',
    tlsProtocol: 'TLSv1.3',
    durationMs: 12n,
    error: '',
    sender: 'app@A.Example',
    ...f,
  });
}

const ids = (e: ReturnType<typeof event>) =>
  matchEvent(index, e).map((m) => `${m.domain} ${m.subscription.id} ${m.type}`);

test('an event goes to the subscriptions of its sender domain and of its destination domain', () => {
  assert.deepEqual(ids(event({})), ['a.example default/a.example/all delivered']);
  // Inbound: destination domain managed, the sender elsewhere.
  assert.deepEqual(
    ids(event({ sender: 'x@elsewhere.example', destinationDomain: 'B.example', kind: EventKind.BOUNCED })),
    ['b.example default/b.example/audit bounced', 'b.example default/b.example/bounces bounced'],
  );
  // Between two managed domains: both.
  assert.deepEqual(ids(event({ destinationDomain: 'b.example' })), [
    'a.example default/a.example/all delivered',
    'b.example default/b.example/audit delivered',
  ]);
  // The null sender (a DSN), or a suppression from the API (no message): by destination only.
  assert.deepEqual(ids(event({ sender: '', destinationDomain: 'a.example', kind: EventKind.SUPPRESSED })), [
    'a.example default/a.example/all suppressed',
  ]);
});

test('only the kinds a subscription asked for; never accepted or purged; nothing for unmanaged domains', () => {
  assert.deepEqual(ids(event({ sender: '', destinationDomain: 'b.example', kind: EventKind.DEFERRED })), []);
  assert.deepEqual(ids(event({ kind: EventKind.ACCEPTED })), []);
  assert.deepEqual(ids(event({ kind: EventKind.PURGED })), []);
  assert.deepEqual(ids(event({ sender: 'x@quiet.example' })), []);
  assert.deepEqual(ids(event({ sender: 'x@c.example', destinationDomain: 'd.example' })), []);
  // A subdomain is not the domain.
  assert.deepEqual(ids(event({ sender: 'x@sub.a.example' })), []);
});

test('the idempotency key is stable per (subscription, event) and differs otherwise', () => {
  const k = idempotencyKey('default/a.example/all', 'e1');
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(idempotencyKey('default/a.example/all', 'e1'), k);
  assert.notEqual(idempotencyKey('default/a.example/all', 'e2'), k);
  assert.notEqual(idempotencyKey('default/b.example/audit', 'e1'), k);
});

test('a job carries the readable event and survives encoding; a foreign job is refused', () => {
  const e = event({
    kind: EventKind.BOUNCED,
    reply: { code: 550, enhanced: '5.1.1', text: 'no such user' },
    dsnMessageId: 'dsn1',
  });
  const [match] = matchEvent(index, e);
  assert.ok(match);
  const job = jobFor(match, e);
  assert.deepEqual(job, {
    id: idempotencyKey('default/a.example/all', 'e1'),
    type: 'bounced',
    domain: 'a.example',
    subscription: 'default/a.example/all',
    event: {
      eventId: 'e1',
      messageId: 'm1',
      at: '2026-11-23T12:00:00.123Z',
      sender: 'app@A.Example',
      recipients: ['r@elsewhere.example'],
      destinationDomain: 'elsewhere.example',
      attempt: 1,
      remoteHost: 'mx.elsewhere.example',
      reply: { code: 550, enhanced: '5.1.1', text: 'no such user' },
      error: '',
      dsnMessageId: 'dsn1',
    },
  });
  assert.deepEqual(decodeJob(encodeJob(job)), job);
  assert.equal(eventJson(event({})).reply, null);
  for (const bad of ['not json', '{}', JSON.stringify({ ...job, type: 'accepted' }), '\xff']) {
    assert.throws(() => decodeJob(new TextEncoder().encode(bad)), WebhookError);
  }
});

test('retry delays follow the schedule (the last repeats) and stop at the maximum age', () => {
  const policy = { delaysMs: [10, 30, 120], maxAgeMs: 1_000, jitter: 0 };
  assert.deepEqual(
    [1, 2, 3, 4, 9].map((a) => retryDelay(policy, a, 0)),
    [10, 30, 120, 120, 120],
  );
  assert.equal(retryDelay(policy, 3, 880), 120);
  assert.equal(retryDelay(policy, 3, 881), undefined);
  const jittered = { ...policy, jitter: 0.1 };
  assert.equal(
    retryDelay(jittered, 3, 0, () => 0),
    108,
  );
  assert.equal(
    retryDelay(jittered, 3, 0, () => 1),
    132,
  );
});

test('options are checked at start with the reason', () => {
  const defaults = resolveOptions();
  assert.equal(defaults.requestTimeoutMs, 10_000);
  assert.deepEqual(defaults.retry.delaysMs, [10_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]);
  assert.equal(defaults.retry.maxAgeMs, 86_400_000);
  assert.equal(defaults.senderAckWaitMs, 30_000);
  for (const [options, reason] of [
    [{ retryDelaysMs: [] }, /retryDelaysMs/],
    [{ maxAgeMs: 30 * 86_400_000 }, /maxAgeMs must be positive and at most/],
    [{ jitter: 1 }, /jitter/],
    [{ requestTimeoutMs: 60_000, senderAckWaitMs: 30_000 }, /senderAckWaitMs must be longer/],
    [{ fanoutAckWaitMs: 600_000 }, /duplicate window/],
  ] as const) {
    assert.throws(
      () => resolveOptions(options),
      (error: unknown) =>
        error instanceof WebhookError &&
        error.code === 'PETREL_ERR_WEBHOOK_OPTIONS' &&
        reason.test(error.message),
    );
  }
});
