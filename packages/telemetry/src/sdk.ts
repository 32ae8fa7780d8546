/**
 * The OpenTelemetry SDK, for service entry points only (libraries use @opentelemetry/api).
 * Always on: W3C trace-context propagation and real span ids, so that every queued message
 * carries its trace context into the queue, the delivery events and the state store. Spans are
 * recorded and exported over OTLP/HTTP when the standard variables name a collector
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_TRACES_EXPORTER=none
 * turns export off; OTEL_SERVICE_NAME overrides the service name).
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BatchSpanProcessor,
  type SpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { setSpansRecorded } from './trace.ts';

export interface Tracing {
  /** Whether spans leave the process (a collector is configured). */
  readonly exporting: boolean;
  /** Flushes pending spans and stops; call on shutdown. */
  shutdown(): Promise<void>;
}

export function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Tracing {
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  const exporting = Boolean(endpoint) && env['OTEL_TRACES_EXPORTER'] !== 'none';
  const processors: SpanProcessor[] = exporting
    ? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: 1_000 })]
    : [];
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': env['OTEL_SERVICE_NAME'] || `petrel-${service}`,
      'service.namespace': 'petrel',
    }),
    spanProcessors: processors,
    // Without a collector, spans would be built only to be dropped (4 % of the delivery
    // worker's CPU): they are not recorded, but still get real ids, so trace context still
    // flows into the queue and the events (flagged not sampled). Every component should be
    // given the same OTEL_* settings: a component that exports follows its parent's flag.
    ...(exporting ? {} : { sampler: new AlwaysOffSampler() }),
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  trace.setGlobalTracerProvider(provider);
  setSpansRecorded(exporting);
  return { exporting, shutdown: () => provider.shutdown() };
}
