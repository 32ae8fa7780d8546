/**
 * The delivery worker against real peers: nats-server with JetStream (entries published as the
 * ingress does), dnsmasq answering MX/A lookups, and the harness's SMTP sinks on loopback
 * addresses sharing one port (the MX port, as `petrel dev --mx-port` sets it).
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { test } from 'node:test';
import { Kvm } from '@nats-io/kv';
import { DomainIndex, parseRuntimeConfig } from '@petrel/config';
import { runtimeDomain } from '@petrel/config/testing';
import { DnsResolver, TlsaResolver } from '@petrel/dns';
import { startWireDnsServer, zoneHandler } from '@petrel/dns/testing';
import { freePort } from '@petrel/localenv';
import { EventKind, timestampFromDate } from '@petrel/proto';
import {
  AckPublisher,
  decodeEvents,
  newEnvelope,
  newMessageId,
  publishMessage,
  STREAM_EVENTS,
} from '@petrel/queue';
import { startQueue } from '@petrel/queue/testing';
import { ServerSession } from '@petrel/smtp';
import { createLogger } from '@petrel/telemetry';
import {
  type DnsRecord,
  issueCertificate,
  type ReceivedMessage,
  type SinkBehaviour,
  startDnsServer,
  startPostfix,
  startSmtpSink,
  verifyWithDkimpy,
  waitFor,
} from '@petrel/test-harness';
import { type DsnHook, dsnSender } from './bounce.ts';
import { DeliveryConfigSchema } from './config.ts';
import { generateDkimKey } from './dkim.ts';
import { DestinationLimiter } from './limiter.ts';
import { lookupVia, MtaSts } from './mta-sts.ts';
import {
  DESTINATIONS_BUCKET,
  DestinationControls,
  QUEUE_OPERATIONS_SUBJECT,
  QueueOperationErrorCode,
  serveQueueOperations,
} from './operations.ts';
import { DEFAULT_RETRY_POLICY } from './schedule.ts';
import { SUPPRESSIONS_BUCKET, SuppressionList } from './suppressions.ts';
import { DeliveryWorker, type FailedRecipient } from './worker.ts';

type After = (fn: () => Promise<void> | void) => void;

const WAIT = { timeoutMs: 20_000 };

interface Setup {
  port: number;
  publish(
    domain: string,
    recipients: string[],
    body?: string,
    notify?: string[],
    senderDomain?: string,
    smtputf8?: boolean,
  ): Promise<string>;
  dns: { host: string; port: number };
  bounces: { messageId: string; failed: FailedRecipient[] }[];
  events(): Promise<
    { kind: EventKind; recipients: string[]; messageId: string; remoteHost: string; error: string }[]
  >;
  suppressions: SuppressionList;
  /** Sends a queue operation request as an operator's tool would. */
  operate(
    op: string,
    request: unknown,
  ): Promise<{ ok: boolean; count?: number; code?: string; error?: string }>;
}

/**
 * An MX on `host:port`: our own SMTP server with STARTTLS, the certificate chosen per connection
 * by `certificate()`. Resolves to the recipients it accepted, in order.
 */
async function tlsMx(
  t: { after: After },
  host: string,
  port: number,
  hostname: string,
  certificate: () => { cert: Buffer; key: Buffer },
): Promise<string[]> {
  const delivered: string[] = [];
  const mx = createNetServer((socket) => {
    const session = new ServerSession(
      socket,
      'mx',
      {
        rcptTo: () => undefined,
        message: async (_s, tx) => {
          delivered.push(...tx.recipients.map((r) => r.mailbox.address));
          return { code: 250, enhanced: '2.0.0', lines: ['OK'] } as never;
        },
      },
      { hostname, maxMessageSize: 1_000_000, tls: () => certificate() },
    );
    void session.run().catch(() => undefined);
  });
  mx.listen(port, host);
  await once(mx, 'listening');
  t.after(() => new Promise<void>((resolve) => mx.close(() => resolve())));
  return delivered;
}

/** A runtime-config domain with outbound DKIM keys and nothing else. */
function managedDomain(
  domain: string,
  dkimKeys: { selector: string; algorithm: string; privateKeyPem: string }[],
  outbound: { ratePerSecond?: number; queueLifetimeMs?: number } = {},
): unknown {
  return runtimeDomain(domain, { source: `default/${domain}`, dkimKeys, outbound });
}

