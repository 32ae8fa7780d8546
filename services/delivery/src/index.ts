export { type DeliveryConfig, DeliveryConfigSchema, deliveryConfigFromEnv } from './config.ts';
export { type MxHost, type Route, resolveRoute } from './mx.ts';
export { type Routing, route, type Target } from './router.ts';
export { DEFAULT_RETRY_POLICY, nextStep, type RetryPolicy } from './schedule.ts';
export { type Suppression, SuppressionList } from './suppressions.ts';
export { DeliveryWorker, type FailedRecipient, type WorkerDeps } from './worker.ts';
