/**
 * Per-destination ready queues (docs/queue-model.md, "Inside a worker"): entries wait here, in
 * order, for a connection slot and a rate token of their destination — never while holding up
 * other destinations. A queue holds about a minute of its destination's rate; beyond that, and
 * while the destination is backed off as a whole, entries are handed back to be re-deferred.
 * Destinations matched per domain are owned by one worker (shard ownership), so their limits
 * are local; shared ones (roll-ups, sender domains) take tokens from the cluster rate and divide
 * their connection limit by the number of live workers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AdaptiveRate, SiteBackoff, TokenBucket } from './health.ts';
import type { ClusterRate } from './rates.ts';

export interface DestinationLimits {
  /** Messages (transactions started) per second; undefined: no rate limit. */
  readonly ratePerSecond?: number | undefined;
  /** Deliveries in progress at once; undefined: only the per-host pool limit. */
  readonly maxConnections?: number | undefined;
  /** Lower the rate after throttling replies (needs a rate). */
  readonly adaptive: boolean;
  /** Limits span several owners (roll-up or sender domain): cluster tokens, divided connections. */
  readonly shared: boolean;
}

export type Admission =
  | { readonly kind: 'go'; release(): void }
  /** Not now: re-defer the entry to `at` (no attempt counted, no connection made). */
  | { readonly kind: 'defer'; readonly at: Date; readonly reason: string };

/** One destination as a worker's limiter sees it (JSON: the status reply of operations.ts). */
export interface DestinationStatus {
  /** `domain:<destination>` or `rollup:<policy>`. */
  readonly key: string;
  /** The rate allowed now (lowered after throttling replies); null: unlimited. */
  readonly ratePerSecond: number | null;
  readonly configuredRatePerSecond: number | null;
  readonly maxConnections: number | null;
  readonly active: number;
  readonly waiting: number;
  readonly backedOffUntil: string | null;
}

export interface LimiterOptions {
  readonly cluster?: ClusterRate | undefined;
  readonly workers?: () => number;
  /** Seconds of the destination's rate a ready queue holds (default 60). */
  readonly queueSeconds?: number;
  /** A ready queue holds at least this many entries (default 20). */
  readonly minQueue?: number;
  readonly now?: () => number;
}

class Destination {
  limits: DestinationLimits;
  bucket: TokenBucket;
  adaptive: AdaptiveRate | undefined;
  readonly backoff = new SiteBackoff();
  active = 0;
  waiting = 0;
  tail: Promise<void> = Promise.resolve();
  readonly slots: (() => void)[] = [];
  usedAt: number;

  constructor(limits: DestinationLimits, now: number) {
    this.limits = limits;
    this.bucket = new TokenBucket(now);
    this.adaptive = adaptiveFor(limits);
    this.usedAt = now;
  }
}

function adaptiveFor(limits: DestinationLimits): AdaptiveRate | undefined {
  return limits.adaptive && limits.ratePerSecond !== undefined
    ? new AdaptiveRate({ ratePerSecond: limits.ratePerSecond })
    : undefined;
}

const IDLE_FORGET_MS = 15 * 60_000;

export class DestinationLimiter {
  readonly #o: LimiterOptions;
  readonly #now: () => number;
  readonly #destinations = new Map<string, Destination>();
  #swept = 0;

