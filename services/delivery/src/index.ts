export { type DeliveryConfig, DeliveryConfigSchema, deliveryConfigFromEnv } from './config.ts';
export { type NextHop, nextHop } from './router.ts';
export { DeliveryWorker, type WorkerDeps } from './worker.ts';
