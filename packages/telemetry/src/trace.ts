import { context, propagation, type Span, trace } from '@opentelemetry/api';

/** Libraries use only the OpenTelemetry API; services wire the SDK in their entry points. */
export const tracer = trace.getTracer('petrel');

export interface W3CTraceContext {
  traceparent: string;
  tracestate: string;
}

/** The W3C trace context of a span, to carry it in the queued envelope (empty without an SDK). */
export function traceContextOf(span: Span): W3CTraceContext {
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return { traceparent: carrier['traceparent'] ?? '', tracestate: carrier['tracestate'] ?? '' };
}

/** The context to start a consumer-side span in, from a carried trace context. */
export function contextFrom(carried: W3CTraceContext | undefined) {
  if (!carried?.traceparent) return context.active();
  return propagation.extract(context.active(), carried);
}
