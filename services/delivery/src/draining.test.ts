/**
 * A draining MailDomain (being deleted): the ingress no longer accepts mail for it, but what is
 * already queued is delivered as before, with its inbound routes and DKIM keys. Real nats-server,
 * dnsmasq, an SMTP sink as the route's host and dkimpy as the verifier.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DomainIndex } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { DnsResolver } from '@petrel/dns';
import { freePort } from '@petrel/localenv';
import { timestampFromDate } from '@petrel/proto';
import { AckPublisher, newEnvelope, newMessageId, publishMessage } from '@petrel/queue';
import { startQueue } from '@petrel/queue/testing';
import { createLogger } from '@petrel/telemetry';
import { startDnsServer, startSmtpSink, verifyWithDkimpy, waitFor } from '@petrel/test-harness';
import { DeliveryConfigSchema } from './config.ts';
import { generateDkimKey } from './dkim.ts';
import { DestinationLimiter } from './limiter.ts';
import { DEFAULT_RETRY_POLICY } from './schedule.ts';
import { DeliveryWorker } from './worker.ts';

test('mail queued for and from a draining domain still goes to its inbound route, DKIM-signed with its keys', async (t) => {
  const after = (fn: () => Promise<void> | void) => t.after(fn);
  const key = await generateDkimKey('ed25519-sha256');
  const port = await freePort();
  // No MX for gone.test: only its inbound route can deliver it.
  const dns = await startDnsServer({
    records: [{ type: 'TXT', name: 'd1._domainkey.gone.test', value: key.txt }],
    after,
  });
  const route = await startSmtpSink({ host: '127.0.0.31', port });
  t.after(() => route.close());
  const config = runtimeConfigOf([
    runtimeDomain('gone.test', {
      source: 'mail/gone',
      draining: true,
      inboundRoutes: [{ host: '127.0.0.31', port, protocol: 'smtp' }],
      dkimKeys: [{ selector: 'd1', algorithm: 'ed25519-sha256', privateKeyPem: key.privateKeyPem }],
    }),
  ]);
  const index = new DomainIndex(config);
  // The premise: the ingress would refuse it (not managed), the worker still knows it.
  assert.equal(index.managed('gone.test'), undefined);
  assert.ok(index.known('gone.test'));

  const { url: natsUrl, nc, js } = await startQueue(t, { ackWaitMs: 10_000 });
  const publisher = new AckPublisher(nc);
  const worker = new DeliveryWorker({
    js,
    publisher,
    log: createLogger('draining-test', { level: 'silent' }),
    domains: () => index,
    config: DeliveryConfigSchema.parse({
      natsUrl,
      runtimeConfigPath: '/nonexistent',
      hostname: 'worker.test',
      retryDelaysMs: '1s',
      connectTimeoutMs: 2000,
      ackWaitMs: 10_000,
      mxPort: port,
    }),
    resolver: new DnsResolver({ servers: [dns.address] }),
    retryPolicy: { ...DEFAULT_RETRY_POLICY, delaysMs: [1000], jitter: 0 },
    limiter: new DestinationLimiter(),
  });
  const running = worker.run();
  t.after(async () => {
    await worker.stop(5_000);
    await running.catch(() => undefined);
    publisher.close();
  });

  const messageId = newMessageId();
  await publishMessage(js, nc, {
    messageId,
    envelopes: [
      newEnvelope({
        messageId,
        sender: 'app@gone.test',
        destinationDomain: 'gone.test',
        recipients: [{ address: 'user@gone.test' }],
        receivedAt: timestampFromDate(new Date()),
        senderDomain: 'gone.test',
      }),
    ],
    body: Buffer.from('From: app@gone.test\r\nTo: user@gone.test\r\nSubject: last one\r\n\r\nbye\r\n'),
    timeoutMs: 5000,
  });
  const [message] = await waitFor(() => (route.messages.length > 0 ? route.messages : undefined), {
    timeoutMs: 20_000,
  });
  assert.deepEqual(message?.rcptTo, ['user@gone.test']);
  const verified = await verifyWithDkimpy(message?.data ?? Buffer.alloc(0), {
    host: dns.host,
    port: dns.port,
  });
  assert.deepEqual(
    verified.results.map((r) => [r.algorithm, r.selector, r.ok]),
    [['ed25519-sha256', 'd1', true]],
  );
});
