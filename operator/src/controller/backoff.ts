/** Capped exponential backoff: initialMs · 2^attempt, never above maxMs. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions): number {
  // 2^attempt overflows to Infinity past ~1023; Math.min still caps it.
  return Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, attempt));
}
