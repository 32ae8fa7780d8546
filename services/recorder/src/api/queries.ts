/**
 * The trace API's reads from Postgres (docs/api.md). Every lookup is bounded by a time range
 * (default: the retention) so that the planner prunes partitions, and by a limit.
 */
import { messageIdTime } from '@petrel/queue';
import type pg from 'pg';
import type { Message, TimelineEntry, WebhookDelivery } from './types.ts';

export interface MessageQuery {
  /** Queue id, Message-ID header field (with or without brackets), or an address (sender or recipient). */
  readonly q?: string;
  readonly queueId?: string;
  readonly messageId?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly since: Date;
  readonly until: Date;
  readonly limit: number;
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/i;

/** Which message ids match the query, newest first (ids only: the views are loaded after). */
async function matchingIds(db: pg.Pool, query: MessageQuery): Promise<string[]> {
  const range = [query.since.toISOString(), query.until.toISOString(), query.limit];
  const ids = new Set<string>();
  const add = (rows: { message_id: string }[]) => {
    for (const r of rows) ids.add(r.message_id);
  };
  const byQueueId = async (id: string) => {
    const t = messageIdTime(id.toUpperCase());
    // The partition key is in the id: one partition, one index probe.
    const { rows } =
      t === undefined
        ? await db.query('SELECT message_id FROM messages WHERE message_id = $1 LIMIT 1', [id])
        : await db.query('SELECT message_id FROM messages WHERE message_id = $1 AND accepted_at = $2', [
            id.toUpperCase(),
            new Date(t).toISOString(),
          ]);
    add(rows);
  };
  /** Newest first within the time range; `where` names the value as $4. */
  const inRange = async (table: 'messages' | 'recipients', where: string, value?: string) => {
    // A message has one row in messages, but may have two matching recipients (case variants).
    const { rows } = await db.query(
      `SELECT ${table === 'recipients' ? 'DISTINCT ' : ''}message_id, accepted_at FROM ${table}
        WHERE ${where === '' ? '' : `${where} AND `}accepted_at >= $1 AND accepted_at < $2
        ORDER BY accepted_at DESC LIMIT $3`,
      value === undefined ? range : [...range, value],
    );
    add(rows);
  };
  const byHeader = (id: string) => inRange('messages', 'header_message_id = $4', id.replace(/^<|>$/g, ''));
  const bySender = (address: string) => inRange('messages', 'sender = $4', address);
  const byRecipient = (address: string) => inRange('recipients', 'lower(address) = lower($4)', address);
  if (query.queueId) await byQueueId(query.queueId);
  if (query.messageId) await byHeader(query.messageId);
  if (query.sender) await bySender(query.sender);
  if (query.recipient) await byRecipient(query.recipient);
  if (query.q) {
    const q = query.q.trim();
    if (ULID.test(q)) await byQueueId(q);
    if (q.includes('@')) {
      await byHeader(q);
      if (!q.startsWith('<')) {
        await bySender(q);
        await byRecipient(q);
      }
    }
  }
  if (
    query.queueId === undefined &&
    query.messageId === undefined &&
    query.sender === undefined &&
    query.recipient === undefined &&
    query.q === undefined
  ) {
    await inRange('messages', '');
  }
  return [...ids].slice(0, query.limit);
}

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}

interface MessageRow {
  message_id: string;
  accepted_at: Date;
  header_message_id: string;
  sender: string;
  size_bytes: string;
  client_address: string;
  trace_id: string;
}

interface RecipientRow {
  message_id: string;
  address: string;
  destination_domain: string;
  status: string;
  attempts: number;
  updated_at: Date;
  last_reply: string;
  dsn_message_id: string;
}

/** The messages with these ids, with their recipients, in the order given. */
async function loadMessages(db: pg.Pool, ids: readonly string[]): Promise<Message[]> {
  if (ids.length === 0) return [];
  const times = ids.map((id) => messageIdTime(id));
  const pruned = times.every((t) => t !== undefined);
  // With every partition key known, only those partitions are read.
  const where = pruned ? 'message_id = ANY($1) AND accepted_at = ANY($2)' : 'message_id = ANY($1)';
  const params = pruned ? [ids, times.map((t) => new Date(t as number).toISOString())] : [ids];
  const [messages, recipients] = await Promise.all([
    db.query<MessageRow>(`SELECT * FROM messages WHERE ${where}`, params),
    db.query<RecipientRow>(`SELECT * FROM recipients WHERE ${where} ORDER BY address`, params),
  ]);
  const byId = new Map<string, Message>();
  for (const m of messages.rows) {
    byId.set(m.message_id, {
      queueId: m.message_id,
      acceptedAt: iso(m.accepted_at),
      messageId: m.header_message_id,
      sender: m.sender,
      size: Number(m.size_bytes),
      clientAddress: m.client_address,
      traceId: m.trace_id,
      recipients: [],
    });
  }
  for (const r of recipients.rows) {
    byId.get(r.message_id)?.recipients.push({
      address: r.address,
      destinationDomain: r.destination_domain,
      status: r.status,
      attempts: r.attempts,
      updatedAt: iso(r.updated_at),
      lastReply: r.last_reply,
      dsnQueueId: r.dsn_message_id || null,
    });
  }
  return ids.map((id) => byId.get(id)).filter((m): m is Message => m !== undefined);
}

