import { backoffDelay } from './backoff.ts';
import { type Clock, systemClock } from './clock.ts';

/** Per-key exponential backoff: baseDelayMs · 2^failures, capped at maxDelayMs. */
export class ExponentialRateLimiter {
  private readonly failures = new Map<string, number>();
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;

  constructor(options: { baseDelayMs?: number; maxDelayMs?: number } = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 300_000;
  }

  /** The delay before the next retry of `key`; each call counts one more failure. */
  when(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    return backoffDelay(failures, { initialMs: this.baseDelayMs, maxMs: this.maxDelayMs });
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

export interface WorkQueueOptions {
  clock?: Clock;
  rateLimiter?: ExponentialRateLimiter;
}

/**
 * A keyed, de-duplicating work queue with client-go's semantics: a key waiting in the queue is held
 * once however often it is added; a key being processed is never handed out again until done(),
 * and if it was added meanwhile it goes back in the queue then. Consumers loop on get() / done().
 */
export class WorkQueue {
  private readonly clock: Clock;
  private readonly limiter: ExponentialRateLimiter;
  private queue: string[] = [];
  /** Keys that need processing (queued, or re-added while processing). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly delayed = new Map<string, { due: number; cancel: () => void }>();
  private waiters: ((key: string | undefined) => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.limiter = options.rateLimiter ?? new ExponentialRateLimiter();
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) this.hand(key, waiter);
    else this.queue.push(key);
  }

  /** Adds `key` after `delayMs`; of several pending delays for one key the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const due = this.clock.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.due <= due) return;
      pending.cancel();
    }
    const cancel = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { due, cancel });
  }

  /** Adds `key` after its backoff delay, which doubles with every call until forget(key). */
  addRateLimited(key: string): void {
    this.addAfter(key, this.limiter.when(key));
  }

  /** Resets `key`'s backoff (after a successful reconcile). */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.retries(key);
  }

  /**
   * The next key to process, waiting until there is one; undefined once the queue shuts down.
   * The caller must call done(key) when it has finished with it.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.take(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    if (!this.processing.delete(key)) return;
    if (this.shuttingDown) {
      if (this.processing.size === 0) this.notifyDrained();
      return;
    }
    if (this.dirty.has(key)) {
      const waiter = this.waiters.shift();
      if (waiter) this.hand(key, waiter);
      else this.queue.push(key);
    }
  }

  /** Keys waiting to be handed out (not counting delayed or in-flight ones). */
  get length(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stops handing out work (queued and delayed keys are dropped, later adds ignored) and waits until
   * the keys in flight are done, or `timeoutMs` passes. Resolves true when everything was drained.
   */
  async shutdown(options: { timeoutMs?: number } = {}): Promise<boolean> {
    if (!this.shuttingDown) {
      this.shuttingDown = true;
      for (const { cancel } of this.delayed.values()) cancel();
      this.delayed.clear();
      this.queue = [];
      this.dirty.clear();
      for (const waiter of this.waiters.splice(0)) waiter(undefined);
    }
    if (this.processing.size === 0) return true;
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise<boolean>((resolve) => {
      const cancel = this.clock.setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((waiter) => waiter !== onDrained);
        resolve(false);
      }, timeoutMs);
      const onDrained = (): void => {
        cancel();
        resolve(true);
      };
      this.drainWaiters.push(onDrained);
    });
  }

  private take(key: string): void {
    this.dirty.delete(key);
    this.processing.add(key);
  }

  private hand(key: string, waiter: (key: string | undefined) => void): void {
    this.take(key);
    waiter(key);
  }

  private notifyDrained(): void {
    for (const waiter of this.drainWaiters.splice(0)) waiter();
  }
}
