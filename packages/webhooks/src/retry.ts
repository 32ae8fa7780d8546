/**
 * When a failed attempt is tried again. The job stays in PETREL_WEBHOOKS (nak with this delay), so
 * the retry survives a restart; after the maximum age it is given up.
 */

export interface RetryPolicy {
  /** Delays after the 1st, 2nd, … failed attempt; the last repeats. */
  readonly delaysMs: readonly number[];
  /** A job older than this (since it was queued) is not retried again. */
  readonly maxAgeMs: number;
  /** ± this fraction of random spread, so that a backlog does not return in one burst (0–0.5). */
  readonly jitter: number;
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [
  10_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000,
];
export const DEFAULT_MAX_AGE_MS = 24 * 3_600_000;
export const DEFAULT_JITTER = 0.1;

/**
 * The delay before the next attempt after failed attempt `attempt` (1-based) of a job `ageMs` old,
 * or undefined when the next attempt would come after the maximum age: give up.
 */
export function retryDelay(
  policy: RetryPolicy,
  attempt: number,
  ageMs: number,
  random: () => number = Math.random,
): number | undefined {
  const { delaysMs } = policy;
  const base = delaysMs[Math.min(Math.max(attempt, 1), delaysMs.length) - 1] ?? 0;
  const delay = Math.max(0, Math.round(base * (1 + policy.jitter * (2 * random() - 1))));
  return ageMs + delay > policy.maxAgeMs ? undefined : delay;
}
