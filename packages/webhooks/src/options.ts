/** The webhooks' settings: one defaults table, checked once at start. */
import type { DeliveryLogOptions } from './delivery-log.ts';
import { WebhookError, WebhookErrorCode } from './errors.ts';
import { DEFAULT_JITTER, DEFAULT_MAX_AGE_MS, DEFAULT_RETRY_DELAYS_MS, type RetryPolicy } from './retry.ts';
import { JOBS_DUPLICATE_WINDOW_MS, JOBS_MAX_AGE_MS } from './streams.ts';

export interface WebhookOptions {
  /** Per POST: connect, send, and the answer's headers and body (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** Delays after the 1st, 2nd, … failed attempt; the last repeats (default 10s, 30s, 2m, 10m, 30m, 1h). */
  readonly retryDelaysMs?: readonly number[];
  /** Give up on a job this long after it was queued (default 24 h, at most 7 days). */
  readonly maxAgeMs?: number;
  /** ± random spread of the retry delays, 0–0.5 (default 0.1). */
  readonly jitter?: number;
  /** POSTs in flight at once, over all subscriptions (default 64). */
  readonly concurrency?: number;
  /** Connections kept per receiver origin (default 8). */
  readonly connectionsPerOrigin?: number;
  /** Jobs out at once, those waiting for a retry included (the sender consumer's max_ack_pending; default 100,000). */
  readonly maxPendingJobs?: number;
  /** How long a job may be held before JetStream hands it out again (default 2 × timeout + 10 s, at least 30 s). */
  readonly senderAckWaitMs?: number;
  /** The same for an events message being fanned out (default 30 s; below the jobs' duplicate window). */
  readonly fanoutAckWaitMs?: number;
  /** Events messages fanned out at once (default 16). */
  readonly fanoutConcurrency?: number;
  /** Waiting for JetStream to store a job (default 5 s); the events message is retried after a failure. */
  readonly publishTimeoutMs?: number;
  readonly deliveryLog?: DeliveryLogOptions;
  readonly userAgent?: string;
  /** The clock (ms since the epoch): signature times and the delivery log. */
  readonly now?: () => number;
}

export interface ResolvedOptions {
  readonly requestTimeoutMs: number;
  readonly retry: RetryPolicy;
  readonly concurrency: number;
  readonly connectionsPerOrigin: number;
  readonly maxPendingJobs: number;
  readonly senderAckWaitMs: number;
  readonly fanoutAckWaitMs: number;
  readonly fanoutConcurrency: number;
  readonly publishTimeoutMs: number;
  readonly deliveryLog: DeliveryLogOptions;
  readonly userAgent: string;
  readonly now: () => number;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new WebhookError(WebhookErrorCode.Options, `webhook options: ${message}`);
}

const positiveInt = (n: number): boolean => Number.isInteger(n) && n > 0;

export function resolveOptions(options: WebhookOptions = {}): ResolvedOptions {
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const delaysMs = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const jitter = options.jitter ?? DEFAULT_JITTER;
  const resolved: ResolvedOptions = {
    requestTimeoutMs,
    retry: { delaysMs: [...delaysMs], maxAgeMs, jitter },
    concurrency: options.concurrency ?? 64,
    connectionsPerOrigin: options.connectionsPerOrigin ?? 8,
    maxPendingJobs: options.maxPendingJobs ?? 100_000,
    senderAckWaitMs: options.senderAckWaitMs ?? Math.max(30_000, 2 * requestTimeoutMs + 10_000),
    fanoutAckWaitMs: options.fanoutAckWaitMs ?? 30_000,
    fanoutConcurrency: options.fanoutConcurrency ?? 16,
    publishTimeoutMs: options.publishTimeoutMs ?? 5_000,
    deliveryLog: options.deliveryLog ?? {},
    userAgent: options.userAgent ?? 'Petrel-Webhooks/1',
    now: options.now ?? Date.now,
  };
  check(positiveInt(requestTimeoutMs), 'requestTimeoutMs must be a positive whole number of ms');
  check(
    delaysMs.length > 0 && delaysMs.every((d) => Number.isInteger(d) && d >= 0),
    'retryDelaysMs must be a non-empty list of whole numbers of ms',
  );
  check(
    positiveInt(maxAgeMs) && maxAgeMs <= JOBS_MAX_AGE_MS,
    `maxAgeMs must be positive and at most ${JOBS_MAX_AGE_MS} (the job stream's max age)`,
  );
  check(jitter >= 0 && jitter <= 0.5, 'jitter must be between 0 and 0.5');
  check(positiveInt(resolved.concurrency), 'concurrency must be a positive whole number');
  check(positiveInt(resolved.connectionsPerOrigin), 'connectionsPerOrigin must be a positive whole number');
  check(positiveInt(resolved.maxPendingJobs), 'maxPendingJobs must be a positive whole number');
  check(
    positiveInt(resolved.senderAckWaitMs) && resolved.senderAckWaitMs > requestTimeoutMs,
    'senderAckWaitMs must be longer than requestTimeoutMs',
  );
  check(
    positiveInt(resolved.fanoutAckWaitMs) && resolved.fanoutAckWaitMs < JOBS_DUPLICATE_WINDOW_MS,
    `fanoutAckWaitMs must be shorter than the jobs' duplicate window (${JOBS_DUPLICATE_WINDOW_MS} ms)`,
  );
  check(positiveInt(resolved.fanoutConcurrency), 'fanoutConcurrency must be a positive whole number');
  check(positiveInt(resolved.publishTimeoutMs), 'publishTimeoutMs must be a positive whole number of ms');
  return resolved;
}
