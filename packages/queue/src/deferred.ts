import { createHash } from 'node:crypto';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StoredMsg,
} from '@nats-io/jetstream';
import { type MsgHdrs, headers as newHeaders } from '@nats-io/transport-node';
import { STREAM_OUTBOUND } from './streams.ts';
import { DEFERRED_SUBJECT_PREFIX, entryDedupeId, outboundSubject, QueueHeader } from './subjects.ts';

/**
 * Deferred mail (docs/queue-model.md): an entry waiting for its next attempt is a JetStream
 * message schedule (nats-server 2.12, ADR-51 `@at`) on `petrel.deferred.<dkey>.<message id>`,
 * stored on disk in PETREL_OUTBOUND. At its time the server republishes it, headers included, to
 * the entry's ready subject `petrel.outbound.<shard>` and removes the schedule. Waiting costs no
 * consumer capacity, no ack-pending slot and no worker memory, and never blocks fresh mail.
 */
/** Headers of the schedule protocol (ADR-51). */
const ScheduleHeader = {
  schedule: 'Nats-Schedule',
  target: 'Nats-Schedule-Target',
} as const;

/** Headers a deferred entry carries on top of the entry's own. */
export const DeferHeader = {
  /** Delivery attempts made so far. */
  attempt: 'Petrel-Attempt',
  /** When the next attempt was planned (ISO 8601), for operators and the queue summary. */
  due: 'Petrel-Due',
  /** A delay DSN was sent for this entry (RFC 3461 NOTIFY=DELAY): never twice. */
  delayNotified: 'Petrel-Delay-Notified',
} as const;

/** A subject-safe key of a destination domain: 16 hex digits of SHA-256 (domains hold dots). */
export function destinationKey(domain: string): string {
  return createHash('sha256').update(domain.toLowerCase()).digest('hex').slice(0, 16);
}

/** The schedule subject of one entry: unique per entry, so re-deferring replaces the schedule. */
export function deferredSubject(messageId: string, domain: string): string {
  return `${DEFERRED_SUBJECT_PREFIX}.${destinationKey(domain)}.${messageId}`;
}

/** Every deferred entry of one destination domain. */
export function deferredFilter(domain: string): string {
  return `${DEFERRED_SUBJECT_PREFIX}.${destinationKey(domain)}.>`;
}

export interface DeferInput {
  messageId: string;
  destinationDomain: string;
  /** The encoded envelope (possibly with fewer recipients than the entry had). */
  payload: Uint8Array;
  /** Headers to keep (the entry's); schedule headers are set here. */
  headers?: MsgHdrs;
  /** Attempts made so far; part of the dedupe id, so each deferral is a new publish. */
  attempt: number;
  at: Date;
  timeoutMs: number;
  /** Overrides the dedupe id (a retry-now of the same deferral must not be taken for a duplicate). */
  dedupeId?: string;
}

/** RFC 3339 in UTC with second precision (the server's `@at` form), rounded up: never early. */
function rfc3339(at: Date): string {
  return `${new Date(Math.ceil(at.getTime() / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}

/**
 * Schedules an entry's next attempt. Resolves once JetStream stored the schedule; the caller
 * acks the entry it is replacing only afterwards (a crash between the two duplicates, never loses).
 */
export async function deferEntry(js: JetStreamClient, input: DeferInput): Promise<PubAck> {
  const h = newHeaders();
  for (const [key, values] of input.headers ?? []) {
    if (key.startsWith('Nats-')) continue;
    for (const value of values) h.append(key, value);
  }
  h.set(QueueHeader.messageId, input.messageId);
  h.set(QueueHeader.destination, input.destinationDomain);
  h.set(DeferHeader.attempt, String(input.attempt));
  h.set(DeferHeader.due, input.at.toISOString());
  h.set(ScheduleHeader.schedule, `@at ${rfc3339(input.at)}`);
  h.set(ScheduleHeader.target, outboundSubject(input.destinationDomain));
  return await js.publish(deferredSubject(input.messageId, input.destinationDomain), input.payload, {
    msgID: input.dedupeId ?? `${entryDedupeId(input.messageId, input.destinationDomain)}.a${input.attempt}`,
    headers: h,
    timeout: input.timeoutMs,
  });
}

export interface DeferredEntry {
  readonly subject: string;
  readonly messageId: string;
  readonly attempt: number;
  readonly due: Date | undefined;
  readonly payload: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

/**
 * Reads the deferred entries of one destination (queue operations, the queue summary): the
 * stream's subject list under the domain's filter, then each schedule by subject. (A work-queue
 * stream allows no ordered consumer; this reads without any consumer state on the server.)
 */
export async function* deferredEntries(
  jsm: JetStreamManager,
  domain: string,
): AsyncGenerator<DeferredEntry, void, undefined> {
  const info = await jsm.streams.info(STREAM_OUTBOUND, { subjects_filter: deferredFilter(domain) });
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    let m: StoredMsg | null;
    try {
      m = await jsm.streams.getMessage(STREAM_OUTBOUND, { last_by_subj: subject });
    } catch (error) {
      // Fired or purged since the listing: not deferred any more.
      if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.NoMessageFound) continue;
      throw error;
    }
    if (m === null) continue;
    const due = m.header.get(DeferHeader.due);
    yield {
      subject,
      messageId: subject.slice(subject.lastIndexOf('.') + 1),
      attempt: Number(m.header.get(DeferHeader.attempt) || 0),
      due: due ? new Date(due) : undefined,
      payload: m.data,
      headers: m.header,
    };
  }
}

/**
 * Queue operation "retry now" (and ETRN's flush): every deferred entry of the domain is
 * rescheduled for now. Same subject, so each new schedule replaces the old one. Returns the count.
 */
export async function retryDeferredNow(
  js: JetStreamClient,
  jsm: JetStreamManager,
  domain: string,
  options: { timeoutMs: number; now?: Date },
): Promise<number> {
  const now = options.now ?? new Date();
  let count = 0;
  for await (const entry of deferredEntries(jsm, domain)) {
    await deferEntry(js, {
      messageId: entry.messageId,
      destinationDomain: domain,
      payload: entry.payload,
      ...(entry.headers === undefined ? {} : { headers: entry.headers }),
      attempt: entry.attempt,
      at: now,
      timeoutMs: options.timeoutMs,
      // Not the deferral's own dedupe id, or the server would drop this as its duplicate.
      dedupeId: `${entryDedupeId(entry.messageId, domain)}.a${entry.attempt}.r${now.getTime()}`,
    });
    count++;
  }
  return count;
}

/** Queue operation "purge": removes every deferred entry of the domain; returns how many. */
export async function purgeDeferred(jsm: JetStreamManager, domain: string): Promise<number> {
  const result = await jsm.streams.purge(STREAM_OUTBOUND, { filter: deferredFilter(domain) });
  return result.purged;
}
