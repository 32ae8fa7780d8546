/**
 * Shard ownership (docs/queue-model.md, "How N workers share the destinations"): each of the
 * outbound shards has one owner at a time, held as a key in a NATS KV bucket whose entries expire
 * (max_age) unless renewed. Every worker announces itself, counts the live workers n, and holds
 * ceil(shards / n) shards: it claims free ones with a create-only put, renews its own with a
 * compare-and-set, and hands surplus back (after its in-flight entries finished) when n grows.
 * A worker that dies stops renewing; its shards are free one TTL later.
 */
import type { KV } from '@nats-io/kv';
import { fnv1a } from '@petrel/queue';

export const LEASES_BUCKET = 'petrel_leases';
export const LEASE_TTL_MS = 15_000;

export interface ShardLeasesOptions {
  readonly kv: KV;
  readonly workerId: string;
  readonly shards: number;
  /** Renewal period; a third of the bucket's TTL or less. */
  readonly renewMs?: number;
  /** The shard is ours: start consuming it. */
  readonly acquired: (shard: number) => void;
  /** The shard is no longer ours (lost) or is being handed back (surplus): stop, finish in-flight work. */
  readonly released: (shard: number) => Promise<void>;
  readonly log: { warn(fields: object, msg: string): void; info(fields: object, msg: string): void };
}

const SHARD_KEY = (shard: number) => `shard.${shard}`;
const WORKER_KEY = (id: string) => `worker.${id}`;

export class ShardLeases {
  readonly #o: ShardLeasesOptions;
  /** Shard → revision of our lease key. */
  readonly #owned = new Map<number, number>();
  #workers = 1;
  /** The live-worker count of the previous round (hand-backs need two rounds that agree). */
  #previousWorkers = 0;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #stopped = false;
  /** Shards being handed back: their in-flight work finishing, then the key deleted. */
  readonly #leaving = new Set<Promise<void>>();

  constructor(options: ShardLeasesOptions) {
    this.#o = options;
  }

  /** Live workers at the last renewal (the divisor of cluster-wide limits shared by all). */
  get workers(): number {
    return this.#workers;
  }

  get owned(): readonly number[] {
    return [...this.#owned.keys()].sort((a, b) => a - b);
  }

  /** Claims a first share of shards, then renews periodically. */
  async start(): Promise<void> {
    await this.tick();
    const every = this.#o.renewMs ?? LEASE_TTL_MS / 3;
    this.#timer = setInterval(() => {
      this.#ticking = this.#ticking
        .then(() => this.tick())
        .catch((error: unknown) => {
          this.#o.log.warn({ err: error }, 'shard lease renewal failed');
        });
    }, every);
  }

  /** One round: announce, renew, hand back surplus, claim up to our share. */
  async tick(): Promise<void> {
    if (this.#stopped) return;
    const { kv, workerId, shards } = this.#o;
    await kv.put(WORKER_KEY(workerId), String(Date.now()));
    // Distinct keys: a listing whose consumer was reset under load may repeat keys.
    const live = new Set<string>();
    for await (const key of await kv.keys('worker.*')) live.add(key);
    this.#workers = Math.max(1, live.size);
    for (const [shard, revision] of this.#owned) {
      try {
        this.#owned.set(shard, await kv.update(SHARD_KEY(shard), workerId, revision));
      } catch (error) {
        // An earlier renewal whose reply was lost (a timeout) may have succeeded: then the key
        // is still ours at a newer revision, and giving it up would move the domain for nothing.
        const current = await kv.get(SHARD_KEY(shard)).catch(() => null);
        if (current?.operation === 'PUT' && current.string() === workerId) {
          this.#owned.set(shard, current.revision);
          continue;
        }
        // Someone else holds it now (we were partitioned past the TTL): stop at once.
        this.#owned.delete(shard);
        this.#o.log.warn({ shard, err: error }, 'shard lease lost');
        this.#background(this.#o.released(shard));
      }
    }
    const share = Math.ceil(shards / this.#workers);
    // A shard is handed back only when two rounds in a row see as many workers: a count that is
    // high for one round (a listing glitch, a worker that starts and dies at once) would
    // otherwise move domains between workers for nothing (seen in CI: two shards swapped owners).
    const keep = Math.ceil(shards / Math.max(1, Math.min(this.#workers, this.#previousWorkers || 1)));
    this.#previousWorkers = this.#workers;
    // Handed back in the background: renewals of the shards we keep must never wait for a
    // hand-back to drain, or their leases could lapse while we still consume them.
    while (this.#owned.size > keep && !this.#stopped) {
      const shard = Math.max(...this.#owned.keys());
      this.#background(this.#handBack(shard));
    }
    if (this.#owned.size >= share) return;
    // Start at a place of our own so that workers starting together rarely race for one key.
    const offset = fnv1a(workerId) % shards;
    for (let i = 0; i < shards && this.#owned.size < share && !this.#stopped; i++) {
      const shard = (offset + i) % shards;
      if (this.#owned.has(shard)) continue;
      let revision: number;
      try {
        revision = await kv.create(SHARD_KEY(shard), workerId);
      } catch {
        continue; // held by someone
      }
      this.#owned.set(shard, revision);
      this.#o.acquired(shard);
    }
  }

  #background(work: Promise<void>): void {
    const tracked = work.catch((error: unknown) =>
      this.#o.log.warn({ err: error }, 'shard hand-back failed'),
    );
    this.#leaving.add(tracked);
    void tracked.finally(() => this.#leaving.delete(tracked));
  }

  async #handBack(shard: number): Promise<void> {
    const revision = this.#owned.get(shard);
    this.#owned.delete(shard);
    await this.#o.released(shard);
    if (revision === undefined) return;
    await this.#o.kv.delete(SHARD_KEY(shard), { previousSeq: revision }).catch(() => undefined);
    this.#o.log.info({ shard }, 'shard handed back');
  }

  /** Hands every shard back (in-flight work finished first) and leaves. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#ticking.catch(() => undefined);
    this.#stopped = true;
    await Promise.all([...this.#owned.keys()].map((shard) => this.#handBack(shard)));
    await Promise.all(this.#leaving);
    await this.#o.kv.delete(WORKER_KEY(this.#o.workerId)).catch(() => undefined);
  }
}