  constructor(options: LimiterOptions = {}) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  #get(key: string, limits: DestinationLimits): Destination {
    const now = this.#now();
    let d = this.#destinations.get(key);
    if (d === undefined) {
      this.#sweep(now);
      d = new Destination(limits, now);
      this.#destinations.set(key, d);
    } else if (!sameLimits(d.limits, limits)) {
      // The policy changed (config reload): new limits from now on.
      d.limits = limits;
      d.adaptive = adaptiveFor(limits);
    }
    d.usedAt = now;
    return d;
  }

  /** The rate allowed now (lowered after throttling), or undefined when unlimited. */
  rate(key: string): number | undefined {
    const d = this.#destinations.get(key);
    if (d === undefined) return undefined;
    return d.adaptive?.rate(this.#now()) ?? d.limits.ratePerSecond;
  }

  /** What this worker knows of its destinations now (the trace API's queue summary). */
  snapshot(): DestinationStatus[] {
    const now = this.#now();
    return [...this.#destinations].map(([key, d]) => ({
      key,
      ratePerSecond: d.adaptive?.rate(now) ?? d.limits.ratePerSecond ?? null,
      configuredRatePerSecond: d.limits.ratePerSecond ?? null,
      maxConnections: d.limits.maxConnections ?? null,
      active: d.active,
      waiting: d.waiting,
      backedOffUntil: d.backoff.downUntil > now ? new Date(d.backoff.downUntil).toISOString() : null,
    }));
  }

  /** Waits for the destination's turn: a connection slot, then a rate token. */
  async admit(key: string, limits: DestinationLimits, signal?: AbortSignal): Promise<Admission> {
    const d = this.#get(key, limits);
    const now = this.#now();
    const downUntil = d.backoff.admit(now);
    if (downUntil !== undefined) {
      return {
        kind: 'defer',
        at: new Date(downUntil),
        reason: 'every host of the destination failed; backed off',
      };
    }
    const rate = d.adaptive?.rate(now) ?? limits.ratePerSecond;
    const connections = this.#connections(limits);
    if (rate === undefined && connections === undefined) {
      d.active++;
      return { kind: 'go', release: () => this.#release(d) };
    }
    const minQueue = this.#o.minQueue ?? 20;
    const capacity =
      rate === undefined
        ? Math.max(minQueue, (connections ?? 1) * 50)
        : Math.max(minQueue, Math.ceil(rate * (this.#o.queueSeconds ?? 60)));
    if (d.waiting >= capacity) {
      const seconds = rate === undefined ? 60 : d.waiting / rate;
      return {
        kind: 'defer',
        at: new Date(now + Math.max(10_000, Math.ceil(seconds * 1000))),
        reason: 'the destination ready queue is full',
      };
    }
    d.waiting++;
    const previous = d.tail;
    let done!: () => void;
    d.tail = new Promise<void>((resolve) => {
      done = resolve;
    });
    try {
      await previous;
      signal?.throwIfAborted();
      // Slot first, so that a token is never spent waiting for a connection.
      while (d.active >= (this.#connections(d.limits) ?? Number.POSITIVE_INFINITY)) {
        await new Promise<void>((resolve, reject) => {
          d.slots.push(resolve);
          signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
        });
      }
      for (;;) {
        const r = d.adaptive?.rate(this.#now()) ?? d.limits.ratePerSecond;
        if (r === undefined) break;
        if (d.limits.shared && this.#o.cluster !== undefined) {
          // A slot of the cluster's rate, reserved for this entry; -1: contention, ask again.
          const wait = await this.#o.cluster.reserve(key, r);
          if (wait < 0) {
            await sleep(50, undefined, signal ? { signal } : {});
            continue;
          }
          if (wait > 0) await sleep(wait, undefined, signal ? { signal } : {});
          break;
        }
        const wait = d.bucket.take(this.#now(), r);
        if (wait === 0) break;
        await sleep(wait, undefined, signal ? { signal } : {});
      }
      d.active++;
      return { kind: 'go', release: () => this.#release(d) };
    } finally {
      d.waiting--;
      done();
    }
  }

  #connections(limits: DestinationLimits): number | undefined {
    if (limits.maxConnections === undefined) return undefined;
    if (!limits.shared) return limits.maxConnections;
    return Math.max(1, Math.ceil(limits.maxConnections / Math.max(1, this.#o.workers?.() ?? 1)));
  }

  #release(d: Destination): void {
    d.active--;
    d.slots.shift()?.();
  }

  /** A throttling reply (421, 4.7.x, "try again later"): lower the destination's rate for a while. */
  throttled(key: string): void {
    this.#destinations.get(key)?.adaptive?.throttled(this.#now());
  }

  /** Every host of the destination refused or failed to connect: back it off as a whole. */
  allHostsFailed(key: string): Date {
    const d = this.#destinations.get(key);
    return new Date(d === undefined ? this.#now() + 60_000 : d.backoff.allHostsFailed(this.#now()));
  }

  /** A host of the destination took a connection: it is up. */
  up(key: string): void {
    this.#destinations.get(key)?.backoff.up();
  }

  /** Forgets destinations unused for a while (their state has long returned to normal). */
  #sweep(now: number): void {
    if (now - this.#swept < 60_000) return;
    this.#swept = now;
    for (const [key, d] of this.#destinations) {
      if (d.active === 0 && d.waiting === 0 && !d.backoff.down && now - d.usedAt > IDLE_FORGET_MS)
        this.#destinations.delete(key);
    }
  }
}

function sameLimits(a: DestinationLimits, b: DestinationLimits): boolean {
  return (
    a.ratePerSecond === b.ratePerSecond &&
    a.maxConnections === b.maxConnections &&
    a.adaptive === b.adaptive &&
    a.shared === b.shared
  );
}