async function setup(
  t: { after: After },
  records: DnsRecord[],
  options: {
    retryDelays?: string;
    lifetime?: string;
    realDsn?: boolean;
    delayNoticeAfterMs?: number;
    domains?: unknown[];
    mtaSts?: MtaSts;
    tlsCa?: Buffer;
    mxPort?: number;
    policies?: unknown[];
    dane?: TlsaResolver;
    concurrency?: number;
  } = {},
): Promise<Setup> {
  const after: After = (fn) => t.after(fn);
  const { url: natsUrl, nc, js, jsm } = await startQueue(t, { ackWaitMs: 10_000 });
  const dns = await startDnsServer({ records, after });
  const port = options.mxPort ?? (await freePort());
  const suppressions = new SuppressionList(await new Kvm(js).create(SUPPRESSIONS_BUCKET));
  await suppressions.start();
  after(() => suppressions.stop());
  const bounces: Setup['bounces'] = [];
  const index = new DomainIndex(
    parseRuntimeConfig(
      { version: 1, generation: 1, domains: options.domains ?? [], policies: options.policies ?? [] },
      'test',
    ),
  );
  const controls = new DestinationControls(await new Kvm(js).create(DESTINATIONS_BUCKET));
  await controls.start();
  after(() => controls.stop());
  const dsn = dsnSender({
    js,
    nc,
    domains: () => index,
    hostname: 'worker.test',
    log: createLogger('dsn-test', { level: 'silent' }),
  });
  const onBounce: DsnHook = async (envelope, failed, report) => {
    // Delay DSNs always go out for real; failures are recorded, and sent when the test asks.
    if (report?.action === 'delayed') return await dsn(envelope, failed, report);
    bounces.push({ messageId: envelope.messageId, failed: [...failed] });
    return options.realDsn ? await dsn(envelope, failed, report) : undefined;
  };
  const operations = serveQueueOperations({
    nc,
    js,
    jsm,
    controls,
    log: createLogger('ops-test', { level: 'silent' }),
    bounces: onBounce,
  });
  after(() => operations.unsubscribe());
  const config = DeliveryConfigSchema.parse({
    natsUrl,
    runtimeConfigPath: '/nonexistent',
    hostname: 'worker.test',
    retryDelaysMs: options.retryDelays ?? '1s',
    queueLifetimeMs: options.lifetime ?? '5d',
    connectTimeoutMs: 2000,
    ackWaitMs: 10_000,
    mxPort: port,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
  });
  const publisher = new AckPublisher(nc);
  const worker = new DeliveryWorker({
    js,
    publisher,
    log: createLogger('delivery-test', { level: 'silent' }),
    domains: () => index,
    config,
    resolver: new DnsResolver({ servers: [dns.address] }),
    retryPolicy: {
      ...DEFAULT_RETRY_POLICY,
      delaysMs: config.retryDelaysMs,
      lifetimeMs: config.queueLifetimeMs,
      jitter: 0,
      ...(options.delayNoticeAfterMs === undefined ? {} : { delayNoticeAfterMs: options.delayNoticeAfterMs }),
    },
    suppressions,
    controls,
    ...(options.mtaSts ? { mtaSts: options.mtaSts } : {}),
    ...(options.tlsCa ? { tlsCa: options.tlsCa } : {}),
    bounces: onBounce,
    limiter: new DestinationLimiter(),
    ...(options.dane ? { dane: options.dane } : {}),
  });
  const running = worker.run();
  after(async () => {
    await worker.stop(5_000);
    await running.catch(() => undefined);
    publisher.close();
  });
  return {
    port,
    dns: { host: dns.host, port: dns.port },
    bounces,
    suppressions,
    async publish(
      domain,
      recipients,
      body = 'Subject: test\r\n\r\nhello\r\n',
      notify = [],
      senderDomain = '',
      smtputf8 = false,
    ) {
      const messageId = newMessageId();
      await publishMessage(js, nc, {
        messageId,
        envelopes: [
          newEnvelope({
            messageId,
            sender: 'sender@origin.example',
            destinationDomain: domain,
            recipients: recipients.map((address) => ({ address, notify })),
            receivedAt: timestampFromDate(new Date()),
            senderDomain,
            smtputf8,
          }),
        ],
        body: Buffer.from(body),
        timeoutMs: 5000,
      });
      return messageId;
    },
    async operate(op, request) {
      const m = await nc.request(`${QUEUE_OPERATIONS_SUBJECT}.${op}`, JSON.stringify(request), {
        timeout: 10_000,
      });
      return m.json();
    },
    async events() {
      const out = [];
      const { state } = await jsm.streams.info(STREAM_EVENTS);
      for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(STREAM_EVENTS, { seq });
        if (m === null) continue;
        for (const e of decodeEvents(m.subject, m.data)) {
          out.push({
            kind: e.kind,
            recipients: e.recipients,
            messageId: e.messageId,
            remoteHost: e.remoteHost,
            error: e.error,
          });
        }
      }
      return out;
    },
  };
}

