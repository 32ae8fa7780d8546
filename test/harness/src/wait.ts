import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  timeoutMs: number;
  /** Poll interval; conditions are polled, never assumed after a sleep. */
  intervalMs?: number;
  /** Describes the condition in the timeout error. */
  message?: string;
}

/**
 * Polls a condition until it returns a truthy value or the deadline passes; returns that value.
 * A condition that throws is retried; the last error is reported on timeout.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  options: WaitOptions,
): Promise<NonNullable<T>> {
  // Monotonic: a wall-clock step (VM clocks are corrected in jumps) must not stretch or cut the wait.
  const deadline = performance.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 25;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${options.message ?? 'condition'}`,
        {
          cause: lastError,
        },
      );
    }
    await delay(interval);
  }
}
