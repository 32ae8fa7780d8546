export {
  DeliveryLog,
  type DeliveryLogOptions,
  type DeliveryLogRow,
  type DeliveryLogStats,
} from './delivery-log.ts';
export { WebhookError, WebhookErrorCode } from './errors.ts';
export type { FanOutStats } from './fanout.ts';
export type { WebhookLogger } from './logger.ts';
export { idempotencyKey, type Match, matchEvent, webhookEventType } from './matching.ts';
export type { WebhookOptions } from './options.ts';
export { eventJson, type WebhookBody, type WebhookEventJson } from './payload.ts';
export {
  DEFAULT_JITTER,
  DEFAULT_MAX_AGE_MS,
  DEFAULT_RETRY_DELAYS_MS,
  type RetryPolicy,
  retryDelay,
} from './retry.ts';
export { type SenderStats, WebhookHeader } from './sender.ts';
export {
  DEFAULT_TOLERANCE_S,
  SIGNATURE_HEADER,
  signatureHeader,
  type VerifyOptions,
  verifySignature,
} from './signature.ts';
export { startWebhooks, type WebhookStats, type Webhooks, type WebhooksDeps } from './start.ts';
export {
  CONSUMER_FANOUT,
  CONSUMER_SENDER,
  ensureWebhookStream,
  JOBS_DUPLICATE_WINDOW_MS,
  JOBS_MAX_AGE_MS,
  jobSubject,
  STREAM_WEBHOOKS,
  WEBHOOKS_SUBJECT_PREFIX,
  webhookStreamConfig,
} from './streams.ts';
