/**
 * Retention (docs/state.md): every hour, partitions for today and the next two days are made
 * (so the writes of the day never wait for DDL) and day partitions older than the retention are
 * dropped whole. Several recorders may run it at once: both functions are idempotent.
 */
import { dropExpiredPartitions, ensurePartitions } from '@petrel/store';
import type { Logger } from '@petrel/telemetry';
import type pg from 'pg';

const DAY_MS = 86_400_000;

export interface RetentionDeps {
  readonly pool: pg.Pool;
  readonly retentionDays: number;
  readonly log: Logger;
  readonly intervalMs?: number;
  readonly now?: () => number;
  /** Called after partitions were dropped (writers forget what they made sure of). */
  readonly onDropped?: (names: readonly string[]) => void;
}

export async function runRetention(deps: RetentionDeps): Promise<string[]> {
  const now = (deps.now ?? Date.now)();
  await ensurePartitions(deps.pool, now - DAY_MS, now + 2 * DAY_MS);
  const dropped = await dropExpiredPartitions(deps.pool, deps.retentionDays, now);
  if (dropped.length > 0) {
    deps.log.info({ dropped, retentionDays: deps.retentionDays }, 'expired partitions dropped');
    deps.onDropped?.(dropped);
  }
  return dropped;
}

/** Runs retention now and then every interval (default an hour); failures are logged and retried. */
export function scheduleRetention(deps: RetentionDeps): { stop(): void } {
  const run = () =>
    void runRetention(deps).catch((error: unknown) =>
      deps.log.warn({ err: error }, 'retention run failed; retrying at the next interval'),
    );
  run();
  const timer = setInterval(run, deps.intervalMs ?? 3_600_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
