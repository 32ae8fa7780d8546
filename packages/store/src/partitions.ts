import type pg from 'pg';

/*
 * Day partitions of the state tables (sql/000002_state.sql): made ahead of the rows that need
 * them, and dropped whole once older than the retention, so that retention never runs a large
 * DELETE. The SQL functions do the work; these are their typed callers.
 */

/** Default retention of the state tables (issue 5: 30 days, configurable). */
export const DEFAULT_RETENTION_DAYS = 30;

const DAY_MS = 86_400_000;

/** The UTC day of a time, as YYYY-MM-DD. */
export function utcDay(at: Date | number): string {
  return new Date(typeof at === 'number' ? at : at.getTime()).toISOString().slice(0, 10);
}

/** Creates the missing day partitions of every state table from `from` to `to` (UTC days). */
export async function ensurePartitions(
  client: pg.ClientBase | pg.Pool,
  from: Date | number,
  to: Date | number,
): Promise<number> {
  const { rows } = await client.query<{ created: number }>(
    'SELECT petrel_partitions_ensure($1::date, $2::date) AS created',
    [utcDay(from), utcDay(to)],
  );
  return rows[0]?.created ?? 0;
}

/**
 * Drops every day partition wholly older than `retentionDays` before `now`: a partition is kept
 * while any moment of its day is within the retention. Returns the dropped partitions' names.
 */
export async function dropExpiredPartitions(
  client: pg.ClientBase | pg.Pool,
  retentionDays = DEFAULT_RETENTION_DAYS,
  now: Date | number = Date.now(),
): Promise<string[]> {
  if (!Number.isInteger(retentionDays) || retentionDays < 1) {
    throw new RangeError(`retention must be a whole number of days ≥ 1, got ${retentionDays}`);
  }
  const nowMs = typeof now === 'number' ? now : now.getTime();
  // Partitions of days before this one end before now - retention.
  const oldestKept = utcDay(nowMs - retentionDays * DAY_MS);
  const { rows } = await client.query<{ name: string }>(
    'SELECT petrel_partitions_drop_before($1::date) AS name',
    [oldestKept],
  );
  return rows.map((r) => r.name);
}
