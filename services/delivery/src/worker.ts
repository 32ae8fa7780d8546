import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { DomainIndex } from '@petrel/config';
import {
  BodyType,
  create,
  DeliverByMode,
  DsnReturn,
  type Envelope,
  EventKind,
  SmtpReplySchema,
  timestampDate,
  timestampFromDate,
} from '@petrel/proto';
import {
  CONSUMER_DELIVERY,
  DeferHeader,
  decodeEnvelope,
  deferEntry,
  encodeEnvelope,
  entryDedupeId,
  loadBody,
  newEvent,
  publishEvent,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import { type DsnNotify, type Reply, SmtpClient, SmtpClientError } from '@petrel/smtp';
import { contextFrom, type Logger, tracer } from '@petrel/telemetry';
import type { DsnHook } from './bounce.ts';
import type { DeliveryConfig } from './config.ts';
import { type DkimAlgorithm, signMessage } from './dkim.ts';
import { type MtaSts, mxMatches } from './mta-sts.ts';
import type { RouteResolver } from './mx.ts';
import type { DestinationControls } from './operations.ts';
import { ConnectionPool } from './pool.ts';
import { route } from './router.ts';
import { delayNoticeDue, type NextStep, nextStep, type RetryPolicy } from './schedule.ts';
import { type SuppressionList, suppresses } from './suppressions.ts';

export interface WorkerDeps {
  js: JetStreamClient;
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
  /** Queues the DSN for recipients that failed for good; rejects when it could not. */
  /** Queues DSNs (failures, expiry, and the delay DSN of RFC 3461 NOTIFY=DELAY) before the ack. */
  bounces?: DsnHook;
}

interface Outcome {
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
  #messages: ConsumerMessages | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  #stopping = false;

  readonly #pool: ConnectionPool;

  constructor(deps: WorkerDeps) {
    this.#deps = deps;
    const { config } = deps;
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
          ...(target.tls === 'required' ? { tls: 'required' as const, rejectUnauthorized: true } : {}),
          ...(deps.tlsCa === undefined ? {} : { ca: deps.tlsCa }),
        }),
    });
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  async run(): Promise<void> {
    const { js, config } = this.#deps;
    const consumer = await js.consumers.get(STREAM_OUTBOUND, CONSUMER_DELIVERY);
    const messages = await consumer.consume({ max_messages: config.concurrency });
    this.#messages = messages;
    for await (const m of messages) {
      if (this.#stopping) {
        // Not started: hand it straight back for another worker.
        m.nak();
        continue;
      }
      const task = this.#handle(m).catch((error: unknown) => {
        this.#deps.log.error({ err: error, seq: m.seq }, 'delivery task failed; entry will be redelivered');
      });
      this.#inFlight.add(task);
      void task.finally(() => this.#inFlight.delete(task));
      while (this.#inFlight.size >= config.concurrency) await Promise.race(this.#inFlight);
    }
  }

  /** Stops taking entries and waits for deliveries in progress (up to graceMs). */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    await this.#messages?.close();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.#inFlight),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    await this.#pool.close();
  }

  async #handle(m: JsMsg): Promise<void> {
    const envelope = decodeEnvelope(m.data);
    // Attempts made before this entry was (re)scheduled, plus this one; a redelivery after a
    // worker died counts as an attempt too.
    const attempt = Number(m.headers?.get(DeferHeader.attempt) || 0) + m.info.deliveryCount;
    const until = this.#deps.controls?.suspendedUntil(envelope.destinationDomain);
    if (until !== undefined) {
      // Suspended by an operator: back to waiting, not counted as an attempt; looked at again
      // at the end of the suspension or in 5 minutes, whichever comes first.
      const at = new Date(Math.min(until.getTime(), Date.now() + SUSPENDED_RECHECK_MS));
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
      await m.ackAck();
      return;
    }
    const parent = contextFrom(envelope.trace);
    await tracer.startActiveSpan('smtp.deliver', {}, parent, async (span) => {
      span.setAttribute('petrel.message_id', envelope.messageId);
      span.setAttribute('petrel.attempt', attempt);
      const started = Date.now();
      const keepAlive = setInterval(() => m.working(), Math.max(1000, this.#deps.config.ackWaitMs / 3));
      let outcome: Outcome;
      try {
        outcome = await this.#attempt(envelope);
      } finally {
        clearInterval(keepAlive);
      }
      await this.#settle(m, envelope, attempt, outcome, Date.now() - started);
      span.end();
    });
  }

  async #attempt(envelope: Envelope): Promise<Outcome> {
    const outcome: Outcome = {
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
    const all = (list: string[], reply: Reply | undefined, recipients: readonly string[]) => {
      list.push(...recipients);
      if (reply) for (const r of recipients) outcome.replies.set(r, reply);
      outcome.reply = reply ?? outcome.reply;
    };
    let pending = envelope.recipients.map((r) => r.address);
    // Suppressed recipients bounce without a connection attempt.
    if (this.#deps.suppressions !== undefined && this.#deps.config.suppressionMs > 0) {
      const left: string[] = [];
      for (const address of pending) {
        const s = this.#deps.suppressions.get(address);
        if (s === undefined) left.push(address);
        else
          all(
            outcome.bounced,
            localReply(550, s.status, `Recipient suppressed until ${s.expiresAt}: ${s.reason}`),
            [address],
          );
      }
      pending = left;
      if (pending.length === 0) return outcome;
    }
    const routing = await route(envelope, {
      domains: this.#deps.domains,
      smarthost: this.#deps.config.smarthost,
      resolver: this.#deps.resolver,
      mxPort: this.#deps.config.mxPort,
    });
    if (routing.kind === 'fail') {
      const reply = localReply(routing.code, routing.status, routing.reason);
      all(routing.permanent ? outcome.bounced : outcome.deferred, reply, pending);
      outcome.error = routing.reason;
      return outcome;
    }
    let targets = routing.targets;
    if (routing.viaMx === true && this.#deps.mtaSts !== undefined) {
      const policy = await this.#deps.mtaSts.policy(envelope.destinationDomain).catch(() => undefined);
      if (policy?.mode === 'enforce') {
        // RFC 8461 §5: only MX hosts the policy names, only over validated TLS; else defer.
        targets = targets
          .filter((t) => mxMatches(policy.mx, t.name))
          .map((t) => ({ ...t, tls: 'required' as const }));
        if (targets.length === 0) {
          const reply = localReply(
            451,
            '4.7.5',
            `MTA-STS policy ${policy.id}: no MX host of ${envelope.destinationDomain} matches it`,
          );
          all(outcome.deferred, reply, pending);
          outcome.error = reply.lines[0] as string;
          return outcome;
        }
      }
    }
    let body: Buffer;
    try {
      body = await loadBody(this.#deps.js, envelope);
      outcome.body = body;
    } catch (error) {
      all(outcome.deferred, undefined, pending);
      outcome.error = error instanceof Error ? error.message : String(error);
      return outcome;
    }
    body = this.#sign(envelope, body);
    const byAddress = new Map(envelope.recipients.map((r) => [r.address, r]));
    const failures: string[] = [];
    // RFC 5321 §5.1: try each MX host (each address) in order until one takes the transaction.
    for (const target of targets) {
      let client: SmtpClient;
      try {
        client = await this.#pool.acquire(target);
      } catch (error) {
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
          all(list, r.reply, [r.address]);
        }
        this.#pool.release(target, client);
      } catch (error) {
        this.#pool.discard(target, client);
        const e = error instanceof SmtpClientError ? error : undefined;
        // Lost mid-transaction: whatever the next hop did not confirm is deferred (it may arrive
        // twice — the one duplicate SMTP cannot avoid).
        const done = new Set([...outcome.delivered, ...outcome.bounced]);
        all(
          outcome.deferred,
          e?.reply,
          pending.filter((a) => !done.has(a)),
        );
        outcome.error = error instanceof Error ? error.message : String(error);
      }
      return outcome;
    }
    all(outcome.deferred, undefined, pending);
    outcome.error = `no host took the connection: ${failures.join('; ')}`;
    return outcome;
  }

  async #settle(m: JsMsg, envelope: Envelope, attempt: number, o: Outcome, durationMs: number) {
    const { js, log } = this.#deps;
    const base = {
      messageId: envelope.messageId,
      destinationDomain: envelope.destinationDomain,
      at: timestampFromDate(new Date()),
      attempt,
      remoteHost: o.remoteHost,
      remoteAddress: o.remoteAddress,
      tlsProtocol: o.tlsProtocol,
      durationMs: BigInt(durationMs),
      trace: envelope.trace,
      error: o.error,
    };
    const emit = async (kind: EventKind, recipients: string[], suffix: string) => {
      if (recipients.length === 0) return;
      const reply = o.replies.get(recipients[0] as string) ?? o.reply;
      await publishEvent(
        js,
        newEvent({
          ...base,
          kind,
          recipients,
          reply: reply
            ? create(SmtpReplySchema, {
                code: reply.code,
                enhanced: reply.enhanced ?? '',
                text: reply.lines.join(' '),
              })
            : undefined,
          eventId: `${envelope.messageId}.${envelope.destinationDomain}.${attempt}.${suffix}`,
        }),
        { timeoutMs: EVENT_TIMEOUT_MS },
      ).catch((error: unknown) => log.warn({ err: error }, 'event publish failed'));
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
      step = nextStep(this.#deps.retryPolicy, {
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
    await emit(EventKind.DELIVERED, o.delivered, 'delivered');
    await emit(EventKind.BOUNCED, o.bounced, 'bounced');
    await emit(EventKind.EXPIRED, expired, 'expired');
    await emit(EventKind.DEFERRED, o.deferred, 'deferred');
    if (o.delivered.length > 0) log.info({ ...logFields, recipients: o.delivered.length }, 'delivered');
    const failed = [...o.bounced, ...expired];
    if (failed.length > 0) {
      log.warn({ ...logFields, recipients: failed }, expired.length > 0 ? 'expired' : 'refused permanently');
      await this.#suppress(o, o.bounced);
      // The DSN must be queued before the entry goes: a failure here leaves the entry to be retried.
      await this.#deps.bounces?.(envelope, this.#failedRecipients(o, failed, expired), { original: o.body });
    }
    if (o.deferred.length === 0 || step === undefined || step.kind !== 'retry') {
      await m.ackAck();
      return;
    }
    const remaining = envelope.recipients.filter((r) => o.deferred.includes(r.address));
    let entryHeaders = m.headers;
    const receivedAt = envelope.receivedAt ? timestampDate(envelope.receivedAt) : now;
    const alreadyNotified = m.headers?.get(DeferHeader.delayNotified) === '1';
    const delayed = remaining.filter((r) =>
      delayNoticeDue(this.#deps.retryPolicy, { receivedAt, now, alreadyNotified, notify: r.notify }),
    );
    if (delayed.length > 0 && this.#deps.bounces !== undefined) {
      // RFC 3461 NOTIFY=DELAY: one delay DSN per entry, marked so that it is never sent twice.
      const until = new Date(receivedAt.getTime() + this.#deps.retryPolicy.lifetimeMs);
      await this.#deps.bounces(
        envelope,
        this.#failedRecipients(
          o,
          delayed.map((r) => r.address),
          [],
        ),
        { action: 'delayed', willRetryUntil: until, original: o.body },
      );
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
    await m.ackAck();
  }

  /**
   * DKIM-signs mail from a managed sender domain with its keys (RSA and Ed25519 together), as the
   * last change before sending. A key that fails is logged and the message goes unsigned rather
   * than not at all.
   */
  #sign(envelope: Envelope, body: Buffer): Buffer {
    const domain = envelope.senderDomain;
    if (!domain) return body;
    const keys = this.#deps.domains().managed(domain)?.dkimKeys ?? [];
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

  /** Hard bounces that say the address is gone put it on the suppression list. */
  async #suppress(o: Outcome, bounced: readonly string[]): Promise<void> {
    const list = this.#deps.suppressions;
    const forMs = this.#deps.config.suppressionMs;
    if (list === undefined || forMs === 0) return;
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
        .catch((error: unknown) => this.#deps.log.warn({ err: error }, 'suppression not stored'));
    }
  }
}

/** A reply we make up for a recipient (routing failure, suppression, expiry), shaped as parsed replies are (enhanced code apart). */
function localReply(code: number, enhanced: string, text: string): Reply {
  return { code, enhanced, lines: [text] } as Reply;
}
