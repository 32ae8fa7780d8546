import type { KubernetesObject } from '@kubernetes/client-node';
import { type BackoffOptions, backoffDelay } from './backoff.ts';
import { type Clock, systemClock } from './clock.ts';
import { httpStatusOf, KubeError, KubeErrorCode } from './errors.ts';
import { objectKey } from './keys.ts';
import type { ListWatchClient, WatchHandle } from './listwatch-client.ts';
import { type Logger, silentLogger } from './logger.ts';

/** A resource collection: group '' is the core group (/api/v1). */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
}

/** The collection URL of `resource`, in one namespace or (namespace undefined) all of them. */
export function resourcePath(resource: ResourceRef, namespace?: string): string {
  const base =
    resource.group === '' ? `/api/${resource.version}` : `/apis/${resource.group}/${resource.version}`;
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  return `${base}${scope}/${resource.plural}`;
}

/**
 * Called synchronously with the cached objects, which are shared: handlers must not mutate them.
 * A handler that throws is logged and does not affect the others.
 */
export interface InformerHandlers<T> {
  add?(object: T): void;
  update?(previous: T, object: T): void;
  delete?(object: T): void;
}

export interface InformerOptions {
  client: ListWatchClient;
  resource: ResourceRef;
  /** Watch one namespace; undefined watches all namespaces (or a cluster-scoped resource). */
  namespace?: string;
  labelSelector?: string;
  /** Re-emit every cached object as an update this often (level-triggered safety net); 0 = never. */
  resyncPeriodMs?: number;
  /** Delay between failed list/watch attempts (default 200 ms .. 30 s). */
  backoff?: BackoffOptions;
  /** A watch that lasted this long, or delivered an event, was healthy: the next one starts at once. */
  healthyWatchMs?: number;
  /**
   * Server-side watch timeout. client-node's Watch aborts a connection that is silent for 30 s, so the
   * server ends it first (with a bookmark 2 s before) and we resume from the last resourceVersion.
   */
  watchTimeoutSeconds?: number;
  listPageSize?: number;
  clock?: Clock;
  logger?: Logger;
}

export interface InformerStats {
  /** Completed lists (the first one and every relist). */
  lists: number;
  /** Watches opened. */
  watches: number;
}

interface RawList {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { resourceVersion?: unknown; continue?: unknown };
  items?: unknown;
}

/**
 * List-then-watch cache of one resource collection. Lists, then watches from the list's
 * resourceVersion with bookmarks; on 410 Gone it relists (emitting deletes for objects that vanished
 * meanwhile); any other failure restarts the watch from the last resourceVersion after a capped
 * exponential backoff. It never gives up until stop().
 */
export class Informer<T extends KubernetesObject = KubernetesObject> {
  readonly path: string;
  private readonly client: ListWatchClient;
  private readonly labelSelector: string | undefined;
  private readonly resyncPeriodMs: number;
  private readonly backoff: BackoffOptions;
  private readonly healthyWatchMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly listPageSize: number;
  private readonly clock: Clock;
  private readonly logger: Logger;

  private readonly cache = new Map<string, T>();
  private readonly handlers = new Set<InformerHandlers<T>>();
  private syncWaiters = new Set<{ resolve: () => void; reject: (error: unknown) => void }>();
  private state: 'new' | 'running' | 'stopped' = 'new';
  private synced = false;
  /** Bumped whenever a list or watch attempt is superseded, so late callbacks of old ones are ignored. */
  private generation = 0;
  private resourceVersion: string | undefined;
  private failures = 0;
  private watchHandle: WatchHandle | undefined;
  private cancelRetry: (() => void) | undefined;
  private cancelResync: (() => void) | undefined;
  private readonly counters: InformerStats = { lists: 0, watches: 0 };

  constructor(options: InformerOptions) {
    this.client = options.client;
    this.path = resourcePath(options.resource, options.namespace);
    this.labelSelector = options.labelSelector;
    this.resyncPeriodMs = options.resyncPeriodMs ?? 0;
    this.backoff = options.backoff ?? { initialMs: 200, maxMs: 30_000 };
    this.healthyWatchMs = options.healthyWatchMs ?? 10_000;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? 25;
    this.listPageSize = options.listPageSize ?? 500;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
    if (this.watchTimeoutSeconds < 1 || this.resyncPeriodMs < 0 || this.backoff.initialMs <= 0) {
      throw new KubeError(KubeErrorCode.InvalidOptions, `informer ${this.path}: invalid timings`);
    }
  }

  start(): void {
    if (this.state !== 'new') {
      throw new KubeError(KubeErrorCode.AlreadyStarted, `informer ${this.path} was already started`);
    }
    this.state = 'running';
    void this.relist();
    if (this.resyncPeriodMs > 0) this.scheduleResync();
  }