async function sinkOn(
  t: { after: After },
  host: string,
  port: number,
  behaviour?: (r: string) => SinkBehaviour,
) {
  const sink = await startSmtpSink({ host, port, ...(behaviour ? { behaviour } : {}) });
  t.after(() => sink.close());
  return sink;
}

test('a busy shard keeps being pulled while the idle shards wait for room (regression: it starved)', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'busy.test', exchange: 'mx.busy.test', priority: 10 },
      { type: 'A', name: 'mx.busy.test', address: '127.0.0.22' },
    ],
    { concurrency: 2 },
  );
  // 150 ms per message over two deliveries at a time: the run spans several 5-second pull
  // expiries of the 63 idle shards, whose loops used to queue ahead of the busy one for good.
  const sink = await sinkOn(t, '127.0.0.22', q.port, () => ({ kind: 'slow', delayMs: 150 }));
  const COUNT = 100;
  for (let i = 0; i < COUNT; i += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, j) => q.publish('busy.test', [`u${i + j}@busy.test`])));
  }
  await waitFor(() => (sink.messages.length >= COUNT ? true : undefined), {
    timeoutMs: 60_000,
    intervalMs: 100,
    message: `${COUNT} delivered`,
  });
  assert.equal(new Set(sink.messages.map((m) => m.rcptTo[0])).size, COUNT);
});

test('MX hosts are tried in preference order: the first refuses connections, the second delivers', async (t) => {
  const q = await setup(t, [
    { type: 'MX', name: 'two-mx.test', exchange: 'mx1.two-mx.test', priority: 10 },
    { type: 'MX', name: 'two-mx.test', exchange: 'mx2.two-mx.test', priority: 20 },
    { type: 'A', name: 'mx1.two-mx.test', address: '127.0.0.2' },
    { type: 'A', name: 'mx2.two-mx.test', address: '127.0.0.3' },
  ]);
  // Nothing listens on 127.0.0.2: connection refused.
  const second = await sinkOn(t, '127.0.0.3', q.port);
  const id = await q.publish('two-mx.test', ['user@two-mx.test']);
  const [message] = await waitFor(() => (second.messages.length > 0 ? second.messages : undefined), {
    timeoutMs: 20_000,
  });
  assert.deepEqual(message?.rcptTo, ['user@two-mx.test']);
  assert.equal(message?.mailFrom, 'sender@origin.example');
  const delivered = await waitFor(
    async () => (await q.events()).find((e) => e.kind === EventKind.DELIVERED && e.messageId === id),
    WAIT,
  );
  assert.equal(delivered.remoteHost, `mx2.two-mx.test:${q.port}`);
});

test('no MX: the domain’s own address is the implicit MX (RFC 5321 §5.1)', async (t) => {
  const q = await setup(t, [{ type: 'A', name: 'implicit.test', address: '127.0.0.4' }]);
  const sink = await sinkOn(t, '127.0.0.4', q.port);
  await q.publish('implicit.test', ['a@implicit.test']);
  await waitFor(() => (sink.messages.length > 0 ? true : undefined), { timeoutMs: 20_000 });
});

test('null MX bounces at once with 5.1.10 and no connection (RFC 7505)', async (t) => {
  const q = await setup(t, [
    { type: 'MX', name: 'nullmx.test', exchange: '.', priority: 0 },
    { type: 'A', name: 'nullmx.test', address: '127.0.0.5' },
  ]);
  const sink = await sinkOn(t, '127.0.0.5', q.port);
  const id = await q.publish('nullmx.test', ['a@nullmx.test']);
  const bounce = await waitFor(() => q.bounces.find((b) => b.messageId === id), WAIT);
  assert.equal(bounce.failed[0]?.reply?.code, 556);
  assert.equal(bounce.failed[0]?.reply?.enhanced, '5.1.10');
  assert.equal(sink.connections, 0);
});

test('4xx then success: the deferred entry waits as a schedule and is delivered on retry', async (t) => {
  const q = await setup(t, [
    { type: 'MX', name: 'later.test', exchange: 'mx.later.test', priority: 10 },
    { type: 'A', name: 'mx.later.test', address: '127.0.0.6' },
  ]);
  // The first attempt is refused, the next accepted: decided by the attempt, not by when the
  // test sees the deferral (a retry due 1-2 s later could come before a slow test flipped a flag).
  let rcpts = 0;
  const sink = await sinkOn(t, '127.0.0.6', q.port, () =>
    rcpts++ === 0 ? { kind: 'tempfail' } : { kind: 'accept' },
  );
  const id = await q.publish('later.test', ['a@later.test']);
  await waitFor(
    async () => (await q.events()).find((e) => e.kind === EventKind.DEFERRED && e.messageId === id),
    WAIT,
  );
  await waitFor(() => (sink.messages.length > 0 ? true : undefined), { timeoutMs: 20_000 });
  // The sink has the message once it answers the final dot; the worker records the delivery
  // after reading that answer, so wait for the event rather than read the log at once.
  const kinds = await waitFor(async () => {
    const of = (await q.events()).filter((e) => e.messageId === id).map((e) => e.kind);
    return of.includes(EventKind.DELIVERED) ? of : undefined;
  }, WAIT);
  assert.deepEqual(kinds, [EventKind.DEFERRED, EventKind.DELIVERED]);
  assert.equal(sink.messages.length, 1);
});

