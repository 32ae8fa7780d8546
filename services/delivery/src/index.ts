export { type DeliveryConfig, DeliveryConfigSchema, deliveryConfigFromEnv } from './config.ts';
export type { DestinationStatus } from './limiter.ts';
export { type MxHost, type Route, resolveRoute } from './mx.ts';
export {
  DESTINATION_STATUS_SUBJECT,
  DESTINATIONS_BUCKET,
  DestinationControls,
  type DestinationStatusReply,
  openDestinationsKv,
  QUEUE_OPERATIONS_SUBJECT,
  QueueOperation,
  QueueOperationErrorCode,
  type QueueOperationReply,
  type QueueOperationRequest,
} from './operations.ts';
export { type Routing, route, type Target } from './router.ts';
export { DEFAULT_RETRY_POLICY, nextStep, type RetryPolicy } from './schedule.ts';
export {
  MAX_SUPPRESSION_MS,
  openSuppressionsKv,
  SUPPRESSIONS_BUCKET,
  type Suppression,
  SuppressionList,
  suppressionAddress,
  suppressionKey,
} from './suppressions.ts';
export { DeliveryWorker, type FailedRecipient, type WorkerDeps } from './worker.ts';
