import type { KubernetesObject } from '@kubernetes/client-node';
import { type Clock, systemClock } from './clock.ts';
import { isConflict, KubeError, KubeErrorCode } from './errors.ts';
import type { Informer } from './informer.ts';
import { objectKey } from './keys.ts';
import type { Logger } from './logger.ts';
import { type ExponentialRateLimiter, WorkQueue } from './workqueue.ts';

// biome-ignore lint/suspicious/noConfusingVoidType: a reconciler that has nothing to say returns nothing.
export type ReconcileResult = { requeueAfterMs?: number } | void;

/**
 * Brings the world in line with the object named by `key` (`namespace/name`). Level-triggered: it
 * reads the current state itself (from an informer cache) and must be safe to run any number of
 * times. A throw requeues the key with backoff; `requeueAfterMs` asks to run again later anyway.
 */
export type Reconcile = (key: string) => Promise<ReconcileResult>;

/** Maps an object event to the keys to reconcile (default: the object's own key). */
export type KeyMapper<T> = (object: T) => string | readonly string[] | undefined;

export interface ControllerOptions {
  /** Appears in every log line. */
  name: string;
  reconcile: Reconcile;
  logger: Logger;
  /** Keys processed at once (never the same key twice at once). Default 2. */
  workers?: number;
  rateLimiter?: ExponentialRateLimiter;
  clock?: Clock;
}

/** A work queue fed by informers and drained by N workers calling one reconcile function. */
export class Controller {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly reconcile: Reconcile;
  private readonly logger: Logger;
  private readonly workers: number;
  private readonly clock: Clock;
  private loops: Promise<void>[] | undefined;

  constructor(options: ControllerOptions) {
    const workers = options.workers ?? 2;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new KubeError(KubeErrorCode.InvalidOptions, `controller ${options.name}: workers must be >= 1`);
    }
    this.name = options.name;
    this.reconcile = options.reconcile;
    this.logger = options.logger;
    this.workers = workers;
    this.clock = options.clock ?? systemClock;
    this.queue = new WorkQueue({
      clock: this.clock,
      ...(options.rateLimiter ? { rateLimiter: options.rateLimiter } : {}),
    });
  }

  /**
   * Enqueues keys for every add, update (including resyncs) and delete of `informer`. Deletes are
   * enqueued too: the reconciler finds the object gone and cleans up. Returns an unsubscribe.
   */
  watch<T extends KubernetesObject>(informer: Informer<T>, map: KeyMapper<T> = objectKey): () => void {
    const enqueue = (object: T): void => {
      const keys = map(object);
      if (keys === undefined) return;
      if (typeof keys === 'string') this.queue.add(keys);
      else for (const key of keys) this.queue.add(key);
    };
    return informer.addHandler({
      add: enqueue,
      update: (_previous, object) => enqueue(object),
      delete: enqueue,
    });
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Starts the workers. Keys enqueued before start() wait in the queue. */
  start(): void {
    if (this.loops !== undefined) {
      throw new KubeError(KubeErrorCode.AlreadyStarted, `controller ${this.name} was already started`);
    }
    this.loops = Array.from({ length: this.workers }, () => this.work());
    this.logger.info({ controller: this.name, workers: this.workers }, 'controller started');
  }

  /**
   * Stops taking work and waits up to `timeoutMs` for the reconciles in flight. Resolves true when
   * they all finished.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<boolean> {
    const drained = await this.queue.shutdown(options);
    if (drained) await Promise.all(this.loops ?? []);
    this.logger.info({ controller: this.name, drained }, 'controller stopped');
    return drained;
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const started = this.clock.now();
    let result: ReconcileResult;
    try {
      result = await this.reconcile(key);
    } catch (error) {
      const fields = {
        controller: this.name,
        key,
        retries: this.queue.numRequeues(key),
        durationMs: this.clock.now() - started,
      };
      // A conflict only means our read was stale; the retry reads the newer version.
      if (isConflict(error)) this.logger.debug({ ...fields, err: error }, 'reconcile conflict, requeued');
      else this.logger.error({ ...fields, err: error }, 'reconcile failed, requeued');
      this.queue.addRateLimited(key);
      return;
    }
    this.queue.forget(key);
    const requeueAfterMs = result?.requeueAfterMs;
    if (requeueAfterMs !== undefined && requeueAfterMs >= 0) this.queue.addAfter(key, requeueAfterMs);
    this.logger.debug(
      { controller: this.name, key, durationMs: this.clock.now() - started, requeueAfterMs },
      'reconciled',
    );
  }
}