test('partial failure: delivered, deferred and refused recipients of one transaction each settle their way', async (t) => {
  const q = await setup(t, [
    { type: 'MX', name: 'mixed.test', exchange: 'mx.mixed.test', priority: 10 },
    { type: 'A', name: 'mx.mixed.test', address: '127.0.0.7' },
  ]);
  let tempfail = true;
  const sink = await sinkOn(t, '127.0.0.7', q.port, (r) =>
    r.startsWith('gone')
      ? { kind: 'permfail' }
      : r.startsWith('busy') && tempfail
        ? { kind: 'tempfail' }
        : { kind: 'accept' },
  );
  const id = await q.publish('mixed.test', ['ok@mixed.test', 'busy@mixed.test', 'gone@mixed.test']);
  const bounce = await waitFor(() => q.bounces.find((b) => b.messageId === id), WAIT);
  assert.deepEqual(
    bounce.failed.map((f) => f.address),
    ['gone@mixed.test'],
  );
  assert.equal(bounce.failed[0]?.reply?.code, 550);
  await waitFor(() => (sink.messagesTo('ok@mixed.test').length > 0 ? true : undefined), WAIT);
  tempfail = false;
  await waitFor(() => (sink.messagesTo('busy@mixed.test').length > 0 ? true : undefined), {
    timeoutMs: 20_000,
  });
  // Each recipient got exactly one copy.
  assert.equal(sink.messagesTo('ok@mixed.test').length, 1);
  assert.equal(sink.messagesTo('busy@mixed.test').length, 1);
  // 5.1.1 says the address is gone: it is suppressed, and the next message to it bounces locally.
  assert.equal((await q.suppressions.get('gone@mixed.test'))?.status, '5.1.1');
  const before = sink.connections;
  const next = await q.publish('mixed.test', ['gone@mixed.test']);
  const local = await waitFor(() => q.bounces.find((b) => b.messageId === next), WAIT);
  assert.match(local.failed[0]?.reply?.lines.join(' ') ?? '', /suppressed/);
  assert.equal(sink.connections, before, 'no connection for a suppressed recipient');
});

test('a sender MailDomain with its own queue lifetime: its mail expires on that lifetime, not the worker default', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'gone.test', exchange: 'mx.gone.test', priority: 10 },
      { type: 'A', name: 'mx.gone.test', address: '127.0.0.21' },
    ],
    { retryDelays: '1s', domains: [managedDomain('tenant.test', [], { queueLifetimeMs: 3000 })] },
  );
  const id = await q.publish('gone.test', ['a@gone.test'], undefined, [], 'tenant.test');
  const bounce = await waitFor(() => q.bounces.find((b) => b.messageId === id), { timeoutMs: 30_000 });
  assert.equal(bounce.failed[0]?.expired, true);
  assert.equal(bounce.failed[0]?.reply?.enhanced, '5.4.7');
});

test('a message that needs SMTPUTF8, to a server without it: bounced with 5.6.7, nothing sent (RFC 6531 §3.7.4.1)', async (t) => {
  const q = await setup(t, [
    { type: 'MX', name: 'old.test', exchange: 'mx.old.test', priority: 10 },
    { type: 'A', name: 'mx.old.test', address: '127.0.0.16' },
  ]);
  const sink = await startSmtpSink({ host: '127.0.0.16', port: q.port, noSmtpUtf8: true });
  t.after(() => sink.close());
  const id = await q.publish(
    'old.test',
    ['josé@old.test'],
    'Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nolá\r\n',
    [],
    '',
    true,
  );
  const bounce = await waitFor(() => q.bounces.find((b) => b.messageId === id), WAIT);
  assert.equal(bounce.failed[0]?.address, 'josé@old.test');
  assert.equal(bounce.failed[0]?.reply?.code, 553);
  assert.equal(bounce.failed[0]?.reply?.enhanced, '5.6.7');
  assert.equal(sink.messages.length, 0);
  // The bounce hook runs before the settle's events are published: wait for the event.
  const events = await waitFor(async () => {
    const of = (await q.events()).filter((e) => e.messageId === id);
    return of.length > 0 ? of : undefined;
  }, WAIT);
  assert.deepEqual(
    events.map((e) => e.kind),
    [EventKind.BOUNCED],
  );
});

