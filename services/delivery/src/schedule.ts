import { parseDurations } from '@petrel/config';

/**
 * When a deferred entry is tried next, and when it gives up (docs/queue-model.md, "Outcomes").
 * Pure functions: the worker passes the clock and the random source.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export interface RetryPolicy {
  /** Delay before the n-th retry (n = attempts so far); the last one repeats. */
  readonly delaysMs: readonly number[];
  /** Queue lifetime, counted from acceptance (RFC 5321 §4.5.4.1: at least 4-5 days). */
  readonly lifetimeMs: number;
  /** ± this fraction of each delay, so a large backlog does not come back in one burst. */
  readonly jitter: number;
  /** A delay DSN once the message has waited this long (RFC 3461 NOTIFY=DELAY). */
  readonly delayNoticeAfterMs: number;
  /** Send delay DSNs to senders that gave no NOTIFY parameter (RFC 3461 §4.1 leaves it to us). */
  readonly delayNoticeWithoutNotify: boolean;
}

/** The default: 1m, 5m, 15m, 30m, 1h, 2h, 4h, then every 4h, for 5 days. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  delaysMs: [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR],
  lifetimeMs: 5 * 24 * HOUR,
  jitter: 0.1,
  delayNoticeAfterMs: 4 * HOUR,
  delayNoticeWithoutNotify: false,
};

export interface Timing {
  /** Attempts made so far, including the one that just failed (≥ 1). */
  readonly attempts: number;
  readonly receivedAt: Date;
  readonly now: Date;
  /** RFC 2852 DELIVERBY with R: give up at this time. */
  readonly returnBy?: Date | undefined;
}

export type NextStep =
  | { readonly kind: 'retry'; readonly at: Date }
  /** The queue lifetime (or the DELIVERBY deadline) is over: an expiry DSN, RFC 3464 action "failed". */
  | { readonly kind: 'expire'; readonly reason: 'lifetime' | 'deliverBy'; readonly status: string };

/** RFC 3463: 4.4.7 delivery time expired, returned as 5.4.7 once final. */
const EXPIRED_STATUS = '5.4.7';

export function nextStep(policy: RetryPolicy, timing: Timing, random: () => number = Math.random): NextStep {
  const { attempts, receivedAt, now, returnBy } = timing;
  const expiresAt = receivedAt.getTime() + policy.lifetimeMs;
  if (returnBy !== undefined && now.getTime() >= returnBy.getTime()) {
    return { kind: 'expire', reason: 'deliverBy', status: EXPIRED_STATUS };
  }
  if (now.getTime() >= expiresAt) return { kind: 'expire', reason: 'lifetime', status: EXPIRED_STATUS };
  const base = policy.delaysMs[Math.min(Math.max(attempts, 1), policy.delaysMs.length) - 1] ?? MINUTE;
  const spread = base * policy.jitter * (2 * random() - 1);
  let at = now.getTime() + Math.max(1_000, Math.round(base + spread));
  // One last try at the deadline rather than none after it.
  at = Math.min(at, expiresAt, returnBy?.getTime() ?? Number.POSITIVE_INFINITY);
  return { kind: 'retry', at: new Date(Math.max(at, now.getTime() + 1_000)) };
}

/** Whether this deferral should send the (single) delay DSN of RFC 3461 NOTIFY=DELAY. */
export function delayNoticeDue(
  policy: RetryPolicy,
  input: { receivedAt: Date; now: Date; alreadyNotified: boolean; notify: readonly string[] },
): boolean {
  if (input.alreadyNotified) return false;
  if (input.now.getTime() - input.receivedAt.getTime() < policy.delayNoticeAfterMs) return false;
  if (input.notify.length === 0) return policy.delayNoticeWithoutNotify;
  return input.notify.includes('DELAY');
}

/** "1m,5m,15m,1h,4h" or plain milliseconds → delays in ms; throws on anything else. */
export const parseDelays = parseDurations;
