import { setTimeout as sleep } from 'node:timers/promises';
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { DomainIndex } from '@petrel/config';
import type { TlsaAnswer } from '@petrel/dns';
import {
  BodyType,
  DeliverByMode,
  type DeliveryEvent,
  DsnReturn,
  type Envelope,
  EventKind,
  timestampDate,
} from '@petrel/proto';
import {
  type AckPublisher,
  DeferHeader,
  decodeEnvelope,
  deferEntry,
  deliveryConsumerName,
  deliveryEvent,
  encodeEnvelope,
  entryDedupeId,
  loadBody,
  OUTBOUND_SHARDS,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import { type DsnNotify, type Reply, SmtpClient, SmtpClientError, SmtpClientErrorCode } from '@petrel/smtp';
import { inSpan, type Logger } from '@petrel/telemetry';
import type { DsnHook } from './bounce.ts';
import type { DeliveryConfig } from './config.ts';
import { danePolicy, daneVerifier } from './dane.ts';
import { type DkimAlgorithm, signMessage } from './dkim.ts';
import { isThrottling } from './health.ts';
import { ShardLeases } from './leases.ts';
import type { Admission, DestinationLimiter, DestinationLimits } from './limiter.ts';
import { type MtaSts, mxMatches } from './mta-sts.ts';
import type { RouteResolver } from './mx.ts';
import type { DestinationControls } from './operations.ts';
import { PolicyIndex, type PolicyMatch } from './policies.ts';
import { ConnectionPool } from './pool.ts';
import { type RelayHost, route, type Target } from './router.ts';
import { delayNoticeDue, type NextStep, nextStep, type RetryPolicy } from './schedule.ts';
import { SettleBatch } from './settle-batch.ts';
import { type SuppressionList, suppresses } from './suppressions.ts';

export interface WorkerDeps {
  js: JetStreamClient;
  /** Events and acks go over its shared reply subscription (packages/queue ack-publisher.ts). */
  publisher: AckPublisher;
  log: Logger;
  domains: () => DomainIndex;
  config: DeliveryConfig;
  resolver: RouteResolver;
  retryPolicy: RetryPolicy;
  suppressions?: SuppressionList;
  controls?: DestinationControls;
  /** MTA-STS policies (RFC 8461) of MX destinations. */
  mtaSts?: MtaSts;
  /** Extra CA certificates trusted for TLS to next hops (tests; the system's store otherwise). */
  tlsCa?: string | Buffer;
  /** Queues DSNs (failures, expiry, and the delay DSN of RFC 3461 NOTIFY=DELAY) before the ack. */
  bounces?: DsnHook;
  /** Shard ownership bucket (leases.ts); without it the worker consumes every shard (one worker only). */
  leases?: KV;
  /** This worker's name in the leases bucket (unique per process). */
  workerId?: string;
  /** Ready queues, rate and connection limits, destination health (limiter.ts). */
  limiter: DestinationLimiter;
  /** TLSA lookups through trusted validating resolvers; DANE (RFC 7672) applies when set. */
  dane?: { tlsa(name: string): Promise<TlsaAnswer> };
  /** The global smarthost with its AUTH credentials, if any (overrides config.smarthost). */
  smarthost?: RelayHost;
}

interface Outcome {
  /** Targets that could not be connected to (refused, timed out, 4xx greeting, TLS demand unmet). */
  connectFailures: number;
  /** A throttling reply at connect (e.g. 421 greeting). */
  throttledAtConnect: boolean;
  delivered: string[];
  deferred: string[];
  bounced: string[];
  /** The reply that decided each recipient. */
  replies: Map<string, Reply>;
  reply: Reply | undefined;
  error: string;
  remoteHost: string;
  remoteAddress: string;
  tlsProtocol: string;
  /** The message as queued, once loaded (for DSNs). */
  body?: Buffer;
}

/** A recipient that failed for good, for the DSN. */
export interface FailedRecipient {
  readonly address: string;
  readonly reply: Reply | undefined;
  readonly expired: boolean;
  readonly remoteHost: string;
}

type Plan =
  | { readonly kind: 'settled'; readonly outcome: Outcome; readonly match?: PolicyMatch | undefined }
  | {
      readonly kind: 'send';
      readonly targets: readonly Target[];
      readonly pending: readonly string[];
      /** The destination whose ready queue and limits apply. */
      readonly key: string;
      readonly limits: DestinationLimits;
      readonly match: PolicyMatch | undefined;
      readonly outcome: Outcome;
    };

/** One shard being consumed. */
interface ShardRun {
  readonly abort: AbortController;
  /** Resolves when the shard is released (one listener for the run's lifetime). */
  readonly stopped: Promise<void>;
  readonly tasks: Set<Promise<void>>;
  loop: Promise<void>;
  batch?: ConsumerMessages;
}

function emptyOutcome(): Outcome {
  return {
    connectFailures: 0,
    throttledAtConnect: false,
    delivered: [],
    deferred: [],
    bounced: [],
    replies: new Map(),
    reply: undefined,
    error: '',
    remoteHost: '',
    remoteAddress: '',
    tlsProtocol: '',
  };
}

/** Puts recipients on one outcome list with the reply that decided them. */
function record(o: Outcome, list: string[], reply: Reply | undefined, recipients: readonly string[]): void {
  list.push(...recipients);
  if (reply) for (const r of recipients) o.replies.set(r, reply);
  o.reply = reply ?? o.reply;
}

/**
 * The host did not take a connection at all (refused, timed out, dropped or 4xx at the greeting);
 * a TLS or AUTH failure is a host that answers, so it does not count towards backing the site off.
 */
function unreachable(error: unknown): boolean {
  if (!(error instanceof SmtpClientError)) return true;
  switch (error.code) {
    case SmtpClientErrorCode.Connect:
    case SmtpClientErrorCode.Timeout:
    case SmtpClientErrorCode.ConnectionLost:
      return true;
    case SmtpClientErrorCode.Rejected:
      return error.reply === undefined || error.reply.code < 500;
    default:
      return false;
  }
}

/** A DeliveryPolicy's TLS demand and connection reuse on a target (MTA-STS may raise TLS later). */
function withPolicy(target: Target, match: PolicyMatch | undefined): Target {
  const p = match?.policy;
  if (p === undefined) return target;
  return {
    ...target,
    ...(p.tls === 'opportunistic' ? {} : { tls: p.tls }),
    ...(p.messagesPerConnection === undefined ? {} : { maxMessages: p.messagesPerConnection }),
  };
}

const EVENT_TIMEOUT_MS = 5_000;
const SUSPENDED_RECHECK_MS = 5 * 60_000;

/**
 * Consumes the outbound queue and relays each entry to its next hop (docs/queue-model.md). An
 * entry is acked only after every recipient is settled: delivered, refused for good (DSN queued
 * first) or deferred — the rest scheduled as a new entry for its next attempt before the ack. A
 * worker that dies mid-delivery leaves the entry unacked; JetStream redelivers it after ack_wait.
 */
export class DeliveryWorker {
  readonly #deps: WorkerDeps;
  readonly #pool: ConnectionPool;
  readonly #leases: ShardLeases | undefined;
  readonly #shards = new Map<number, ShardRun>();
  /** Entries held (waiting or delivering): their ack deadline is extended together. */
  readonly #held = new Set<JsMsg>();
  readonly #tasks = new Set<Promise<void>>();
  /** Entries being worked on, not counting those waiting in a destination's ready queue. */
  #busy = 0;
  /** Resolved (and replaced) whenever an entry finishes: every waiting shard loop re-checks. */
  #roomChanged = Promise.withResolvers<void>();
  #keepAlive: NodeJS.Timeout | undefined;
  #stopping = false;
  #policies: { config: unknown; index: PolicyIndex } | undefined;
  /** Events and acks of the entries settled in one event-loop turn go to NATS in one write. */
  readonly #settled: SettleBatch;

  constructor(deps: WorkerDeps) {
    this.#deps = deps;
    const { config } = deps;
    this.#settled = new SettleBatch({
      publisher: deps.publisher,
      log: deps.log,
      timeoutMs: EVENT_TIMEOUT_MS,
    });
    this.#pool = new ConnectionPool({
      maxPerHost: config.maxConnectionsPerHost,
      maxMessagesPerConnection: config.messagesPerConnection,
      idleMs: config.connectionIdleMs,
      connect: (target) =>
        SmtpClient.connect({
          host: target.host,
          port: target.port,
          servername: target.name,
          localName: config.hostname,
          protocol: target.lmtp ? 'lmtp' : 'smtp',
          timeouts: { connect: config.connectTimeoutMs },
          ...(target.tls === undefined
            ? {}
            : target.tls === 'dane'
              ? // RFC 7672 §3: the TLSA records authenticate the peer, not the WebPKI.
                { tls: 'required' as const, verifyPeer: daneVerifier(target.tlsa ?? [], target.name) }
              : { tls: 'required' as const, rejectUnauthorized: target.tls === 'verified' }),
          ...(target.auth === undefined ? {} : { auth: target.auth }),
          ...(deps.tlsCa === undefined || target.tls === 'dane' ? {} : { ca: deps.tlsCa }),
        }),
    });
    if (deps.leases !== undefined) {
      this.#leases = new ShardLeases({
        kv: deps.leases,
        workerId: deps.workerId ?? `${process.pid}`,
        shards: OUTBOUND_SHARDS,
        renewMs: config.leaseRenewMs,
        acquired: (shard) => this.#startShard(shard),
        released: (shard) => this.#stopShard(shard),
        log: deps.log,
      });
    }
  }

  /** Entries held now (waiting for their destination or being delivered). */
  get inFlight(): number {
    return this.#held.size;
  }

  /** Shards this worker consumes now. */
  get shards(): readonly number[] {
    return [...this.#shards.keys()].sort((a, b) => a - b);
  }

  /** Live workers sharing the queue (for limits divided among them). */
  get workers(): number {
    return this.#leases?.workers ?? 1;
  }

  /** Claims shards and consumes them until stop(). */
  async run(): Promise<void> {
    const every = Math.max(1000, this.#deps.config.ackWaitMs / 3);
    this.#keepAlive = setInterval(() => {
      for (const m of this.#held) m.working();
    }, every);
    if (this.#leases === undefined) {
      for (let shard = 0; shard < OUTBOUND_SHARDS; shard++) this.#startShard(shard);
    } else {
      await this.#leases.start();
    }
  }

  /** Stops taking entries, hands the shards back and waits for deliveries in progress (up to graceMs). */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    let timer: NodeJS.Timeout | undefined;
    const handBack = this.#leases
      ? this.#leases.stop()
      : Promise.all([...this.#shards.keys()].map((s) => this.#stopShard(s)));
    await Promise.race([
      handBack,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    clearInterval(this.#keepAlive);
    await this.#pool.close();
  }

  #startShard(shard: number): void {
    if (this.#shards.has(shard)) return;
    const abort = new AbortController();
    const stopped = new Promise<void>((resolve) =>
      abort.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
    const run: ShardRun = { abort, stopped, tasks: new Set(), loop: Promise.resolve() };
    run.loop = this.#consume(shard, run).catch((error: unknown) => {
      this.#deps.log.error({ err: error, shard }, 'shard consumer failed');
    });
    this.#shards.set(shard, run);
  }

  /** Stops pulling the shard; entries still waiting go back (nak) for the next owner; deliveries finish. */
  async #stopShard(shard: number): Promise<void> {
    const run = this.#shards.get(shard);
    if (run === undefined) return;
    this.#shards.delete(shard);
    run.abort.abort(new Error('shard released'));
    run.batch?.stop();
    await run.loop;
    await Promise.all(run.tasks);
  }

  async #consume(shard: number, run: ShardRun): Promise<void> {
    const signal = run.abort.signal;
    let pause = 250;
    while (!signal.aborted) {
      try {
        await this.#pull(shard, run);
      } catch (error) {
        if (signal.aborted) break;
        // NATS restarting, a leader election, the consumer being recreated: keep the shard, retry.
        this.#deps.log.warn({ err: error, shard }, 'shard consumer interrupted; pulling again');
        await sleep(pause, undefined, { signal }).catch(() => undefined);
        pause = Math.min(pause * 2, 5_000);
      }
    }
  }

  async #pull(shard: number, run: ShardRun): Promise<void> {
    const { js, config } = this.#deps;
    const consumer = await js.consumers.get(STREAM_OUTBOUND, deliveryConsumerName(shard));
    const signal = run.abort.signal;
    while (!signal.aborted) {
      await this.#room(run);
      if (signal.aborted) break;
      const batch = await consumer.fetch({
        max_messages: Math.max(1, Math.min(64, config.concurrency - this.#busy)),
        expires: 5_000,
      });
      run.batch = batch;
      // Released while the pull was being set up: end it now, not at its expiry.
      if (signal.aborted) batch.stop();
      for await (const m of batch) {
        if (signal.aborted || this.#stopping) {
          m.nak(); // not started: straight to the next owner
          continue;
        }
        this.#busy++;
        this.#held.add(m);
        const task = this.#handle(m, signal)
          .catch((error: unknown) => {
            if (signal.aborted) {
              m.nak();
              return;
            }
            this.#deps.log.error(
              { err: error, seq: m.seq },
              'delivery task failed; entry will be redelivered',
            );
          })
          .finally(() => {
            this.#held.delete(m);
            this.#idle();
          });
        run.tasks.add(task);
        void task.finally(() => run.tasks.delete(task));
      }
    }
  }

  /** Resolves when fewer than `concurrency` entries are being worked on. */
  async #room(run: ShardRun): Promise<void> {
    // All shard loops wait on one signal and each re-checks: waking only one of them let idle
    // shards' loops queue ahead of a busy one and starve it for good.
    while (this.#busy >= this.#deps.config.concurrency && !run.abort.signal.aborted) {
      await Promise.race([this.#roomChanged.promise, run.stopped]);
    }
  }

  #idle(): void {
    this.#busy--;
    this.#roomChanged.resolve();
    this.#roomChanged = Promise.withResolvers<void>();
  }

  /** Waiting in a ready queue does not count against the worker's concurrency. */
  async #admit(key: string, limits: DestinationLimits, signal: AbortSignal): Promise<Admission> {
    this.#idle();
    try {
      return await this.#deps.limiter.admit(key, limits, signal);
    } finally {
      this.#busy++;
    }
  }

  #policyIndex(): PolicyIndex {
    const config = this.#deps.domains().config;
    if (this.#policies?.config !== config) {
      this.#policies = { config, index: new PolicyIndex(config.policies) };
    }
    return this.#policies.index;
  }

  async #handle(m: JsMsg, signal: AbortSignal): Promise<void> {
    const envelope = decodeEnvelope(m.data);
    // Attempts made before this entry was (re)scheduled, plus this one; a redelivery after a
    // worker died counts as an attempt too.
    const attempt = Number(m.headers?.get(DeferHeader.attempt) || 0) + m.info.deliveryCount;
    const until = this.#deps.controls?.suspendedUntil(envelope.destinationDomain);
    if (until !== undefined) {
      // Suspended by an operator: back to waiting, not counted as an attempt; looked at again
      // at the end of the suspension or in 5 minutes, whichever comes first.
      const at = new Date(Math.min(until.getTime(), Date.now() + SUSPENDED_RECHECK_MS));
      await this.#redefer(m, envelope, attempt, at, 'destination suspended');
      return;
    }
    await inSpan('smtp.deliver', envelope.trace, async (span) => {
      try {
        span.setAttribute('petrel.message_id', envelope.messageId);
        span.setAttribute('petrel.attempt', attempt);
        const started = Date.now();
        const plan = await this.#plan(envelope);
        let outcome: Outcome;
        let policy = plan.match?.policy;
        if (plan.kind === 'settled') {
          outcome = plan.outcome;
        } else {
          const sender = this.#senderLimit(envelope);
          if (sender !== undefined) {
            const a = await this.#admit(sender.key, sender.limits, signal);
            if (a.kind === 'defer') {
              await this.#redefer(m, envelope, attempt, a.at, `sender ${a.reason}`);
              return;
            }
            a.release(); // a rate only: nothing to hold
          }
          const admission = await this.#admit(plan.key, plan.limits, signal);
          if (admission.kind === 'defer') {
            await this.#redefer(m, envelope, attempt, admission.at, admission.reason);
            return;
          }
          try {
            outcome = await this.#send(envelope, plan.targets, plan.pending, plan.outcome);
          } finally {
            admission.release();
          }
          this.#feedback(plan.key, outcome, plan.targets.length);
          policy = plan.match?.policy;
        }
        await this.#settle(m, envelope, attempt, outcome, Date.now() - started, policy?.retryDelaysMs);
      } finally {
        span.end();
      }
    });
  }

  /**
   * Re-defers an entry that was not attempted (suspended, destination backed off or its queue
   * full): no attempt counted. Past its lifetime it is settled as a failed attempt instead, so
   * that it expires with a DSN rather than waiting forever.
   */
  async #redefer(m: JsMsg, envelope: Envelope, attempt: number, at: Date, reason: string): Promise<void> {
    const expiresAt = this.#expiresAt(envelope);
    if (at.getTime() >= expiresAt.getTime()) {
      const outcome = emptyOutcome();
      const reply = localReply(451, '4.4.1', `Not attempted: ${reason}`);
      outcome.deferred.push(...envelope.recipients.map((r) => r.address));
      for (const r of outcome.deferred) outcome.replies.set(r, reply);
      outcome.reply = reply;
      outcome.error = reason;
      await this.#settle(m, envelope, attempt, outcome, 0, undefined);
      return;
    }
    await deferEntry(this.#deps.js, {
      messageId: envelope.messageId,
      destinationDomain: envelope.destinationDomain,
      payload: m.data,
      ...(m.headers ? { headers: m.headers } : {}),
      attempt: attempt - 1,
      at,
      timeoutMs: EVENT_TIMEOUT_MS,
      dedupeId: `${entryDedupeId(envelope.messageId, envelope.destinationDomain)}.s${Date.now()}`,
    });
    // Recorded (for the message's timeline) but not counted as an attempt.
    const held = emptyOutcome();
    held.error = `not attempted: ${reason}; next look at ${at.toISOString()}`;
    const event = this.#eventOf(
      envelope,
      attempt - 1,
      held,
      0,
      EventKind.DEFERRED,
      envelope.recipients.map((r) => r.address),
      `held.${Date.now()}`,
    );
    await this.#settled.settle(m, event === undefined ? [] : [event]);
  }

  #expiresAt(envelope: Envelope): Date {
    const received = envelope.receivedAt ? timestampDate(envelope.receivedAt) : new Date();
    return new Date(received.getTime() + this.#lifetimeMs(envelope));
  }

  /** The sender MailDomain's queue lifetime, else the worker's. */
  #lifetimeMs(envelope: Envelope): number {
    const own = envelope.senderDomain
      ? this.#deps.domains().known(envelope.senderDomain)?.outbound.queueLifetimeMs
      : undefined;
    return own ?? this.#deps.retryPolicy.lifetimeMs;
  }

  /** The sender MailDomain's outbound rate (fairness between tenants), shared by the cluster. */
  #senderLimit(envelope: Envelope): { key: string; limits: DestinationLimits } | undefined {
    if (!envelope.senderDomain) return undefined;
    const rate = this.#deps.domains().known(envelope.senderDomain)?.outbound.ratePerSecond;
    if (rate === undefined) return undefined;
    return {
      key: `sender:${envelope.senderDomain.toLowerCase()}`,
      limits: { ratePerSecond: rate, adaptive: false, shared: true },
    };
  }

  /** Throttling replies lower the destination's rate; a destination none of whose hosts answered is backed off. */
  #feedback(key: string, o: Outcome, targets: number): void {
    const limiter = this.#deps.limiter;
    if (o.connectFailures >= targets && targets > 0) limiter.allHostsFailed(key);
    else if (o.remoteHost !== '') limiter.up(key);
    const replies = [...o.replies.values(), ...(o.reply ? [o.reply] : [])];
    if (replies.some(isThrottling) || o.throttledAtConnect) limiter.throttled(key);
  }

  /**
   * Everything decided before a connection: suppressed recipients, the route (MX, relay, inbound
   * route), the MTA-STS policy, the DeliveryPolicy and with it the destination's limits.
   */
  async #plan(envelope: Envelope): Promise<Plan> {
    const outcome = emptyOutcome();
    let pending = envelope.recipients.map((r) => r.address);
    // Suppressed recipients bounce without a connection attempt.
    if (this.#deps.suppressions !== undefined && this.#deps.config.suppressionMs > 0) {
      const left: string[] = [];
      for (const address of pending) {
        const s = this.#deps.suppressions.get(address);
        if (s === undefined) left.push(address);
        else
          record(
            outcome,
            outcome.bounced,
            localReply(550, s.status, `Recipient suppressed until ${s.expiresAt}: ${s.reason}`),
            [address],
          );
      }
      pending = left;
      if (pending.length === 0) return { kind: 'settled', outcome };
    }
    const policies = this.#policyIndex();
    const routing = await route(envelope, {
      domains: this.#deps.domains,
      smarthost: this.#deps.smarthost ?? this.#deps.config.smarthost,
      policies,
      resolver: this.#deps.resolver,
      mxPort: this.#deps.config.mxPort,
    });
    if (routing.kind === 'fail') {
      const reply = localReply(routing.code, routing.status, routing.reason);
      record(outcome, routing.permanent ? outcome.bounced : outcome.deferred, reply, pending);
      outcome.error = routing.reason;
      return { kind: 'settled', outcome };
    }
    const match = policies.match(
      envelope.destinationDomain,
      routing.viaMx === true ? routing.targets.map((t) => t.name) : [],
    );
    let targets = routing.targets.map((t) => withPolicy(t, match));
    if (routing.viaMx === true && this.#deps.mtaSts !== undefined) {
      const policy = await this.#deps.mtaSts.policy(envelope.destinationDomain).catch(() => undefined);
      if (policy?.mode === 'enforce') {
        // RFC 8461 §5: only MX hosts the policy names, only over validated TLS; else defer.
        targets = targets
          .filter((t) => mxMatches(policy.mx, t.name))
          .map((t) => ({ ...t, tls: 'verified' as const }));
        if (targets.length === 0) {
          const reply = localReply(
            451,
            '4.7.5',
            `MTA-STS policy ${policy.id}: no MX host of ${envelope.destinationDomain} matches it`,
          );
          record(outcome, outcome.deferred, reply, pending);
          outcome.error = reply.lines[0] as string;
          return { kind: 'settled', outcome, match };
        }
      }
    }
    if (routing.viaMx === true && this.#deps.dane !== undefined) {
      targets = await this.#applyDane(targets, this.#deps.dane);
      if (targets.length === 0) {
        const reply = localReply(
          451,
          '4.7.5',
          'DANE: the TLSA records of every MX host could not be looked up',
        );
        record(outcome, outcome.deferred, reply, pending);
        outcome.error = reply.lines[0] as string;
        return { kind: 'settled', outcome, match };
      }
    }
    const p = match?.policy;
    const limits: DestinationLimits = {
      ratePerSecond: p?.ratePerSecond,
      maxConnections: p?.maxConnections,
      adaptive: p?.adaptive ?? false,
      shared: match?.scope === 'rollup',
    };
    const key =
      match?.scope === 'rollup' ? `rollup:${match.policy.source}` : `domain:${envelope.destinationDomain}`;
    return { kind: 'send', targets, pending, key, limits, match, outcome };
  }

  /**
   * DANE (RFC 7672 §2.2) per MX host: secure usable TLSA records → TLS authenticated by them
   * (instead of MTA-STS's certificate check; its MX filter stays); secure but unusable → TLS
   * without authentication, never plaintext; lookup failure (bogus, SERVFAIL) → the host is not
   * used; no records or insecure → unchanged.
   */
  async #applyDane(targets: readonly Target[], dane: { tlsa(name: string): Promise<TlsaAnswer> }) {
    const names = [...new Set(targets.map((t) => `${t.name}\0${t.port}`))];
    const policies = new Map(
      await Promise.all(
        names.map(async (key) => {
          const [name, port] = key.split('\0') as [string, string];
          return [key, await danePolicy(name, Number(port), { tlsa: (n) => dane.tlsa(n) })] as const;
        }),
      ),
    );
    const out: Target[] = [];
    for (const t of targets) {
      const policy = policies.get(`${t.name}\0${t.port}`);
      if (policy === undefined || policy.kind === 'none') out.push(t);
      else if (policy.kind === 'dane') out.push({ ...t, tls: 'dane', tlsa: policy.records });
      else if (policy.kind === 'encrypt')
        out.push({ ...t, tls: t.tls === 'verified' ? 'verified' : 'encrypted' });
      else
        this.#deps.log.warn(
          { host: t.name, reason: policy.reason },
          'DANE: TLSA lookup failed; MX host skipped',
        );
    }
    return out;
  }

  /** One attempt over the planned targets; `outcome` may already hold the suppressed recipients. */
  async #send(
    envelope: Envelope,
    targets: readonly Target[],
    pending: readonly string[],
    outcome: Outcome,
  ): Promise<Outcome> {
    let body: Buffer;
    try {
      body = await loadBody(this.#deps.js, envelope);
      outcome.body = body;
    } catch (error) {
      record(outcome, outcome.deferred, undefined, pending);
      outcome.error = error instanceof Error ? error.message : String(error);
      return outcome;
    }
    body = this.#sign(envelope, body);
    const byAddress = new Map(envelope.recipients.map((r) => [r.address, r]));
    const failures: string[] = [];
    // RFC 5321 §5.1: try each MX host (each address) in order until one takes the transaction.
    let requeued = false;
    for (let i = 0; i < targets.length; i++) {
      const target = targets[i] as Target;
      let client: SmtpClient;
      try {
        client = await this.#pool.acquire(target);
      } catch (error) {
        if (unreachable(error)) outcome.connectFailures++;
        if (error instanceof SmtpClientError && error.reply !== undefined && isThrottling(error.reply)) {
          outcome.throttledAtConnect = true;
        }
        failures.push(
          `${target.name}[${target.host}]:${target.port}: ${error instanceof Error ? error.message : String(error)}`,
        );
        continue;
      }
      outcome.remoteHost = `${target.name}:${target.port}`;
      outcome.remoteAddress = client.remoteAddress;
      outcome.tlsProtocol = client.tls.version ?? '';
      try {
        const result = await client.send(
          {
            from: envelope.sender,
            to: pending.map((address) => {
              const r = byAddress.get(address);
              return {
                address,
                ...(r?.notify.length ? { notify: r.notify as DsnNotify[] } : {}),
                ...(r?.orcpt ? { orcpt: r.orcpt } : {}),
              };
            }),
            dsn: {
              ...(envelope.dsnReturn === DsnReturn.FULL ? { ret: 'FULL' as const } : {}),
              ...(envelope.dsnReturn === DsnReturn.HEADERS ? { ret: 'HDRS' as const } : {}),
              ...(envelope.dsnEnvid ? { envid: envelope.dsnEnvid } : {}),
            },
            requireTls: envelope.requireTls,
            smtputf8: envelope.smtputf8,
            ...(envelope.bodyType === BodyType.BODY_TYPE_BINARYMIME ? { body: 'BINARYMIME' as const } : {}),
          },
          body,
        );
        for (const r of result.recipients) {
          const list =
            r.status === 'delivered'
              ? outcome.delivered
              : r.status === 'failed'
                ? outcome.bounced
                : outcome.deferred;
          record(outcome, list, r.reply, [r.address]);
        }
        this.#pool.release(target, client);
      } catch (error) {
        this.#pool.discard(target, client);
        const e = error instanceof SmtpClientError ? error : undefined;
        if (e?.code === SmtpClientErrorCode.Unusable && !requeued) {
          // Queued behind a transaction whose connection failed; nothing of this message was
          // sent: once more on another connection to the same host.
          requeued = true;
          i--;
          continue;
        }
        // Lost mid-transaction: whatever the next hop did not confirm is deferred (it may arrive
        // twice — the one duplicate SMTP cannot avoid).
        const done = new Set([...outcome.delivered, ...outcome.bounced]);
        record(
          outcome,
          outcome.deferred,
          e?.reply,
          pending.filter((a) => !done.has(a)),
        );
        outcome.error = error instanceof Error ? error.message : String(error);
      }
      return outcome;
    }
    record(outcome, outcome.deferred, undefined, pending);
    outcome.error = `no host took the connection: ${failures.join('; ')}`;
    return outcome;
  }

  async #settle(
    m: JsMsg,
    envelope: Envelope,
    attempt: number,
    o: Outcome,
    durationMs: number,
    retryDelaysMs: readonly number[] | undefined,
  ) {
    const retryPolicy: RetryPolicy = {
      ...this.#deps.retryPolicy,
      ...(retryDelaysMs === undefined ? {} : { delaysMs: retryDelaysMs }),
      lifetimeMs: this.#lifetimeMs(envelope),
    };
    const { js, log } = this.#deps;
    const events: DeliveryEvent[] = [];
    const emit = (kind: EventKind, recipients: string[], suffix: string) => {
      const event = this.#eventOf(envelope, attempt, o, durationMs, kind, recipients, suffix);
      if (event !== undefined) events.push(event);
    };
    const logFields = {
      messageId: envelope.messageId,
      domain: envelope.destinationDomain,
      attempt,
      reply: o.reply?.lines.join(' '),
      error: o.error,
    };
    const now = new Date();
    let expired: string[] = [];
    let step: NextStep | undefined;
    if (o.deferred.length > 0) {
      step = nextStep(retryPolicy, {
        attempts: attempt,
        receivedAt: envelope.receivedAt ? timestampDate(envelope.receivedAt) : now,
        now,
        returnBy:
          envelope.deliverBy && envelope.deliverByMode === DeliverByMode.RETURN
            ? timestampDate(envelope.deliverBy)
            : undefined,
      });
      if (step.kind === 'expire') {
        expired = o.deferred;
        for (const r of expired) {
          const last = o.replies.get(r);
          o.replies.set(
            r,
            localReply(
              554,
              step.status,
              `Delivery time expired${last ? `; last reply: ${last.code} ${last.lines.join(' ')}` : o.error ? `; ${o.error}` : ''}`,
            ),
          );
        }
        o.deferred = [];
      }
    }
    emit(EventKind.DELIVERED, o.delivered, 'delivered');
    emit(EventKind.BOUNCED, o.bounced, 'bounced');
    emit(EventKind.EXPIRED, expired, 'expired');
    emit(EventKind.DEFERRED, o.deferred, 'deferred');
    if (o.delivered.length > 0) log.info({ ...logFields, recipients: o.delivered.length }, 'delivered');
    const failed = [...o.bounced, ...expired];
    if (failed.length > 0) {
      log.warn({ ...logFields, recipients: failed }, expired.length > 0 ? 'expired' : 'refused permanently');
      const suppressed = await this.#suppress(o, o.bounced);
      emit(EventKind.SUPPRESSED, suppressed, 'suppressed');
      // The DSN must be queued before the entry goes: a failure here leaves the entry to be retried.
      const dsn = await this.#deps.bounces?.(envelope, this.#failedRecipients(o, failed, expired), {
        original: o.body,
      });
      if (typeof dsn === 'string') markDsn(events, dsn, EventKind.BOUNCED, EventKind.EXPIRED);
    }
    if (o.deferred.length === 0 || step === undefined || step.kind !== 'retry') {
      await this.#settled.settle(m, events);
      return;
    }
    const remaining = envelope.recipients.filter((r) => o.deferred.includes(r.address));
    let entryHeaders = m.headers;
    const receivedAt = envelope.receivedAt ? timestampDate(envelope.receivedAt) : now;
    const alreadyNotified = m.headers?.get(DeferHeader.delayNotified) === '1';
    const delayed = remaining.filter((r) =>
      delayNoticeDue(retryPolicy, { receivedAt, now, alreadyNotified, notify: r.notify }),
    );
    if (delayed.length > 0 && this.#deps.bounces !== undefined) {
      // RFC 3461 NOTIFY=DELAY: one delay DSN per entry, marked so that it is never sent twice.
      const until = new Date(receivedAt.getTime() + retryPolicy.lifetimeMs);
      const dsn = await this.#deps.bounces(
        envelope,
        this.#failedRecipients(
          o,
          delayed.map((r) => r.address),
          [],
        ),
        { action: 'delayed', willRetryUntil: until, original: o.body },
      );
      if (typeof dsn === 'string') markDsn(events, dsn, EventKind.DEFERRED);
      const h = natsHeaders();
      for (const [key, values] of m.headers ?? []) for (const v of values) h.append(key, v);
      h.set(DeferHeader.delayNotified, '1');
      entryHeaders = h;
    }
    await deferEntry(js, {
      messageId: envelope.messageId,
      destinationDomain: envelope.destinationDomain,
      payload: encodeEnvelope({ ...envelope, recipients: remaining }),
      ...(entryHeaders ? { headers: entryHeaders } : {}),
      attempt,
      at: step.at,
      timeoutMs: EVENT_TIMEOUT_MS,
    });
    log.info({ ...logFields, recipients: remaining.length, retryAt: step.at.toISOString() }, 'deferred');
    await this.#settled.settle(m, events);
  }

  /** One delivery event (proto/petrel/v1/event.proto); none for no recipients. */
  #eventOf(
    envelope: Envelope,
    attempt: number,
    o: Outcome,
    durationMs: number,
    kind: EventKind,
    recipients: string[],
    suffix: string,
  ): DeliveryEvent | undefined {
    if (recipients.length === 0) return undefined;
    const reply = o.replies.get(recipients[0] as string) ?? o.reply;
    return deliveryEvent({
      eventId: `${envelope.messageId}.${envelope.destinationDomain}.${attempt}.${suffix}`,
      kind,
      messageId: envelope.messageId,
      destinationDomain: envelope.destinationDomain,
      recipients,
      atMs: Date.now(),
      attempt,
      remoteHost: o.remoteHost,
      remoteAddress: o.remoteAddress,
      tlsProtocol: o.tlsProtocol,
      reply: reply
        ? { code: reply.code, enhanced: reply.enhanced ?? '', text: reply.lines.join(' ') }
        : undefined,
      durationMs: BigInt(durationMs),
      trace: envelope.trace,
      error: o.error,
      sender: envelope.sender,
    });
  }

  /**
   * DKIM-signs mail from a managed sender domain with its keys (RSA and Ed25519 together), as the
   * last change before sending; a draining domain's queued mail too (known(), not managed()). A
   * key that fails is logged and the message goes unsigned rather than not at all.
   */
  #sign(envelope: Envelope, body: Buffer): Buffer {
    const domain = envelope.senderDomain;
    if (!domain) return body;
    const keys = this.#deps.domains().known(domain)?.dkimKeys ?? [];
    if (keys.length === 0) return body;
    try {
      return signMessage(
        body,
        keys.map((k) => ({ ...k, algorithm: k.algorithm as DkimAlgorithm, domain })),
      );
    } catch (error) {
      this.#deps.log.warn(
        { err: error, domain, messageId: envelope.messageId },
        'DKIM signing failed; sending unsigned',
      );
      return body;
    }
  }

  #failedRecipients(o: Outcome, addresses: readonly string[], expired: readonly string[]): FailedRecipient[] {
    return addresses.map((address) => ({
      address,
      reply: o.replies.get(address),
      expired: expired.includes(address),
      remoteHost: o.remoteHost,
    }));
  }

  /** Hard bounces that say the address is gone put it on the suppression list; returns those added. */
  async #suppress(o: Outcome, bounced: readonly string[]): Promise<string[]> {
    const list = this.#deps.suppressions;
    const forMs = this.#deps.config.suppressionMs;
    const added: string[] = [];
    if (list === undefined || forMs === 0) return added;
    for (const address of bounced) {
      const reply = o.replies.get(address);
      if (reply === undefined || reply.code < 500 || !suppresses(reply.enhanced ?? '')) continue;
      if (o.remoteHost === '') continue; // our own refusal (e.g. already suppressed)
      await list
        .add(address, {
          reason: `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''} ${reply.lines.join(' ')}`,
          status: reply.enhanced ?? '',
          forMs,
          source: 'bounce',
        })
        .then(
          () => added.push(address),
          (error: unknown) => this.#deps.log.warn({ err: error }, 'suppression not stored'),
        );
    }
    return added;
  }
}

/** Names the DSN sent for these events' recipients (the trace API's "DSN sent"). */
function markDsn(events: DeliveryEvent[], dsn: string, ...kinds: EventKind[]): void {
  for (const e of events) if (kinds.includes(e.kind)) e.dsnMessageId = dsn;
}

/** A reply we make up for a recipient (routing failure, suppression, expiry), shaped as parsed replies are (enhanced code apart). */
function localReply(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, lines: [text] } as Reply;
}
