import { setTimeout as delay } from 'node:timers/promises';

/**
 * Waits `ms` before the caller answers (a tarpit slows down senders that hammer us). Resolves
 * early, never rejects, when `signal` aborts (session closed, shutdown), and the timer does not
 * keep the process alive.
 */
export async function tarpitDelay(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0 || signal?.aborted) return;
  try {
    await delay(ms, undefined, { ref: false, signal });
  } catch (error) {
    if (signal?.aborted) return;
    throw error;
  }
}
