/**
 * The webhooks' delivery log: one row per attempt in `webhook_deliveries` (read by the API,
 * GET /v1/webhooks/deliveries). Rows are buffered in memory and written in batches, so that
 * Postgres being slow or down never stops or delays a delivery: while it is down the rows wait
 * (bounded; the oldest are dropped and counted) and go in once it is back.
 */
import { ensurePartitions, pgText, utcDay } from '@petrel/store';
import type pg from 'pg';
import type { WebhookLogger } from './logger.ts';

export interface DeliveryLogRow {
  /** `<idempotency key>.<attempt>`: a row written twice (a retried batch) is stored once. */
  readonly deliveryId: string;
  /** When the attempt started, ms since the epoch (the partition key). */
  readonly createdAt: number;
  readonly subscription: string;
  readonly domain: string;
  readonly eventKind: string;
  readonly eventId: string;
  readonly messageId: string;
  readonly idempotencyKey: string;
  readonly url: string;
  readonly attempt: number;
  /** The receiver's status; null when there was no answer. */
  readonly statusCode: number | null;
  /** Empty for a 2xx. */
  readonly error: string;
  /** When a 2xx came back; null otherwise. */
  readonly deliveredAt: number | null;
  readonly durationMs: number;
}

export interface DeliveryLogOptions {
  /** Rows held while Postgres is unreachable; beyond, the oldest are dropped (default 100,000). */
  readonly maxRows?: number;
  /** Rows per INSERT (default 1,000). */
  readonly batchRows?: number;
  /** First pause after a failed write, doubled up to 5 s (default 250 ms). */
  readonly retryMs?: number;
}

export interface DeliveryLogStats {
  /** Rows not yet written: waiting, or in the write under way. */
  readonly buffered: number;
  written: number;
  /** Rows dropped because the buffer was full. */
  dropped: number;
  /** The last write failed; being retried. */
  failing: boolean;
}

const INSERT = `
INSERT INTO webhook_deliveries (delivery_id, created_at, subscription, event_id, url, attempt, status_code,
                                error, delivered_at, domain, event_kind, message_id, idempotency_key,
                                duration_ms)
SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int[],
                     $7::int[], $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::bigint[])
ON CONFLICT DO NOTHING`;

