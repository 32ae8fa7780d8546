export { openApiDocument } from './api/openapi.ts';
export { type ApiDeps, ApiError, ApiErrorCode, apiRoutes, createApi } from './api/server.ts';
export { type ApiStores, openApiStores } from './api/stores.ts';
export { TokenSource } from './api/tokens.ts';
export type {
  Destination,
  DestinationResponse,
  Message,
  MessageResponse,
  MessagesResponse,
  OperationResult,
  QueueResponse,
  Recipient,
  RemovedResponse,
  Suppression,
  SuppressionResponse,
  SuppressionsResponse,
  TimelineEntry,
  WebhookDelivery,
} from './api/types.ts';
export { type RecorderConfig, RecorderConfigSchema, recorderConfigFromEnv } from './config.ts';
export { fold } from './fold.ts';
export { ensureRecorderConsumer, RECORDER_CONSUMER, Recorder, type RecorderStats } from './recorder.ts';
export { runRetention, scheduleRetention } from './retention.ts';
export { SuppressionsMirror } from './suppressions-mirror.ts';
export { EventWriter, type WriteResult } from './writer.ts';