export async function findMessages(db: pg.Pool, query: MessageQuery): Promise<Message[]> {
  return await loadMessages(db, await matchingIds(db, query));
}

export async function getMessage(db: pg.Pool, queueId: string): Promise<Message | undefined> {
  const ids = await matchingIds(db, {
    queueId,
    since: new Date(0),
    until: new Date(8.64e15),
    limit: 1,
  });
  return (await loadMessages(db, ids))[0];
}

interface EventRow {
  event_id: string;
  at: Date;
  kind: string;
  destination_domain: string;
  recipients: string[];
  attempt: number;
  remote_host: string;
  remote_address: string;
  tls_protocol: string;
  reply_code: number | null;
  reply_enhanced: string;
  reply_text: string;
  duration_ms: string;
  error: string;
  dsn_message_id: string;
}

const KIND_ORDER = ['accepted', 'deferred', 'delivered', 'bounced', 'expired', 'purged', 'suppressed'];

/** Every event of a message, oldest first: accepted, each attempt, the outcome, the DSN sent. */
export async function timeline(db: pg.Pool, queueId: string): Promise<TimelineEntry[]> {
  const t = messageIdTime(queueId);
  // Events are partitioned by their own time: never before the acceptance.
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events WHERE message_id = $1 ${t === undefined ? '' : 'AND at >= $2'}`,
    t === undefined ? [queueId] : [queueId, new Date(t - 1000).toISOString()],
  );
  rows.sort(
    (a, b) =>
      a.at.getTime() - b.at.getTime() ||
      KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind) ||
      a.event_id.localeCompare(b.event_id),
  );
  return rows.map((e) => ({
    at: iso(e.at),
    event: e.kind,
    eventId: e.event_id,
    destinationDomain: e.destination_domain,
    recipients: e.recipients,
    attempt: e.attempt,
    remoteHost: e.remote_host,
    remoteAddress: e.remote_address,
    tlsProtocol: e.tls_protocol,
    reply:
      e.reply_code === null ? null : { code: e.reply_code, enhanced: e.reply_enhanced, text: e.reply_text },
    error: e.error,
    durationMs: Number(e.duration_ms),
    dsnQueueId: e.dsn_message_id || null,
  }));
}

export interface QueueCounts {
  domain: string;
  ready: number;
  deferred: number;
  oldestAcceptedAt: string;
}

/** Recipients still queued per destination, from the recipients' current status. */
export async function queueCounts(db: pg.Pool, domain?: string): Promise<QueueCounts[]> {
  const { rows } = await db.query<{ domain: string; ready: string; deferred: string; oldest: Date }>(
    `SELECT destination_domain AS domain,
            count(*) FILTER (WHERE status = 'queued') AS ready,
            count(*) FILTER (WHERE status = 'deferred') AS deferred,
            min(accepted_at) AS oldest
       FROM recipients
      WHERE status IN ('queued', 'deferred') ${domain === undefined ? '' : 'AND destination_domain = $1'}
      GROUP BY destination_domain
      ORDER BY count(*) DESC, destination_domain`,
    domain === undefined ? [] : [domain],
  );
  return rows.map((r) => ({
    domain: r.domain,
    ready: Number(r.ready),
    deferred: Number(r.deferred),
    oldestAcceptedAt: iso(r.oldest),
  }));
}

export async function webhookDeliveries(
  db: pg.Pool,
  filter: {
    subscription?: string;
    domain?: string;
    eventId?: string;
    since: Date;
    until: Date;
    limit: number;
  },
): Promise<WebhookDelivery[]> {
  const where = ['created_at >= $1', 'created_at < $2'];
  const params: unknown[] = [filter.since.toISOString(), filter.until.toISOString(), filter.limit];
  for (const [column, value] of [
    ['subscription', filter.subscription],
    ['domain', filter.domain],
    ['event_id', filter.eventId],
  ] as const) {
    if (value === undefined) continue;
    params.push(value);
    where.push(`${column} = $${params.length}`);
  }
  const { rows } = await db.query(
    `SELECT * FROM webhook_deliveries WHERE ${where.join(' AND ')} ORDER BY created_at DESC LIMIT $3`,
    params,
  );
  return rows.map((r) => ({
    deliveryId: r.delivery_id,
    at: iso(r.created_at),
    subscription: r.subscription,
    domain: r.domain,
    event: r.event_kind,
    eventId: r.event_id,
    queueId: r.message_id,
    url: r.url,
    attempt: r.attempt,
    statusCode: r.status_code,
    error: r.error,
    deliveredAt: r.delivered_at === null ? null : iso(r.delivered_at),
    durationMs: Number(r.duration_ms),
    idempotencyKey: r.idempotency_key,
  }));
}
