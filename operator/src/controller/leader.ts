import { type CoordinationV1Api, type V1Lease, type V1LeaseSpec, V1MicroTime } from '@kubernetes/client-node';
import { type Clock, sleepOn, systemClock } from './clock.ts';
import { isConflict, isNotFound, KubeError, KubeErrorCode } from './errors.ts';
import type { Logger } from './logger.ts';

/** Why leadership ended: the lease could not be renewed in time, or stop() with or without release. */
export type LeadershipEnd = 'lost' | 'released' | 'stopped';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  /** Where the Lease lives (the operator's namespace). */
  namespace: string;
  /** The Lease's name, shared by all replicas. */
  name: string;
  /** This replica (the pod name); unique among candidates. */
  identity: string;
  /** How long a candidate waits, after it last saw the lease change, before taking it over. Whole seconds. */
  leaseDurationMs?: number;
  /** The leader gives up when it has not renewed for this long (must be < leaseDurationMs). */
  renewDeadlineMs?: number;
  /** Time between acquire attempts and between renewals. */
  retryPeriodMs?: number;
  /** Called when this replica becomes leader; the signal aborts when leadership ends. */
  onStartedLeading(leadership: AbortSignal): void;
  /** Called once when leadership ends. On 'lost' the process must stop acting (exit or stop controllers). */
  onStoppedLeading(reason: LeadershipEnd): void;
  /** Called when the observed holder changes (undefined: nobody holds the lease). */
  onNewLeader?(identity: string | undefined): void;
  clock?: Clock;
  logger: Logger;
  /** For the acquire-retry jitter; injectable for tests. */
  random?: () => number;
}

type Attempt = 'acquired' | 'held-by-other' | 'failed';

/**
 * Lease-based leader election (coordination.k8s.io/v1), client-go's algorithm: create the Lease or
 * take it over once it has not changed for leaseDuration as seen on *our* clock (no trust in the
 * holder's clock), writing with the read resourceVersion so two candidates cannot both win (409);
 * renew every retryPeriod; stop leading when renewals keep failing for renewDeadline, which is
 * shorter than leaseDuration so the old leader stops before anyone else may start. On a graceful
 * stop the lease is released (empty holder) so another replica takes over at once.
 */
