/**
 * Queue operations over NATS request/reply (docs/queue-model.md, "Queue operations"), answered
 * by any delivery worker (queue group): retry a destination now, suspend and resume it, bounce or
 * purge its deferred mail, and flush for ETRN (RFC 1985). Requests and replies are JSON.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { EventKind } from '@petrel/proto';
import {
  decodeEnvelope,
  deferredEntries,
  deliveryEvent,
  destinationKey,
  publishEvent,
  retryDeferredNow,
  STREAM_OUTBOUND,
} from '@petrel/queue';
import type { Logger } from '@petrel/telemetry';
import type { DsnHook } from './bounce.ts';
import { KvMirror } from './kv-mirror.ts';
import type { DestinationStatus } from './limiter.ts';
import type { FailedRecipient } from './worker.ts';

export const QUEUE_OPERATIONS_SUBJECT = 'petrel.admin.queue';
/** Every worker answers (no queue group): its destinations' limiter state and its suspensions. */
export const DESTINATION_STATUS_SUBJECT = 'petrel.admin.destinations';
export const DESTINATIONS_BUCKET = 'petrel_destinations';

export const QueueOperation = {
  Retry: 'retry',
  Flush: 'flush',
  Suspend: 'suspend',
  Resume: 'resume',
  Bounce: 'bounce',
  Purge: 'purge',
} as const;
export type QueueOperation = (typeof QueueOperation)[keyof typeof QueueOperation];

export interface QueueOperationRequest {
  domain: string;
  /** suspend: until when (ISO 8601); absent: until resumed. */
  until?: string;
  /** bounce: the text of the DSN's diagnostic. */
  reason?: string;
}

export type QueueOperationReply = { ok: true; count: number } | { ok: false; error: string; code: string };

export const QueueOperationErrorCode = {
  BadRequest: 'PETREL_ERR_QUEUE_OP_BAD_REQUEST',
  Failed: 'PETREL_ERR_QUEUE_OP_FAILED',
} as const;

const PREFIX = 'suspend.';

/** The suspensions bucket, made with the same options by every process that opens it. */
export async function openDestinationsKv(js: JetStreamClient, replicas: number): Promise<KV> {
  return await new Kvm(js).create(DESTINATIONS_BUCKET, { storage: 'file', replicas, history: 1 });
}

interface Suspension {
  domain: string;
  until: string | undefined;
}

/**
 * Suspended destinations, shared through NATS KV and mirrored in memory (KvMirror), so the
 * worker's check per entry costs no request.
 */
export class DestinationControls {
  readonly #mirror: KvMirror<Suspension>;

  constructor(kv: KV) {
    this.#mirror = new KvMirror(kv, PREFIX);
  }

  start(): Promise<void> {
    return this.#mirror.start();
  }

  stop(): void {
    this.#mirror.stop();
  }

  /** Every suspension in force: domain → until (undefined: until resumed). */
  suspensions(now = Date.now()): Map<string, Date | undefined> {
    const out = new Map<string, Date | undefined>();
    for (const s of this.#mirror.values()) {
      if (s.until === undefined) out.set(s.domain, undefined);
      else if (Date.parse(s.until) > now) out.set(s.domain, new Date(s.until));
    }
    return out;
  }

  /** The time the destination is suspended until (far future: until resumed), or undefined. */
  suspendedUntil(domain: string, now = Date.now()): Date | undefined {
    // Asked for every entry: nothing suspended (the usual case) spares hashing the domain.
    if (this.#mirror.size === 0) return undefined;
    const s = this.#mirror.get(destinationKey(domain));
    if (s === undefined) return undefined;
    if (s.until === undefined) return new Date(8.64e15);
    const until = new Date(s.until);
    return until.getTime() > now ? until : undefined;
  }

  async suspend(domain: string, until: Date | undefined): Promise<void> {
    await this.#mirror.put(destinationKey(domain), {
      domain: domain.toLowerCase(),
      until: until?.toISOString(),
    });
  }

  async resume(domain: string): Promise<void> {
    await this.#mirror.delete(destinationKey(domain));
  }
}

export interface OperationsDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  controls: DestinationControls;
  log: Logger;
  /** Queues DSNs for recipients bounced by the operator (the worker's DSN hook). */
  bounces?: DsnHook;
}

const DOMAIN =
  /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.?$|^\[[^\]]{1,64}\]$/i;

