// One trace per message across processes: the ingress's smtp.accept span and the delivery
// worker's smtp.deliver span reach an OTLP/HTTP collector (a loopback HTTP server here) with one
// trace id, the delivery span a child of the accept span, and the delivery event carries the same
// trace context (for the recorder and the trace API).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { EventKind } from '@petrel/proto';
import { decodeEvents, EventSubject, STREAM_EVENTS } from '@petrel/queue';
import { SmtpClient } from '@petrel/smtp';
import { startNats, startPetrelDev, startSmtpSink, waitFor } from '@petrel/test-harness';
import { exampleConfigDir } from './fixtures.ts';

interface ExportedSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { name: string; traceId: string; spanId: string; parentSpanId?: string }[] }[];
  }[];
}

test('the ingress and delivery spans of a message reach the OTLP collector as one trace', async (t) => {
  const spans: ExportedSpan[] = [];
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpJson;
      for (const rs of body.resourceSpans ?? []) {
        const service =
          rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              service,
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  t.after(() => collector.close());
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const nats = await startNats(t.after.bind(t));
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    natsUrl: nats.url,
    smarthost: sink.address,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    },
  });
  const client = await SmtpClient.connect({ host: '127.0.0.1', port: dev.smtpPort, localName: 'trace.test' });
  const sent = await client.send(
    { from: 'sender@outside.example', to: ['rcpt@example.org'] },
    Buffer.from('Subject: traced\r\n\r\nbody\r\n'),
  );
  await client.quit();
  assert.equal(sent.dataReply?.code, 250);
  const found = await waitFor(
    () => {
      const accept = spans.find((s) => s.name === 'smtp.accept');
      const deliver = spans.find((s) => s.name === 'smtp.deliver' && s.traceId === accept?.traceId);
      return accept && deliver ? { accept, deliver } : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, message: 'both spans exported' },
  );
  assert.match(found.accept.traceId, /^[0-9a-f]{32}$/);
  assert.notEqual(found.accept.traceId, '0'.repeat(32));
  assert.equal(found.accept.service, 'petrel-ingress');
  assert.equal(found.deliver.service, 'petrel-delivery');
  assert.equal(found.deliver.parentSpanId, found.accept.spanId, 'delivery continues the accept span');
  // The delivered message is the one traced (one message in this relay).
  assert.equal(sink.messagesTo('rcpt@example.org').length, 1);
  const nc = await connect({ servers: nats.url });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const delivered = await waitFor(
    async () => {
      // Every batch, not only the last: the ingress's ACCEPTED batch may be published after the
      // delivery's when the ingress process is the slower of the two.
      const { state } = await jsm.streams.info(STREAM_EVENTS);
      for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(STREAM_EVENTS, { seq }).catch(() => null);
        if (m?.subject !== EventSubject.batch) continue;
        const e = decodeEvents(m.subject, m.data).find((x) => x.kind === EventKind.DELIVERED);
        if (e) return e;
      }
      return undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
  assert.equal(delivered.kind, EventKind.DELIVERED);
  assert.equal(
    delivered.trace?.traceparent.split('-')[1],
    found.accept.traceId,
    'the event carries the trace',
  );
});
