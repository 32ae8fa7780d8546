/**
 * Counters through @opentelemetry/api only (the SDK, if any, is wired by the service): no-ops
 * unless a meter provider is registered.
 */
import { type Counter, metrics } from '@opentelemetry/api';

export type AttemptOutcome = 'delivered' | 'failed' | 'gave_up' | 'dropped';

export interface WebhookMetrics {
  attempt(outcome: AttemptOutcome, subscription: string): void;
  jobs(created: number, duplicates: number): void;
}

export function webhookMetrics(): WebhookMetrics {
  const meter = metrics.getMeter('@petrel/webhooks');
  const attempts: Counter = meter.createCounter('petrel.webhooks.attempts', {
    description: 'Webhook POST attempts by outcome (dropped: the subscription is gone)',
  });
  const jobs: Counter = meter.createCounter('petrel.webhooks.jobs', {
    description: 'Webhook jobs queued (one per subscription and event); duplicates were queued already',
  });
  return {
    attempt(outcome, subscription) {
      attempts.add(1, { outcome, subscription });
    },
    jobs(created, duplicates) {
      if (created > 0) jobs.add(created, { result: 'created' });
      if (duplicates > 0) jobs.add(duplicates, { result: 'duplicate' });
    },
  };
}
