import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { startTracing } from './sdk.ts';
import { inSpan } from './trace.ts';

// Its own file (its own process): the API keeps the first tracer provider a process registers.
test('inSpan with a collector: an active, recorded span continuing the carried trace, exported', async (t) => {
  // A stand-in collector on loopback: it keeps what is POSTed to it (OTLP/HTTP, JSON or protobuf).
  const bodies: Buffer[] = [];
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  collector.listen(0, '127.0.0.1');
  await once(collector, 'listening');
  t.after(() => collector.close());
  const { port } = collector.address() as AddressInfo;
  // The exporter reads the standard variable from the environment itself.
  process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] = `http://127.0.0.1:${port}`;
  const tracing = startTracing('test', process.env);
  assert.equal(tracing.exporting, true);

  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const carried = { traceparent: `00-${traceId}-b7ad6b7169203331-01`, tracestate: '' };
  const seen = await inSpan('smtp.deliver', carried, async (span) => {
    const result = {
      recording: span.isRecording(),
      active: trace.getActiveSpan() === span,
      traceId: span.spanContext().traceId,
    };
    span.end();
    return result;
  });
  assert.deepEqual(seen, { recording: true, active: true, traceId });
  await tracing.shutdown(); // flushes
  assert.ok(
    bodies.some((b) => b.includes(traceId) || b.includes(Buffer.from(traceId, 'hex'))),
    'the span reached the collector',
  );
});