test('deferred past the queue lifetime: the recipients expire with 5.4.7', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'dead.test', exchange: 'mx.dead.test', priority: 10 },
      { type: 'A', name: 'mx.dead.test', address: '127.0.0.8' },
    ],
    { retryDelays: '1s', lifetime: '3s' },
  );
  // No server at all: deferred, retried, then expired when the 3-second lifetime is over.
  const id = await q.publish('dead.test', ['a@dead.test']);
  const bounce = await waitFor(() => q.bounces.find((b) => b.messageId === id), { timeoutMs: 30_000 });
  assert.equal(bounce.failed[0]?.expired, true);
  assert.equal(bounce.failed[0]?.reply?.enhanced, '5.4.7');
});

test('queue operations: suspend holds a destination, resume and retry deliver its deferred mail at once', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'ops.test', exchange: 'mx.ops.test', priority: 10 },
      { type: 'A', name: 'mx.ops.test', address: '127.0.0.9' },
    ],
    { retryDelays: '1h' },
  );
  const sink = await sinkOn(t, '127.0.0.9', q.port);
  assert.deepEqual(await q.operate('suspend', { domain: 'OPS.test' }), { ok: true, count: 1 });
  const id = await q.publish('ops.test', ['a@ops.test']);
  // Held: it goes back to waiting without an attempt (a "not attempted" event, no connection).
  await waitFor(
    async () => ((await q.operate('retry', { domain: 'ops.test' })).count === 1 ? true : undefined),
    WAIT,
  );
  assert.equal(sink.connections, 0);
  assert.deepEqual(await q.operate('resume', { domain: 'ops.test' }), { ok: true, count: 1 });
  // Retried now (the suspension's recheck would be minutes away).
  await waitFor(async () => {
    await q.operate('retry', { domain: 'ops.test' });
    return sink.messages.length > 0 ? true : undefined;
  }, WAIT);
  // The delivery is recorded after the sink's answer to the final dot: wait for it.
  const events = await waitFor(async () => {
    const of = (await q.events()).filter((e) => e.messageId === id);
    return of.some((e) => e.kind === EventKind.DELIVERED) ? of : undefined;
  }, WAIT);
  assert.equal(events.at(-1)?.kind, EventKind.DELIVERED);
  const held = events.slice(0, -1);
  assert.ok(held.length >= 1, 'the hold is on the timeline');
  for (const e of held) {
    assert.equal(e.kind, EventKind.DEFERRED);
    assert.equal(e.remoteHost, '', 'no connection while suspended');
    assert.match(e.error, /not attempted: destination suspended/);
  }
});

test('queue operations: bounce returns deferred mail with a DSN, purge drops it, bad requests are refused', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'stuck.test', exchange: 'mx.stuck.test', priority: 10 },
      { type: 'A', name: 'mx.stuck.test', address: '127.0.0.10' },
    ],
    { retryDelays: '1h' },
  );
  // Nothing listens: every entry is deferred for an hour.
  const ids = [
    await q.publish('stuck.test', ['a@stuck.test']),
    await q.publish('stuck.test', ['b@stuck.test']),
  ];
  await waitFor(async () => {
    const deferred = (await q.events()).filter((e) => e.kind === EventKind.DEFERRED);
    return deferred.length === 2 ? true : undefined;
  }, WAIT);
  assert.deepEqual(await q.operate('bounce', { domain: 'stuck.test', reason: 'Destination retired' }), {
    ok: true,
    count: 2,
  });
  assert.deepEqual(q.bounces.map((b) => b.messageId).sort(), [...ids].sort());
  assert.match(q.bounces[0]?.failed[0]?.reply?.lines[0] ?? '', /Destination retired/);
  assert.deepEqual(await q.operate('purge', { domain: 'stuck.test' }), { ok: true, count: 0 });
  await q.publish('stuck.test', ['c@stuck.test']);
  await waitFor(async () => {
    const deferred = (await q.events()).filter((e) => e.kind === EventKind.DEFERRED);
    return deferred.length === 3 ? true : undefined;
  }, WAIT);
  assert.deepEqual(await q.operate('purge', { domain: 'stuck.test' }), { ok: true, count: 1 });
  assert.equal(q.bounces.length, 2, 'purge sends no DSN');
  for (const [op, request] of [
    ['retry', { domain: 'bad domain' }],
    ['retry', {}],
    ['frobnicate', { domain: 'stuck.test' }],
    ['suspend', { domain: 'stuck.test', until: 'tomorrow-ish' }],
  ] as const) {
    const answer = await q.operate(op, request);
    assert.equal(answer.ok, false, `${op} ${JSON.stringify(request)}`);
    assert.equal(answer.code, QueueOperationErrorCode.BadRequest);
  }
});