/** Serves `petrel.admin.queue.<operation>` until the subscription is drained. */
export function serveQueueOperations(deps: OperationsDeps): Subscription {
  const sub = deps.nc.subscribe(`${QUEUE_OPERATIONS_SUBJECT}.*`, { queue: 'petrel-delivery' });
  void (async () => {
    for await (const m of sub) {
      const op = m.subject.slice(QUEUE_OPERATIONS_SUBJECT.length + 1) as QueueOperation;
      let reply: QueueOperationReply;
      try {
        const request = m.json<QueueOperationRequest>();
        if (typeof request?.domain !== 'string' || !DOMAIN.test(request.domain)) {
          reply = { ok: false, code: QueueOperationErrorCode.BadRequest, error: 'domain missing or invalid' };
        } else {
          reply = { ok: true, count: await run(deps, op, request) };
        }
      } catch (error) {
        const bad = error instanceof BadRequest || error instanceof SyntaxError;
        reply = {
          ok: false,
          code: bad ? QueueOperationErrorCode.BadRequest : QueueOperationErrorCode.Failed,
          error: error instanceof Error ? error.message : String(error),
        };
        if (!bad) deps.log.error({ err: error, op }, 'queue operation failed');
      }
      m.respond(JSON.stringify(reply));
    }
  })();
  return sub;
}

export interface DestinationStatusReply {
  readonly worker: string;
  readonly destinations: readonly DestinationStatus[];
}

/** Answers `petrel.admin.destinations` with this worker's limiter snapshot. */
export function serveDestinationStatus(
  nc: NatsConnection,
  worker: string,
  limiter: { snapshot(): DestinationStatus[] },
): Subscription {
  return nc.subscribe(DESTINATION_STATUS_SUBJECT, {
    callback: (error, m) => {
      if (error !== null) return;
      const reply: DestinationStatusReply = { worker, destinations: limiter.snapshot() };
      m.respond(JSON.stringify(reply));
    },
  });
}

class BadRequest extends Error {}

async function run(
  deps: OperationsDeps,
  op: QueueOperation,
  request: QueueOperationRequest,
): Promise<number> {
  const domain = request.domain.toLowerCase().replace(/\.$/, '');
  switch (op) {
    case QueueOperation.Retry:
    case QueueOperation.Flush:
      return await retryDeferredNow(deps.js, deps.jsm, domain, { timeoutMs: 5_000 });
    case QueueOperation.Suspend: {
      const until = request.until === undefined ? undefined : new Date(request.until);
      if (until !== undefined && Number.isNaN(until.getTime())) throw new BadRequest('until is not a date');
      await deps.controls.suspend(domain, until);
      return 1;
    }
    case QueueOperation.Resume:
      await deps.controls.resume(domain);
      return 1;
    case QueueOperation.Purge:
    case QueueOperation.Bounce: {
      let count = 0;
      for await (const entry of deferredEntries(deps.jsm, domain)) {
        const envelope = decodeEnvelope(entry.payload);
        const text = request.reason ?? 'Returned by the relay operator';
        let dsn: string | undefined;
        if (op === QueueOperation.Bounce) {
          dsn = await deps.bounces?.(
            envelope,
            envelope.recipients.map((r) => ({
              address: r.address,
              reply: { code: 550, enhanced: '5.0.0', lines: [text] } as FailedRecipient['reply'],
              expired: false,
              remoteHost: '',
            })),
          );
        }
        // The recorder learns the recipients' end before the entry goes (an event lost here
        // would leave them "deferred" in the trace for good; one published again within the
        // stream's duplicate window is stored once, by its event id as Nats-Msg-Id).
        await publishEvent(
          deps.js,
          deliveryEvent({
            eventId: `${envelope.messageId}.${envelope.destinationDomain}.${op}`,
            kind: op === QueueOperation.Bounce ? EventKind.BOUNCED : EventKind.PURGED,
            messageId: envelope.messageId,
            destinationDomain: envelope.destinationDomain,
            recipients: envelope.recipients.map((r) => r.address),
            atMs: Date.now(),
            // Not an attempt: nothing was sent (the trace must not count one).
            attempt: 0,
            reply: op === QueueOperation.Bounce ? { code: 550, enhanced: '5.0.0', text } : undefined,
            trace: envelope.trace,
            error: op === QueueOperation.Bounce ? `bounced by operator: ${text}` : 'purged by operator',
            sender: envelope.sender,
            ...(typeof dsn === 'string' ? { dsnMessageId: dsn } : {}),
          }),
          { timeoutMs: 5_000 },
        );
        // Removed one by one: an entry scheduled meanwhile is not taken without its DSN.
        await deps.jsm.streams.purge(STREAM_OUTBOUND, { filter: entry.subject });
        count++;
      }
      return count;
    }
    default:
      throw new BadRequest(`unknown operation ${String(op)}`);
  }
}
