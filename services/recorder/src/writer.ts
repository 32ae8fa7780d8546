/**
 * Writes batches of events to Postgres in one transaction each, idempotently (docs/state.md,
 * "Idempotence"): the events are inserted first and only those that were not there already
 * (RETURNING) are folded into the messages and recipients, so a redelivered or replayed event
 * changes nothing. Each table gets one UNNEST statement per batch.
 */
import type { DeliveryEvent } from '@petrel/proto';
import { DEFAULT_RETENTION_DAYS, ensurePartitions, utcDay } from '@petrel/store';
import type pg from 'pg';
import { fold, type MessageRow, recordable, STATUS_ORDER, timeOf } from './fold.ts';

const DAY_MS = 86_400_000;

export interface WriteResult {
  /** Events stored by this batch (the others were there already). */
  readonly written: number;
  readonly duplicates: number;
  /** Events older than the retention: their partitions are gone, so they are not kept. */
  readonly expired: number;
  /** Events the state has no place for (no kind or no queue id, e.g. a manual suppression's). */
  readonly ignored: number;
}

const INSERT_EVENTS = `
INSERT INTO events (event_id, at, message_id, kind, destination_domain, recipients, attempt,
                    remote_host, remote_address, tls_protocol, reply_code, reply_enhanced, reply_text,
                    duration_ms, error, trace_id, sender, dsn_message_id)
SELECT u.event_id, u.at, u.message_id, u.kind, u.destination_domain,
       CASE WHEN u.recipients = '' THEN '{}'::text[] ELSE string_to_array(u.recipients, E'\\x1f') END,
       u.attempt, u.remote_host, u.remote_address, u.tls_protocol, u.reply_code, u.reply_enhanced,
       u.reply_text, u.duration_ms, u.error, u.trace_id, u.sender, u.dsn_message_id
  FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::int[], $8::text[], $9::text[], $10::text[], $11::int[], $12::text[], $13::text[],
              $14::bigint[], $15::text[], $16::text[], $17::text[], $18::text[])
       AS u(event_id, at, message_id, kind, destination_domain, recipients, attempt, remote_host,
            remote_address, tls_protocol, reply_code, reply_enhanced, reply_text, duration_ms,
            error, trace_id, sender, dsn_message_id)
ON CONFLICT (event_id, at) DO NOTHING
RETURNING event_id`;

const MESSAGE_COLUMNS = `(message_id, accepted_at, header_message_id, sender, sender_domain, size_bytes, client_address, trace_id)
SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])`;

// The ACCEPTED event knows everything about the message; other events may have made its row first.
const UPSERT_ACCEPTED = `INSERT INTO messages ${MESSAGE_COLUMNS}
ON CONFLICT (message_id, accepted_at) DO UPDATE SET
  header_message_id = excluded.header_message_id, sender = excluded.sender,
  sender_domain = excluded.sender_domain, size_bytes = excluded.size_bytes,
  client_address = excluded.client_address,
  trace_id = CASE WHEN excluded.trace_id = '' THEN messages.trace_id ELSE excluded.trace_id END`;

const INSERT_SEEN = `INSERT INTO messages ${MESSAGE_COLUMNS}
ON CONFLICT (message_id, accepted_at) DO NOTHING`;

const RANK = (column: string) =>
  `array_position(ARRAY[${STATUS_ORDER.map((s) => `'${s}'`).join(',')}]::text[], ${column})`;
// As fold.ts's newer(): "queued" never replaces another status and is always replaced (clock skew
// between the ingress and the workers), otherwise the newer event, ties to the more final status.
const NEWER = `(excluded.status <> 'queued' AND (r.status = 'queued' OR
  (excluded.updated_at, ${RANK('excluded.status')}) >= (r.updated_at, ${RANK('r.status')})))`;

const UPSERT_RECIPIENTS = `
INSERT INTO recipients AS r (message_id, accepted_at, address, destination_domain, status, attempts,
                             updated_at, last_reply, dsn_message_id)
SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int[],
                     $7::timestamptz[], $8::text[], $9::text[])
ON CONFLICT (message_id, address, accepted_at) DO UPDATE SET
  attempts = r.attempts + excluded.attempts,
  status = CASE WHEN ${NEWER} THEN excluded.status ELSE r.status END,
  updated_at = GREATEST(r.updated_at, excluded.updated_at),
  last_reply = CASE WHEN ${NEWER} AND excluded.last_reply <> '' THEN excluded.last_reply ELSE r.last_reply END,
  dsn_message_id = CASE WHEN excluded.dsn_message_id <> '' AND (r.dsn_message_id = '' OR ${NEWER})
                        THEN excluded.dsn_message_id ELSE r.dsn_message_id END,
  destination_domain = CASE WHEN ${NEWER} AND excluded.destination_domain <> ''
                            THEN excluded.destination_domain ELSE r.destination_domain END`;

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function messageParams(rows: readonly MessageRow[]): unknown[] {
  return [
    rows.map((m) => m.messageId),
    rows.map((m) => iso(m.acceptedAt)),
    rows.map((m) => m.headerMessageId),
    rows.map((m) => m.sender),
    rows.map((m) => m.senderDomain),
    rows.map((m) => m.size),
    rows.map((m) => m.clientAddress),
    rows.map((m) => m.traceId),
  ];
}