test('a refused recipient gets the sender a DKIM-signed RFC 3464 DSN from the null sender, delivered to the sender’s MX', async (t) => {
  const ed = await generateDkimKey('ed25519-sha256');
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'refusing.test', exchange: 'mx.refusing.test', priority: 10 },
      { type: 'A', name: 'mx.refusing.test', address: '127.0.0.11' },
      { type: 'MX', name: 'origin.example', exchange: 'mx.origin.example', priority: 10 },
      { type: 'A', name: 'mx.origin.example', address: '127.0.0.12' },
      { type: 'TXT', name: 'dsn._domainkey.worker.test', value: ed.txt },
    ],
    {
      realDsn: true,
      // The relay's own host name is a managed domain with a key: it signs the DSNs it sends.
      domains: [
        managedDomain('worker.test', [
          { selector: 'dsn', algorithm: 'ed25519-sha256', privateKeyPem: ed.privateKeyPem },
        ]),
      ],
    },
  );
  await sinkOn(t, '127.0.0.11', q.port, () => ({
    kind: 'permfail',
    code: 550,
    text: '5.1.1 no such user here',
  }));
  const senderMx = await sinkOn(t, '127.0.0.12', q.port);
  await q.publish('refusing.test', ['nobody@refusing.test'], 'Subject: will bounce\r\n\r\nbody\r\n');
  const [dsn] = await waitFor(() => (senderMx.messages.length > 0 ? senderMx.messages : undefined), WAIT);
  assert.equal(dsn?.mailFrom, '', 'DSNs come from the null sender');
  assert.deepEqual(dsn?.rcptTo, ['sender@origin.example']);
  const text = dsn?.data.toString('utf8') ?? '';
  assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
  assert.match(text, /Final-Recipient: rfc822;nobody@refusing\.test/);
  assert.match(text, /Diagnostic-Code: smtp; 550 5\.1\.1 no such user here/);
  assert.match(text, /Remote-MTA: dns; mx\.refusing\.test/);
  assert.match(text, /Subject: will bounce/);
  assert.match(text, /From: Mail Delivery System <MAILER-DAEMON@worker\.test>/);
  const verified = await verifyWithDkimpy(dsn?.data ?? Buffer.alloc(0), q.dns);
  assert.deepEqual(
    verified.results.map((r) => [r.algorithm, r.selector, r.ok]),
    [['ed25519-sha256', 'dsn', true]],
  );
});

test('NOTIFY=DELAY: one delay DSN while the message keeps being retried, never a second', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'slowpoke.test', exchange: 'mx.slowpoke.test', priority: 10 },
      { type: 'A', name: 'mx.slowpoke.test', address: '127.0.0.13' },
      { type: 'MX', name: 'origin.example', exchange: 'mx.origin.example', priority: 10 },
      { type: 'A', name: 'mx.origin.example', address: '127.0.0.14' },
    ],
    { delayNoticeAfterMs: 0, retryDelays: '1s' },
  );
  let attempts = 0;
  await sinkOn(t, '127.0.0.13', q.port, () => {
    attempts++;
    return { kind: 'tempfail', code: 451, text: '4.4.1 try later' };
  });
  const senderMx = await sinkOn(t, '127.0.0.14', q.port);
  await q.publish('slowpoke.test', ['a@slowpoke.test'], undefined, ['DELAY', 'FAILURE']);
  const [dsn] = await waitFor(() => (senderMx.messages.length > 0 ? senderMx.messages : undefined), WAIT);
  const text = dsn?.data.toString('utf8') ?? '';
  assert.match(text, /Subject: Delayed Mail \(still being retried\)/);
  assert.match(text, /Action: delayed/);
  assert.match(text, /Status: 4\.4\.1/);
  assert.match(text, /Will-Retry-Until: /);
  // Two more attempts, still no second delay DSN.
  await waitFor(() => (attempts >= 3 ? true : undefined), WAIT);
  assert.equal(senderMx.messages.length, 1);
});

