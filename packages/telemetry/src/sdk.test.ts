import assert from 'node:assert/strict';
import { test } from 'node:test';
import { context, isSpanContextValid, propagation, TraceFlags, trace } from '@opentelemetry/api';
import { startTracing } from './sdk.ts';
import { inSpan } from './trace.ts';

test('without a collector, spans are not recorded but still get real ids that propagate', async () => {
  const tracing = startTracing('test', {});
  assert.equal(tracing.exporting, false);
  const span = trace.getTracer('t').startSpan('smtp.accept');
  assert.equal(span.isRecording(), false);
  const sc = span.spanContext();
  assert.ok(isSpanContextValid(sc), 'a trace id and span id even though nothing is recorded');
  assert.equal(sc.traceFlags & TraceFlags.SAMPLED, 0);
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  assert.equal(carrier['traceparent'], `00-${sc.traceId}-${sc.spanId}-00`);
  // A child continues the same trace.
  const child = trace.getTracer('t').startSpan('smtp.deliver', {}, trace.setSpan(context.active(), span));
  assert.equal(child.spanContext().traceId, sc.traceId);
  assert.notEqual(child.spanContext().spanId, sc.spanId);
  span.end();
  child.end();
  await tracing.shutdown();
});

test('inSpan builds no span without a collector (sdk-export.test.ts: with one)', async () => {
  const carried = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: '' };
  const off = startTracing('test', {});
  const seen = await inSpan('smtp.deliver', carried, async (span) => {
    span.setAttribute('petrel.attempt', 1); // a no-op, not an error
    return { recording: span.isRecording(), active: trace.getActiveSpan() === span };
  });
  assert.deepEqual(seen, { recording: false, active: false });
  await off.shutdown();
});