const MAX_PAUSE_MS = 5_000;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export class DeliveryLog {
  readonly #pool: pg.Pool;
  readonly #log: WebhookLogger;
  readonly #maxRows: number;
  readonly #batchRows: number;
  readonly #retryMs: number;
  readonly #rows: DeliveryLogRow[] = [];
  /** Days whose partitions this process made sure of. */
  readonly #days = new Set<string>();
  readonly stats: DeliveryLogStats;
  #writing: Promise<void> | undefined;
  /** Rows of the write under way: out of #rows, still counted as buffered until written. */
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #pause: number;
  /** Dropped rows not yet reported in a log line. */
  #unreportedDrops = 0;
  #closed = false;

  constructor(pool: pg.Pool, log: WebhookLogger, options: DeliveryLogOptions = {}) {
    this.#pool = pool;
    this.#log = log;
    this.#maxRows = options.maxRows ?? 100_000;
    this.#batchRows = options.batchRows ?? 1_000;
    this.#retryMs = options.retryMs ?? 250;
    this.#pause = this.#retryMs;
    const self = this;
    this.stats = {
      // Derived, so that it cannot fall out of step with the buffer.
      get buffered() {
        return self.#rows.length + self.#inFlight;
      },
      written: 0,
      dropped: 0,
      failing: false,
    };
  }

  /** Queues a row; returns at once (the write happens in the background). */
  record(row: DeliveryLogRow): void {
    this.#rows.push(row);
    if (this.#rows.length > this.#maxRows) {
      this.#rows.shift();
      this.stats.dropped++;
      if (this.#unreportedDrops++ === 0) {
        this.#log.warn(
          { maxRows: this.#maxRows },
          'webhook delivery log buffer full (Postgres unreachable?): dropping the oldest rows',
        );
      }
    }
    if (!this.stats.failing) this.#kick(0);
  }

  /** Forgets the partitions it made sure of (after retention dropped some). */
  forgetPartitions(): void {
    this.#days.clear();
  }

  /**
   * Writes what is buffered, retrying until `timeoutMs` has passed; then stops writing. Rows still
   * buffered after that are reported as lost.
   */
  async close(timeoutMs = 5_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.#rows.length > 0 && performance.now() < deadline) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      await this.#writing;
      if (this.#rows.length === 0) break;
      await this.#writeOnce();
      if (this.stats.failing) {
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(this.#pause, deadline - performance.now())),
        );
      }
    }
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#writing;
    if (this.#rows.length > 0) {
      this.#log.error({ rows: this.#rows.length }, 'webhook delivery log rows not written before stopping');
    }
  }

  #kick(delayMs: number): void {
    if (this.#closed || this.#writing !== undefined || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#writeOnce().then(() => {
        if (this.#rows.length > 0) this.#kick(this.stats.failing ? this.#pause : 0);
      });
    }, delayMs);
    // The write loop alone does not keep a process alive.
    this.#timer.unref();
  }

  /** One batch from the front of the buffer; on failure it goes back to the front. */
  #writeOnce(): Promise<void> {
    if (this.#writing !== undefined) return this.#writing;
    const batch = this.#rows.splice(0, this.#batchRows);
    if (batch.length === 0) return Promise.resolve();
    this.#inFlight = batch.length;
    this.#writing = this.#insert(batch)
      .then(() => {
        this.stats.written += batch.length;
        if (this.stats.failing) {
          this.#log.info({ dropped: this.#unreportedDrops }, 'webhook delivery log writing again');
        }
        this.stats.failing = false;
        this.#unreportedDrops = 0;
        this.#pause = this.#retryMs;
      })
      .catch((error: unknown) => {
        this.#rows.unshift(...batch);
        const excess = this.#rows.length - this.#maxRows;
        if (excess > 0) {
          this.#rows.splice(0, excess);
          this.stats.dropped += excess;
          this.#unreportedDrops += excess;
        }
        if (!this.stats.failing) {
          this.#log.warn(
            { err: error, rows: this.#rows.length },
            'webhook delivery log write failed; retrying',
          );
        }
        this.stats.failing = true;
        // A partition may have been dropped under us (retention): make sure of them again.
        this.#days.clear();
        this.#pause = Math.min(this.#pause * 2, MAX_PAUSE_MS);
      })
      .finally(() => {
        this.#writing = undefined;
        this.#inFlight = 0;
      });
    return this.#writing;
  }

  async #insert(rows: readonly DeliveryLogRow[]): Promise<void> {
    const days = new Set(rows.map((r) => utcDay(r.createdAt)));
    for (const day of days) {
      if (this.#days.has(day)) continue;
      const at = Date.parse(`${day}T00:00:00Z`);
      await ensurePartitions(this.#pool, at, at);
      this.#days.add(day);
    }
    await this.#pool.query(INSERT, [
      rows.map((r) => r.deliveryId),
      rows.map((r) => iso(r.createdAt)),
      rows.map((r) => r.subscription),
      rows.map((r) => r.eventId),
      rows.map((r) => r.url),
      rows.map((r) => r.attempt),
      rows.map((r) => r.statusCode),
      // The receiver's answer is outside input (docs/state.md).
      rows.map((r) => pgText(r.error)),
      rows.map((r) => (r.deliveredAt === null ? null : iso(r.deliveredAt))),
      rows.map((r) => r.domain),
      rows.map((r) => r.eventKind),
      rows.map((r) => r.messageId),
      rows.map((r) => r.idempotencyKey),
      rows.map((r) => r.durationMs),
    ]);
  }
}