test('mail from a managed sender domain is DKIM-signed with its RSA and Ed25519 keys (verified by dkimpy)', async (t) => {
  const rsa = await generateDkimKey('rsa-sha256');
  const ed = await generateDkimKey('ed25519-sha256');
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'signed.test', exchange: 'mx.signed.test', priority: 10 },
      { type: 'A', name: 'mx.signed.test', address: '127.0.0.15' },
      { type: 'TXT', name: 'r2026._domainkey.origin.example', value: rsa.txt },
      { type: 'TXT', name: 'e2026._domainkey.origin.example', value: ed.txt },
    ],
    {
      domains: [
        managedDomain('origin.example', [
          { selector: 'r2026', algorithm: 'rsa-sha256', privateKeyPem: rsa.privateKeyPem },
          { selector: 'e2026', algorithm: 'ed25519-sha256', privateKeyPem: ed.privateKeyPem },
        ]),
      ],
    },
  );
  const sink = await sinkOn(t, '127.0.0.15', q.port);
  const body = 'From: sender@origin.example\r\nTo: a@signed.test\r\nSubject: signed\r\n\r\nsigned body\r\n';
  await q.publish('signed.test', ['a@signed.test'], body, [], 'origin.example');
  // Mail from elsewhere (no managed sender domain) goes unsigned.
  await q.publish('signed.test', ['b@signed.test'], body.replace('origin.example', 'elsewhere.example'));
  const [signed] = await waitFor(
    () => (sink.messagesTo('a@signed.test').length > 0 ? sink.messagesTo('a@signed.test') : undefined),
    WAIT,
  );
  const [unsigned] = await waitFor(
    () => (sink.messagesTo('b@signed.test').length > 0 ? sink.messagesTo('b@signed.test') : undefined),
    WAIT,
  );
  assert.doesNotMatch(unsigned?.data.toString() ?? '', /DKIM-Signature/i);
  const verified = await verifyWithDkimpy(signed?.data ?? Buffer.alloc(0), q.dns);
  assert.deepEqual(
    verified.results.map((r) => [r.algorithm, r.selector, r.ok]),
    [
      ['rsa-sha256', 'r2026', true],
      ['ed25519-sha256', 'e2026', true],
    ],
  );
});

test('MTA-STS enforce: an MX whose certificate does not validate is not used (deferred); once fixed, delivered', async (t) => {
  const ca = issueCertificate(['mx.sts.test', 'mta-sts.sts.test', 'wrong.sts.test']);
  const wrong = issueCertificate(['wrong.sts.test'], ca);
  const right = issueCertificate(['mx.sts.test'], ca);
  let serving = wrong;
  // The MX: our own SMTP server with STARTTLS, certificate chosen per connection.
  const port = await freePort();
  const delivered = await tlsMx(t, '127.0.0.16', port, 'mx.sts.test', () => serving);
  // The policy host.
  const https = createHttpsServer({ cert: ca.cert, key: ca.key }, (_req, res) => {
    res
      .writeHead(200, { 'content-type': 'text/plain' })
      .end('version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n');
  });
  https.listen(0, '127.0.0.17');
  await once(https, 'listening');
  t.after(() => new Promise<void>((resolve) => https.close(() => resolve())));
  const records: DnsRecord[] = [
    { type: 'MX', name: 'sts.test', exchange: 'mx.sts.test', priority: 10 },
    { type: 'A', name: 'mx.sts.test', address: '127.0.0.16' },
    { type: 'TXT', name: '_mta-sts.sts.test', value: 'v=STSv1; id=2026' },
    { type: 'A', name: 'mta-sts.sts.test', address: '127.0.0.17' },
  ];
  const dns = await startDnsServer({ records, after: (fn) => t.after(fn) });
  const resolver = new DnsResolver({ servers: [dns.address] });
  const mtaSts = new MtaSts({
    txt: (n) => resolver.txt(n),
    lookup: lookupVia((n) => resolver.a(n)),
    ca: ca.cert,
    port: (https.address() as AddressInfo).port,
  });
  t.after(() => mtaSts.close());
  const q = await setup(t, records, { mtaSts, tlsCa: ca.cert, mxPort: port });
  const id = await q.publish('sts.test', ['a@sts.test']);
  const deferred = await waitFor(
    async () => (await q.events()).find((e) => e.kind === EventKind.DEFERRED && e.messageId === id),
    WAIT,
  );
  assert.ok(deferred);
  assert.deepEqual(delivered, [], 'nothing sent over a connection whose certificate failed');
  serving = right;
  await waitFor(() => (delivered.length > 0 ? true : undefined), WAIT);
  assert.deepEqual(delivered, ['a@sts.test']);
});