  /** Closes the watch and cancels timers; waitForSync callers are rejected. The cache stays readable. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.generation++;
    this.watchHandle?.abort();
    this.watchHandle = undefined;
    this.cancelRetry?.();
    this.cancelResync?.();
    const error = new KubeError(KubeErrorCode.NotSynced, `informer ${this.path} stopped`);
    for (const waiter of this.syncWaiters) waiter.reject(error);
    this.syncWaiters.clear();
  }

  /** True once the first list has been loaded into the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (this.state === 'stopped') {
      return Promise.reject(new KubeError(KubeErrorCode.NotSynced, `informer ${this.path} stopped`));
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.syncWaiters.delete(waiter);
        reject(
          new KubeError(
            KubeErrorCode.NotSynced,
            `informer ${this.path}: gave up waiting for sync`,
            {},
            { cause: signal?.reason },
          ),
        );
      };
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (error: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.add(waiter);
    });
  }

  /** Registers handlers; objects already cached are delivered as adds. Returns an unsubscribe. */
  addHandler(handlers: InformerHandlers<T>): () => void {
    this.handlers.add(handlers);
    for (const object of this.cache.values()) this.call('add', () => handlers.add?.(object));
    return () => this.handlers.delete(handlers);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.cache.get(namespace ? `${namespace}/${name}` : name);
  }

  getByKey(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(namespace?: string): T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((object) => object.metadata?.namespace === namespace);
  }

  /** The resourceVersion the next watch resumes from. */
  get lastResourceVersion(): string | undefined {
    return this.resourceVersion;
  }

  stats(): InformerStats {
    return { ...this.counters };
  }