export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly random: () => number;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private leadership: AbortController | undefined;
  /** The lease was won after stop() began: never led, but the lease is ours to hand back. */
  private wonWhileStopping = false;
  /** The last Lease read or written, and when (our clock) its resourceVersion last changed. */
  private observed: V1Lease | undefined;
  private observedAt = 0;
  private observedHolder: string | undefined;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    const leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.random = options.random ?? Math.random;
    if (
      leaseDurationMs < 1000 ||
      this.renewDeadlineMs >= leaseDurationMs ||
      this.retryPeriodMs <= 0 ||
      this.retryPeriodMs * 1.2 >= this.renewDeadlineMs
    ) {
      throw new KubeError(
        KubeErrorCode.InvalidOptions,
        'leader election needs leaseDuration >= 1 s > renewDeadline > 1.2 × retryPeriod > 0',
      );
    }
  }

  /** Starts competing for the lease in the background. */
  start(): void {
    if (this.loop !== undefined || this.stopping.signal.aborted) {
      throw new KubeError(
        KubeErrorCode.AlreadyStarted,
        `leader elector ${this.options.identity} was already started`,
      );
    }
    this.loop = this.run().catch((error: unknown) => {
      // run() handles API errors itself; this is a bug guard, and leadership must not outlive it.
      this.logger.error({ err: error, lease: this.leaseName() }, 'leader election loop failed');
      this.endLeadership('lost');
    });
  }

  /**
   * Stops competing. With `release` (default) a held lease is handed back at once; without it the
   * lease simply expires (what a crashed process does). Idempotent.
   */
  stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping.abort();
      await this.loop;
      if (!this.isLeader()) {
        if (this.wonWhileStopping && (options.release ?? true)) await this.release();
        return;
      }
      if (options.release ?? true) {
        await this.release();
        this.endLeadership('released');
      } else {
        this.endLeadership('stopped');
      }
    })();
    return this.stopped;
  }

  isLeader(): boolean {
    return this.leadership !== undefined;
  }

  /** The holder seen in the last Lease read or written. */
  get leader(): string | undefined {
    return this.observedHolder;
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    for (;;) {
      if (signal.aborted) return;
      if ((await this.tryAcquireOrRenew(this.clock.now() + this.renewDeadlineMs)) === 'acquired') break;
      await sleepOn(this.clock, this.retryPeriodMs * (1 + 0.2 * this.random()), signal);
    }
    if (signal.aborted) {
      // Won just as stop() was called: starting the controllers now would reconcile after the
      // shutdown began, so leadership never starts; stop() hands the lease back.
      this.wonWhileStopping = true;
      return;
    }
    this.beginLeadership();
    let renewedAt = this.clock.now();
    for (;;) {
      await sleepOn(this.clock, this.retryPeriodMs, signal);
      if (signal.aborted) return;
      const outcome = await this.tryAcquireOrRenew(renewedAt + this.renewDeadlineMs);
      if (outcome === 'acquired') {
        renewedAt = this.clock.now();
        continue;
      }
      const late = this.clock.now() - renewedAt;
      if (outcome === 'held-by-other' || late >= this.renewDeadlineMs) {
        this.logger.error(
          {
            lease: this.leaseName(),
            identity: this.options.identity,
            holder: this.observedHolder,
            sinceRenewMs: late,
          },
          'leadership lost',
        );
        this.endLeadership('lost');
        return;
      }
    }
  }

  /** One read-then-write round; every request must finish by `deadline` (our clock). */
  private async tryAcquireOrRenew(deadline: number): Promise<Attempt> {
    const { api, namespace, name, identity } = this.options;
    const now = this.clock.now();
    let lease: V1Lease;
    try {
      lease = await this.within(deadline, api.readNamespacedLease({ name, namespace }));
    } catch (error) {
      if (!isNotFound(error)) return this.failed(error, 'read');
      try {
        const created = await this.within(
          deadline,
          api.createNamespacedLease({
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace },
              spec: this.spec(now, undefined),
            },
          }),
        );
        this.observe(created, now);
        return 'acquired';
      } catch (createError) {
        if (isConflict(createError)) return 'failed'; // another candidate created it first
        return this.failed(createError, 'create');
      }
    }
    this.observe(lease, now);
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== undefined && holder !== identity && this.observedValid(now)) return 'held-by-other';
    try {
      const written = await this.within(
        deadline,
        api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: this.spec(now, lease.spec) } }),
      );
      this.observe(written, now);
      return 'acquired';
    } catch (error) {
      if (isConflict(error)) return 'failed'; // the lease changed since our read
      return this.failed(error, 'update');
    }
  }

  /** Our spec for a write at `now`: a renewal keeps acquireTime and the transition count. */
  private spec(now: number, previous: V1LeaseSpec | undefined): V1LeaseSpec {
    const ours = previous?.holderIdentity === this.options.identity;
    const transitions = previous?.leaseTransitions ?? 0;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
      // MicroTime: the server parses exactly six fractional digits; a plain Date sends three (HTTP 400).
      acquireTime: (ours ? microTime(previous?.acquireTime) : undefined) ?? new V1MicroTime(now),
      renewTime: new V1MicroTime(now),
      leaseTransitions: previous === undefined ? 0 : ours ? transitions : transitions + 1,
    };
  }

  /** Hands the lease back: no holder and a 1 s duration, as client-go's ReleaseOnCancel. */
  private async release(): Promise<void> {
    const lease = this.observed;
    if (lease?.spec?.holderIdentity !== this.options.identity) return;
    const now = this.clock.now();
    try {
      await this.within(
        now + this.renewDeadlineMs,
        this.options.api.replaceNamespacedLease({
          name: this.options.name,
          namespace: this.options.namespace,
          body: {
            ...lease,
            spec: {
              holderIdentity: '',
              leaseDurationSeconds: 1,
              acquireTime: new V1MicroTime(now),
              renewTime: new V1MicroTime(now),
              leaseTransitions: lease.spec.leaseTransitions ?? 0,
            },
          },
        }),
      );
      this.logger.info({ lease: this.leaseName(), identity: this.options.identity }, 'leadership released');
    } catch (error) {
      // 409: the lease changed since our last renewal, so it is not ours to release any more.
      this.logger.warn(
        { err: error, lease: this.leaseName() },
        'could not release the lease; it will expire',
      );
    }
  }

  private observe(lease: V1Lease, now: number): void {
    if (lease.metadata?.resourceVersion !== this.observed?.metadata?.resourceVersion) this.observedAt = now;
    this.observed = lease;
    const holder = lease.spec?.holderIdentity || undefined;
    if (holder !== this.observedHolder) {
      this.observedHolder = holder;
      this.logger.info({ lease: this.leaseName(), holder }, 'new leader observed');
      try {
        this.options.onNewLeader?.(holder);
      } catch (error) {
        this.logger.error({ err: error }, 'onNewLeader threw');
      }
    }
  }

  /** The observed holder's lease is still valid: it changed less than its duration ago (our clock). */
  private observedValid(now: number): boolean {
    const seconds = this.observed?.spec?.leaseDurationSeconds ?? this.leaseDurationSeconds;
    return this.observedAt + seconds * 1000 > now;
  }

  private beginLeadership(): void {
    if (this.leadership !== undefined) return;
    this.leadership = new AbortController();
    this.logger.info({ lease: this.leaseName(), identity: this.options.identity }, 'started leading');
    try {
      this.options.onStartedLeading(this.leadership.signal);
    } catch (error) {
      this.logger.error({ err: error }, 'onStartedLeading threw');
    }
  }

  private endLeadership(reason: LeadershipEnd): void {
    const leadership = this.leadership;
    if (leadership === undefined) return;
    this.leadership = undefined;
    leadership.abort(reason);
    try {
      this.options.onStoppedLeading(reason);
    } catch (error) {
      this.logger.error({ err: error }, 'onStoppedLeading threw');
    }
  }

  private failed(error: unknown, step: string): 'failed' {
    this.logger.warn({ err: error, lease: this.leaseName(), step }, 'leader election request failed');
    return 'failed';
  }

  /** `request`, or a Timeout error at `deadline` (the request is left to finish in the background). */
  private within<T>(deadline: number, request: Promise<T>): Promise<T> {
    const ms = Math.max(1, deadline - this.clock.now());
    return new Promise<T>((resolve, reject) => {
      const cancel = this.clock.setTimeout(
        () =>
          reject(
            new KubeError(KubeErrorCode.Timeout, `lease ${this.leaseName()}: no answer within ${ms} ms`),
          ),
        ms,
      );
      request.then(
        (value) => {
          cancel();
          resolve(value);
        },
        (error: unknown) => {
          cancel();
          reject(error);
        },
      );
    });
  }

  private leaseName(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }
}

/**
 * A Lease time as read back: client-node leaves MicroTime fields as the server's string (the type
 * says V1MicroTime); resending it needs a V1MicroTime again.
 */
function microTime(value: unknown): V1MicroTime | undefined {
  if (value instanceof Date) return new V1MicroTime(value.getTime());
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new V1MicroTime(ms);
}