export interface EventWriterOptions {
  readonly retentionDays?: number;
  readonly now?: () => number;
}

export class EventWriter {
  readonly #pool: pg.Pool;
  readonly #retentionDays: number;
  readonly #now: () => number;
  /** Days whose partitions this process made sure of. */
  readonly #days = new Set<string>();

  constructor(pool: pg.Pool, options: EventWriterOptions = {}) {
    this.#pool = pool;
    this.#retentionDays = options.retentionDays ?? DEFAULT_RETENTION_DAYS;
    this.#now = options.now ?? Date.now;
  }

  /** Forgets the partitions it made sure of (after retention dropped some). */
  forgetPartitions(): void {
    this.#days.clear();
  }

  async write(batch: readonly DeliveryEvent[]): Promise<WriteResult> {
    // Partitions of days older than this are dropped (or about to be): those events are not kept.
    const oldest = Date.parse(`${utcDay(this.#now() - this.#retentionDays * DAY_MS)}T00:00:00Z`);
    // Sorted by id: concurrent writers insert (and lock) in the same order.
    const kept = batch.filter(recordable);
    const ignored = batch.length - kept.length;
    const events = kept
      .filter((e) => timeOf(e) >= oldest)
      .sort((a, b) => (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
    const expired = kept.length - events.length;
    if (events.length === 0) return { written: 0, duplicates: 0, expired, ignored };
    const all = fold(events);
    const client = await this.#pool.connect();
    // A checked-out client has no pool listener: a server going away between two statements
    // would be an 'error' event nobody handles, which ends the process. The statement fails too.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    try {
      await this.#ensureDays(client, [
        ...all.events.at.map((at) => Date.parse(at)),
        ...all.accepted.map((m) => m.acceptedAt),
        ...all.seen.map((m) => m.acceptedAt),
      ]);
      await client.query('BEGIN');
      const e = all.events;
      const { rows } = await client.query<{ event_id: string }>(INSERT_EVENTS, [
        e.eventId,
        e.at,
        e.messageId,
        e.kind,
        e.destinationDomain,
        e.recipients,
        e.attempt,
        e.remoteHost,
        e.remoteAddress,
        e.tlsProtocol,
        e.replyCode,
        e.replyEnhanced,
        e.replyText,
        e.durationMs,
        e.error,
        e.traceId,
        e.sender,
        e.dsnMessageId,
      ]);
      const fresh = new Set(rows.map((r) => r.event_id));
      // The same event twice in one batch is stored once: fold the first of each.
      const applied = events.filter((ev) => fresh.delete(ev.eventId));
      if (applied.length > 0) {
        const state = applied.length === events.length ? all : fold(applied);
        if (state.accepted.length > 0) await client.query(UPSERT_ACCEPTED, messageParams(state.accepted));
        if (state.seen.length > 0) await client.query(INSERT_SEEN, messageParams(state.seen));
        const r = state.recipients;
        if (r.length > 0) {
          await client.query(UPSERT_RECIPIENTS, [
            r.map((x) => x.messageId),
            r.map((x) => iso(x.acceptedAt)),
            r.map((x) => x.address),
            r.map((x) => x.destinationDomain),
            r.map((x) => x.status),
            r.map((x) => x.attempts),
            r.map((x) => iso(x.updatedAt)),
            r.map((x) => x.lastReply),
            r.map((x) => x.dsnMessageId),
          ]);
        }
      }
      await client.query('COMMIT');
      return { written: applied.length, duplicates: events.length - applied.length, expired, ignored };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.off('error', ignore);
      client.release();
    }
  }

  async #ensureDays(client: pg.PoolClient, times: readonly number[]): Promise<void> {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const t of times) {
      if (this.#days.has(utcDay(t))) continue;
      min = Math.min(min, t);
      max = Math.max(max, t);
    }
    if (min === Number.POSITIVE_INFINITY) return;
    await ensurePartitions(client, min, max);
    for (let d = min; d <= max + DAY_MS; d += DAY_MS) {
      if (utcDay(d) <= utcDay(max)) this.#days.add(utcDay(d));
    }
  }
}