  private async relist(): Promise<void> {
    const generation = ++this.generation;
    let listed: { items: T[]; resourceVersion: string };
    try {
      listed = await this.listAll();
    } catch (error) {
      if (generation !== this.generation) return;
      this.logger.warn({ path: this.path, err: error, attempt: this.failures }, 'informer list failed');
      this.retry(() => this.relist());
      return;
    }
    if (generation !== this.generation) return;
    this.counters.lists++;
    this.replace(listed.items);
    this.resourceVersion = listed.resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const waiter of this.syncWaiters) waiter.resolve();
      this.syncWaiters.clear();
    }
    void this.watch();
  }

  /** Pages through the collection; a continue token that expired (410) restarts from the first page. */
  private async listAll(): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let resourceVersion: string | undefined;
    let token: string | undefined;
    do {
      const query: Record<string, string> = { limit: String(this.listPageSize) };
      if (this.labelSelector) query['labelSelector'] = this.labelSelector;
      if (token) query['continue'] = token;
      const page = (await this.client.list(this.path, query)) as RawList;
      if (typeof page !== 'object' || page === null || !Array.isArray(page.items)) {
        throw new KubeError(KubeErrorCode.Api, `GET ${this.path}: the answer is not a list`);
      }
      // Items of a list carry no apiVersion/kind; watch events do. Fill them in so both look alike.
      const apiVersion = typeof page.apiVersion === 'string' ? page.apiVersion : undefined;
      const kind = typeof page.kind === 'string' ? page.kind.replace(/List$/, '') : undefined;
      for (const item of page.items as unknown[]) {
        if (!isObject(item)) continue;
        const object = item as T;
        if (object.apiVersion === undefined && apiVersion !== undefined) object.apiVersion = apiVersion;
        if (object.kind === undefined && kind !== undefined) object.kind = kind;
        items.push(object);
      }
      const meta = page.metadata;
      if (resourceVersion === undefined && typeof meta?.resourceVersion === 'string') {
        resourceVersion = meta.resourceVersion;
      }
      token = typeof meta?.continue === 'string' && meta.continue !== '' ? meta.continue : undefined;
    } while (token !== undefined);
    if (resourceVersion === undefined) {
      throw new KubeError(KubeErrorCode.Api, `GET ${this.path}: the list has no resourceVersion`);
    }
    return { items, resourceVersion };
  }

  private async watch(): Promise<void> {
    const generation = ++this.generation;
    const startedAt = this.clock.now();
    let events = 0;
    // Ends this watch once, whatever ended it (server close, network error, ERROR event, bad event).
    const end = (error: unknown, gone: boolean): void => {
      if (generation !== this.generation) return;
      this.generation++;
      this.watchHandle?.abort();
      this.watchHandle = undefined;
      const healthy = events > 0 || this.clock.now() - startedAt >= this.healthyWatchMs;
      if (healthy) this.failures = 0;
      const next = gone ? () => this.relist() : () => this.watch();
      if (error) {
        this.logger.warn(
          { path: this.path, err: error, resourceVersion: this.resourceVersion, relist: gone },
          'informer watch ended with an error',
        );
      } else {
        this.logger.debug({ path: this.path, resourceVersion: this.resourceVersion }, 'informer watch ended');
      }
      if (healthy) this.schedule(next, 0);
      else this.retry(next);
    };
    const onEvent = (type: string, object: unknown): void => {
      if (generation !== this.generation) return;
      const outcome = this.handleEvent(type, object);
      if (outcome === 'ok') {
        events++;
        return;
      }
      end(outcome.error, outcome.gone);
    };
    const query: Record<string, string | number | boolean> = {
      allowWatchBookmarks: true,
      timeoutSeconds: this.watchTimeoutSeconds,
    };
    if (this.resourceVersion !== undefined) query['resourceVersion'] = this.resourceVersion;
    if (this.labelSelector) query['labelSelector'] = this.labelSelector;
    this.counters.watches++;
    try {
      const handle = await this.client.watch(this.path, query, onEvent, (error) =>
        end(error ?? undefined, httpStatusOf(error) === 410),
      );
      if (generation === this.generation) this.watchHandle = handle;
      else handle.abort();
    } catch (error) {
      end(error, httpStatusOf(error) === 410);
    }
  }

  /** Applies one watch event to the cache; anything unexpected ends the watch (never the process). */
  private handleEvent(type: string, raw: unknown): 'ok' | { error: unknown; gone: boolean } {
    if (type === 'ERROR') {
      const status = isObject(raw) ? (raw as { code?: unknown; reason?: unknown; message?: unknown }) : {};
      const code = typeof status.code === 'number' ? status.code : undefined;
      const error = new KubeError(
        KubeErrorCode.Api,
        `watch ${this.path}: ${typeof status.message === 'string' ? status.message : 'ERROR event'}`,
        { status: code, reason: typeof status.reason === 'string' ? status.reason : undefined },
      );
      return { error, gone: code === 410 };
    }
    if (!isObject(raw)) return malformed(this.path, type, 'no object');
    const object = raw as T;
    const resourceVersion = object.metadata?.resourceVersion;
    if (typeof resourceVersion !== 'string' || resourceVersion === '') {
      return malformed(this.path, type, 'no metadata.resourceVersion');
    }
    if (type === 'BOOKMARK') {
      this.resourceVersion = resourceVersion;
      return 'ok';
    }
    const key = objectKey(object);
    if (key === undefined) return malformed(this.path, type, 'no metadata.name');
    switch (type) {
      case 'ADDED':
      case 'MODIFIED': {
        const previous = this.cache.get(key);
        this.cache.set(key, object);
        if (previous === undefined) this.emit('add', (h) => h.add?.(object));
        else this.emit('update', (h) => h.update?.(previous, object));
        break;
      }
      case 'DELETED': {
        const previous = this.cache.get(key);
        this.cache.delete(key);
        this.emit('delete', (h) => h.delete?.(previous ?? object));
        break;
      }
      default:
        return malformed(this.path, type, 'unknown event type');
    }
    this.resourceVersion = resourceVersion;
    return 'ok';
  }

  /** Makes the cache equal to a fresh list, emitting what changed since the last one. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const object of items) {
      const key = objectKey(object);
      if (key === undefined) continue;
      seen.add(key);
      const previous = this.cache.get(key);
      this.cache.set(key, object);
      if (previous === undefined) this.emit('add', (h) => h.add?.(object));
      else if (previous.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
        this.emit('update', (h) => h.update?.(previous, object));
      }
    }
    for (const [key, object] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.emit('delete', (h) => h.delete?.(object));
    }
  }

  private scheduleResync(): void {
    this.cancelResync = this.clock.setTimeout(() => {
      if (this.state !== 'running') return;
      if (this.synced) {
        for (const object of this.cache.values()) this.emit('update', (h) => h.update?.(object, object));
      }
      this.scheduleResync();
    }, this.resyncPeriodMs);
  }

  private retry(next: () => Promise<void>): void {
    this.schedule(next, backoffDelay(this.failures++, this.backoff));
  }

  private schedule(next: () => Promise<void>, delayMs: number): void {
    if (this.state !== 'running') return;
    this.cancelRetry?.();
    this.cancelRetry = this.clock.setTimeout(() => {
      this.cancelRetry = undefined;
      if (this.state === 'running') void next();
    }, delayMs);
  }

  private emit(kind: keyof InformerHandlers<T>, fn: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.handlers) this.call(kind, () => fn(handlers));
  }

  private call(kind: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logger.error({ path: this.path, err: error, event: kind }, 'informer handler threw');
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(path: string, type: string, why: string): { error: unknown; gone: boolean } {
  return {
    error: new KubeError(KubeErrorCode.Api, `watch ${path}: malformed ${type} event (${why})`),
    gone: false,
  };
}
