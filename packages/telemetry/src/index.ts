export { createLogger, type Logger } from './log.ts';
export {
  contextFrom,
  inSpan,
  setSpansRecorded,
  traceContextOf,
  tracer,
  type W3CTraceContext,
} from './trace.ts';
