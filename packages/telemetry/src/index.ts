export { createLogger, type Logger } from './log.ts';
export { contextFrom, traceContextOf, tracer, type W3CTraceContext } from './trace.ts';
