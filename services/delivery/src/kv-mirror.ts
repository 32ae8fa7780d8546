/**
 * A NATS KV bucket (or one key prefix of it) mirrored in memory by a watch, so that per-entry
 * checks on the delivery path (suspensions, suppressions) read memory, not the network. Writes go
 * to KV and into the mirror at once; other workers' writes arrive through the watch.
 */
import { type KV, type KvEntry, KvWatchInclude } from '@nats-io/kv';

export class KvMirror<T> {
  readonly #kv: KV;
  readonly #prefix: string;
  readonly #values = new Map<string, T>();
  #watch: { stop(): void } | undefined;

  /** `prefix` is prepended to every key in KV ("" for the whole bucket). */
  constructor(kv: KV, prefix = '') {
    this.#kv = kv;
    this.#prefix = prefix;
  }

  /** Follows changes, then loads the current state; resolves once it is loaded. */
  async start(): Promise<void> {
    const filter = `${this.#prefix}>`;
    const watch = await this.#kv.watch({ key: filter, include: KvWatchInclude.UpdatesOnly });
    this.#watch = watch;
    void (async () => {
      for await (const e of watch) this.#apply(e);
    })();
    for await (const key of await this.#kv.keys(filter)) {
      const e = await this.#kv.get(key);
      // A value the watch delivered meanwhile is newer than this read.
      if (e !== null && !this.#values.has(key.slice(this.#prefix.length))) this.#apply(e);
    }
  }

  stop(): void {
    this.#watch?.stop();
  }

  #apply(e: KvEntry): void {
    const key = e.key.slice(this.#prefix.length);
    if (e.operation !== 'PUT' || e.length === 0) {
      this.#values.delete(key);
      return;
    }
    try {
      this.#values.set(key, e.json<T>());
    } catch {
      this.#values.delete(key);
    }
  }

  get(key: string): T | undefined {
    return this.#values.get(key);
  }

  /** Entries mirrored now. */
  get size(): number {
    return this.#values.size;
  }

  values(): IterableIterator<T> {
    return this.#values.values();
  }

  async put(key: string, value: T): Promise<void> {
    await this.#kv.put(`${this.#prefix}${key}`, JSON.stringify(value));
    this.#values.set(key, value);
  }

  async delete(key: string): Promise<void> {
    await this.#kv.delete(`${this.#prefix}${key}`);
    this.#values.delete(key);
  }
}