test('DANE (RFC 7672): an MX with secure TLSA records gets mail only over TLS matching them', async (t) => {
  // The MX presents a self-signed certificate for an unrelated name: WebPKI would refuse it, the
  // DANE-EE record of good.test vouches for it, the record of bad.test names another key.
  const served = issueCertificate(['unrelated.example']);
  const other = issueCertificate(['other.example']);
  const port = await freePort();
  const delivered = await tlsMx(t, '127.0.0.19', port, 'mx.dane.test', () => served);
  const spki311 = (pem: Buffer) => ({
    type: 'TLSA' as const,
    usage: 3,
    selector: 1,
    matchingType: 1,
    data: createHash('sha256')
      .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
      .digest(),
  });
  // The trusted validating resolver: sets AD on these answers.
  const validating = await startWireDnsServer(
    zoneHandler([
      { name: `_${port}._tcp.mx.good.test`, data: spki311(served.cert) },
      { name: `_${port}._tcp.mx.bad.test`, data: spki311(other.cert) },
    ]),
    { after: (fn) => t.after(fn) },
  );
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'good.test', exchange: 'mx.good.test', priority: 10 },
      { type: 'A', name: 'mx.good.test', address: '127.0.0.19' },
      { type: 'MX', name: 'bad.test', exchange: 'mx.bad.test', priority: 10 },
      { type: 'A', name: 'mx.bad.test', address: '127.0.0.19' },
    ],
    { mxPort: port, dane: new TlsaResolver({ servers: [validating.address] }), retryDelays: '1h' },
  );
  const good = await q.publish('good.test', ['a@good.test']);
  const bad = await q.publish('bad.test', ['b@bad.test']);
  await waitFor(() => (delivered.includes('a@good.test') ? true : undefined), WAIT);
  const events = await waitFor(async () => {
    const all = await q.events();
    // Both outcomes: the sink may have the message before the worker's event is published.
    const settled =
      all.some((e) => e.messageId === bad && e.kind === EventKind.DEFERRED) &&
      all.some((e) => e.messageId === good);
    return settled ? all : undefined;
  }, WAIT);
  assert.deepEqual(delivered, ['a@good.test'], 'nothing sent over TLS the TLSA records do not match');
  assert.equal(events.find((e) => e.messageId === good)?.kind, EventKind.DELIVERED);
  assert.match(events.find((e) => e.messageId === bad)?.error ?? '', /TLSA|DANE|tls/i);
});

test('a DeliveryPolicy that requires TLS: a destination without STARTTLS gets nothing, the mail waits', async (t) => {
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'plain.test', exchange: 'mx.plain.test', priority: 10 },
      { type: 'A', name: 'mx.plain.test', address: '127.0.0.20' },
    ],
    {
      retryDelays: '1h',
      policies: [
        {
          source: 'default/plain',
          domains: ['plain.test'],
          mxHostSuffixes: [],
          tls: 'encrypted',
          adaptive: false,
        },
      ],
    },
  );
  // The harness sink offers no STARTTLS.
  const sink = await sinkOn(t, '127.0.0.20', q.port);
  const id = await q.publish('plain.test', ['a@plain.test']);
  const deferred = await waitFor(
    async () => (await q.events()).find((e) => e.messageId === id && e.kind === EventKind.DEFERRED),
    WAIT,
  );
  assert.match(deferred.error, /TLS required/);
  assert.equal(sink.messages.length, 0);
});

test('a real Postfix as the MX: delivered over STARTTLS with a certificate validated for the MX name', {
  timeout: 120_000,
}, async (t) => {
  const arrived = Promise.withResolvers<ReceivedMessage>();
  const sink = await startSmtpSink({ onMessage: (m) => arrived.resolve(m) });
  t.after(() => sink.close());
  const ca = issueCertificate(['Petrel Test CA']);
  const leaf = issueCertificate(['mx.pf.test'], ca);
  const postfix = await startPostfix(t.after.bind(t), {
    relayHost: sink.host,
    relayPort: sink.port,
    tls: 'none',
    smtpdTls: { chain: Buffer.concat([leaf.cert, ca.cert]), key: leaf.key },
  });
  const q = await setup(
    t,
    [
      { type: 'MX', name: 'pf.test', exchange: 'mx.pf.test', priority: 10 },
      { type: 'A', name: 'mx.pf.test', address: '127.0.0.1' },
    ],
    {
      mxPort: postfix.submitPort,
      tlsCa: ca.cert,
      policies: [
        { source: 'default/pf', domains: ['pf.test'], mxHostSuffixes: [], tls: 'verified', adaptive: false },
      ],
    },
  );
  const id = await q.publish('pf.test', ['a@pf.test', 'b@pf.test'], 'Subject: to postfix\r\n\r\nbody\r\n');
  const m = await arrived.promise;
  assert.deepEqual([...m.rcptTo].sort(), ['a@pf.test', 'b@pf.test']);
  // Postfix's Received field says the message came over TLS (ESMTPS, RFC 3848).
  assert.match(m.data.toString('utf8'), /by postfix\.test \(Postfix\) with ESMTPS /);
  const delivered = await waitFor(
    async () => (await q.events()).find((e) => e.messageId === id && e.kind === EventKind.DELIVERED),
    WAIT,
  );
  assert.equal(delivered.remoteHost, `mx.pf.test:${postfix.submitPort}`);
  await postfix.stop();
});
