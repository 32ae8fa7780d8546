/**
 * Mirrors the suppression list (NATS KV `petrel_suppressions`, which the workers read on the
 * delivery path) into the Postgres table `suppressions`, for SQL and history. KV stays the truth:
 * changes are collected per address (the newest wins) and written in batches, and kept while
 * Postgres is unreachable.
 */
import { type KV, KvWatchInclude } from '@nats-io/kv';
import { type Suppression, suppressionAddress } from '@petrel/delivery';
import { pgText } from '@petrel/store';
import type { Logger } from '@petrel/telemetry';
import type pg from 'pg';

const UPSERT = `
INSERT INTO suppressions (address, reason, source, created_at, expires_at, status)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[])
ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, source = excluded.source,
  created_at = excluded.created_at, expires_at = excluded.expires_at, status = excluded.status`;

export class SuppressionsMirror {
  readonly #kv: KV;
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  /** address → its suppression, or null once removed. */
  #changes = new Map<string, Suppression | null>();
  #watch: { stop(): void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(kv: KV, pool: pg.Pool, log: Logger) {
    this.#kv = kv;
    this.#pool = pool;
    this.#log = log;
  }

  /** Follows the bucket from its current content on; changes are written every interval. */
  async start(intervalMs = 500): Promise<void> {
    const watch = await this.#kv.watch({ include: KvWatchInclude.LastValue });
    this.#watch = watch;
    void (async () => {
      for await (const e of watch) {
        const address = suppressionAddress(e.key);
        if (e.operation === 'PUT') {
          try {
            this.#changes.set(address, e.json<Suppression>());
          } catch {
            this.#log.warn({ key: e.key }, 'suppression entry is not JSON; not mirrored');
          }
        } else {
          this.#changes.set(address, null);
        }
      }
    })();
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Writes the changes collected so far; on failure they stay for the next round. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#watch?.stop();
    await this.flush();
  }

  async #write(): Promise<void> {
    if (this.#changes.size === 0) return;
    const changes = this.#changes;
    this.#changes = new Map();
    const put = [...changes.values()].filter((s): s is Suppression => s !== null);
    const removed = [...changes].filter(([, s]) => s === null).map(([a]) => a.toLowerCase());
    try {
      if (put.length > 0) {
        await this.#pool.query(UPSERT, [
          put.map((s) => s.address),
          put.map((s) => pgText(s.reason)),
          put.map((s) => s.source),
          put.map((s) => s.createdAt),
          put.map((s) => s.expiresAt),
          put.map((s) => s.status),
        ]);
      }
      if (removed.length > 0)
        await this.#pool.query('DELETE FROM suppressions WHERE address = ANY($1)', [removed]);
    } catch (error) {
      this.#log.warn({ err: error, changes: changes.size }, 'suppressions not mirrored to Postgres yet');
      // Newer changes that arrived meanwhile win over these.
      for (const [address, s] of changes) if (!this.#changes.has(address)) this.#changes.set(address, s);
    }
  }
}
