import {
  type Context,
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  type Span,
  trace,
} from '@opentelemetry/api';

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
export function contextFrom(carried: W3CTraceContext | undefined): Context {
  if (!carried?.traceparent) return context.active();
  return propagation.extract(context.active(), carried);
}

let recorded = true;

/** Told by the SDK wiring (sdk.ts) whether any span can be recorded: not without a collector. */
export function setSpansRecorded(value: boolean): void {
  recorded = value;
}

const NOT_RECORDED: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Runs fn in an active span that continues a carried trace context (the consumer side of the
 * queue). When no span can be recorded, no span is built and no context entered: the traceparent
 * parse, the sampler and an AsyncLocalStorage run per message were ~4 % of the delivery worker's
 * CPU, for spans that were dropped. fn ends the span.
 */
export async function inSpan<T>(
  name: string,
  carried: W3CTraceContext | undefined,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (!recorded) return await fn(NOT_RECORDED);
  return await tracer.startActiveSpan(name, {}, contextFrom(carried), fn);
}
