/**
 * What a batch of new events does to the state tables (docs/state.md), as column arrays for
 * UNNEST: one row per event, per message and per recipient, with several events of one message or
 * recipient folded into one row (an upsert may touch a row once per statement). Pure; the order
 * of the events does not matter: a recipient's status is the one of its newest event (time, then
 * how final the status is), its attempts a sum.
 */
import { type DeliveryEvent, EventKind, timestampMs } from '@petrel/proto';
import { eventKindName, messageIdTime } from '@petrel/queue';
import { pgText } from '@petrel/store';

/** A recipient's status after an event of this kind (none: the event does not change it). */
const STATUS_OF: Partial<Record<EventKind, RecipientStatus>> = {
  [EventKind.ACCEPTED]: 'queued',
  [EventKind.DELIVERED]: 'delivered',
  [EventKind.DEFERRED]: 'deferred',
  [EventKind.BOUNCED]: 'bounced',
  [EventKind.EXPIRED]: 'expired',
  [EventKind.PURGED]: 'purged',
};

export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'bounced' | 'expired' | 'purged';
/** Ties in time go to the more final status (SQL: STATUS_RANK_SQL, same order). */
export const STATUS_ORDER: readonly RecipientStatus[] = [
  'queued',
  'deferred',
  'delivered',
  'bounced',
  'expired',
  'purged',
];

/** Deferrals of entries that were not tried (suspended, backed off): not attempts (docs/delivery.md). */
export const NOT_ATTEMPTED = 'not attempted:';

export interface EventRows {
  eventId: string[];
  at: string[];
  messageId: string[];
  kind: string[];
  destinationDomain: string[];
  /** Recipients joined by U+001F (no address holds a control character; RFC 5321 §4.1.2). */
  recipients: string[];
  attempt: number[];
  remoteHost: string[];
  remoteAddress: string[];
  tlsProtocol: string[];
  replyCode: (number | null)[];
  replyEnhanced: string[];
  replyText: string[];
  durationMs: string[];
  error: string[];
  traceId: string[];
  sender: string[];
  dsnMessageId: string[];
}

export const RECIPIENT_SEPARATOR = '\u001f';

export interface MessageRow {
  messageId: string;
  acceptedAt: number;
  headerMessageId: string;
  sender: string;
  senderDomain: string;
  size: string;
  clientAddress: string;
  traceId: string;
}

export interface RecipientRow {
  messageId: string;
  acceptedAt: number;
  address: string;
  destinationDomain: string;
  status: RecipientStatus;
  attempts: number;
  updatedAt: number;
  lastReply: string;
  dsnMessageId: string;
}

export interface Folded {
  events: EventRows;
  /** From ACCEPTED events: every column. */
  accepted: MessageRow[];
  /** Messages only other events named: a row so that lookups by queue id find them. */
  seen: MessageRow[];
  recipients: RecipientRow[];
}

/** Whether the recorder keeps this event (it has a kind, an id and a message). */
export function recordable(e: DeliveryEvent): boolean {
  const at = timeOf(e);
  return (
    eventKindName(e.kind) !== undefined && e.eventId !== '' && e.messageId !== '' && at >= 0 && at <= MAX_TIME
  );
}

/** The last moment of year 9999: later times are no event of ours (and beyond a Date's reach). */
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export function timeOf(e: DeliveryEvent): number {
  return e.at === undefined ? 0 : timestampMs(e.at);
}

/** The partition time of a message's rows: the time in its queue id, else its event's time. */
export function acceptedAtOf(messageId: string, fallback: number): number {
  return messageIdTime(messageId) ?? fallback;
}

/** The trace id of a W3C traceparent (version-traceid-spanid-flags). */
export function traceIdOf(e: DeliveryEvent): string {
  const tp = e.trace?.traceparent ?? '';
  return /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(tp)?.[1] ?? '';
}

export function replyLine(e: DeliveryEvent): string {
  if (e.reply !== undefined && e.reply.code !== 0) {
    return `${e.reply.code}${e.reply.enhanced ? ` ${e.reply.enhanced}` : ''} ${e.reply.text}`.trim();
  }
  return e.error;
}

/** The event with every text field as Postgres takes it (a copy only when one needs it). */
function clean(e: DeliveryEvent): DeliveryEvent {
  const texts = [
    e.eventId,
    e.messageId,
    e.destinationDomain,
    e.remoteHost,
    e.remoteAddress,
    e.tlsProtocol,
    e.error,
    e.sender,
    e.headerMessageId,
    e.clientAddress,
    e.dsnMessageId,
    e.reply?.text ?? '',
    e.reply?.enhanced ?? '',
    ...e.recipients,
  ];
  if (!texts.some((t) => t.includes('\u0000'))) return e;
  return {
    ...e,
    eventId: pgText(e.eventId),
    messageId: pgText(e.messageId),
    destinationDomain: pgText(e.destinationDomain),
    recipients: e.recipients.map(pgText),
    remoteHost: pgText(e.remoteHost),
    remoteAddress: pgText(e.remoteAddress),
    tlsProtocol: pgText(e.tlsProtocol),
    error: pgText(e.error),
    sender: pgText(e.sender),
    headerMessageId: pgText(e.headerMessageId),
    clientAddress: pgText(e.clientAddress),
    dsnMessageId: pgText(e.dsnMessageId),
    ...(e.reply === undefined
      ? {}
      : { reply: { ...e.reply, text: pgText(e.reply.text), enhanced: pgText(e.reply.enhanced) } }),
  };
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/**
 * Whether status `a` replaces `b`. "queued" never replaces another status and is always replaced:
 * the ACCEPTED event's time is the ingress's clock and the others' the workers', so a little skew
 * must not put a delivered recipient back in the queue. Otherwise the newer event wins.
 */
function newer(a: { updatedAt: number; status: RecipientStatus }, b: typeof a): boolean {
  if (a.status === 'queued' || b.status === 'queued') return b.status === 'queued';
  if (a.updatedAt !== b.updatedAt) return a.updatedAt > b.updatedAt;
  return STATUS_ORDER.indexOf(a.status) >= STATUS_ORDER.indexOf(b.status);
}

export function fold(events: readonly DeliveryEvent[]): Folded {
  const rows: EventRows = {
    eventId: [],
    at: [],
    messageId: [],
    kind: [],
    destinationDomain: [],
    recipients: [],
    attempt: [],
    remoteHost: [],
    remoteAddress: [],
    tlsProtocol: [],
    replyCode: [],
    replyEnhanced: [],
    replyText: [],
    durationMs: [],
    error: [],
    traceId: [],
    sender: [],
    dsnMessageId: [],
  };
  const accepted = new Map<string, MessageRow>();
  const seen = new Map<string, MessageRow>();
  const recipients = new Map<string, RecipientRow>();
  for (const raw of events) {
    if (!recordable(raw)) continue;
    const e = clean(raw);
    const kind = eventKindName(e.kind) as string;
    const at = timeOf(e);
    const traceId = traceIdOf(e);
    rows.eventId.push(e.eventId);
    rows.at.push(new Date(at).toISOString());
    rows.messageId.push(e.messageId);
    rows.kind.push(kind);
    rows.destinationDomain.push(e.destinationDomain);
    rows.recipients.push(e.recipients.join(RECIPIENT_SEPARATOR));
    rows.attempt.push(e.attempt);
    rows.remoteHost.push(e.remoteHost);
    rows.remoteAddress.push(e.remoteAddress);
    rows.tlsProtocol.push(e.tlsProtocol);
    rows.replyCode.push(e.reply === undefined || e.reply.code === 0 ? null : e.reply.code);
    rows.replyEnhanced.push(e.reply?.enhanced ?? '');
    rows.replyText.push(e.reply?.text ?? '');
    rows.durationMs.push(e.durationMs.toString());
    rows.error.push(e.error);
    rows.traceId.push(traceId);
    rows.sender.push(e.sender);
    rows.dsnMessageId.push(e.dsnMessageId);

    const acceptedAt = acceptedAtOf(e.messageId, at);
    const message: MessageRow = {
      messageId: e.messageId,
      acceptedAt,
      headerMessageId: e.headerMessageId,
      sender: e.sender,
      senderDomain: e.sender.includes('@') ? domainOf(e.sender) : '',
      size: e.size.toString(),
      clientAddress: e.clientAddress,
      traceId,
    };
    if (e.kind === EventKind.ACCEPTED) accepted.set(e.messageId, message);
    else if (!seen.has(e.messageId)) seen.set(e.messageId, message);

    const status = STATUS_OF[e.kind];
    if (status === undefined) continue;
    // An expiry is decided after the last attempt failed: that attempt's event is the EXPIRED one.
    const attempted =
      (e.kind === EventKind.DELIVERED ||
        e.kind === EventKind.DEFERRED ||
        e.kind === EventKind.BOUNCED ||
        e.kind === EventKind.EXPIRED) &&
      e.attempt > 0 &&
      !e.error.startsWith(NOT_ATTEMPTED);
    const line = replyLine(e);
    for (const address of e.recipients) {
      const key = `${e.messageId}\u0000${address}`;
      const update: RecipientRow = {
        messageId: e.messageId,
        acceptedAt,
        address,
        destinationDomain: e.destinationDomain || domainOf(address),
        status,
        attempts: attempted ? 1 : 0,
        updatedAt: at,
        lastReply: line,
        dsnMessageId: e.dsnMessageId,
      };
      const old = recipients.get(key);
      if (old === undefined) {
        recipients.set(key, update);
        continue;
      }
      old.attempts += update.attempts;
      if (newer(update, old)) {
        old.status = update.status;
        old.updatedAt = update.updatedAt;
        if (update.lastReply !== '') old.lastReply = update.lastReply;
        if (update.dsnMessageId !== '') old.dsnMessageId = update.dsnMessageId;
        if (e.destinationDomain !== '') old.destinationDomain = e.destinationDomain;
      } else if (old.dsnMessageId === '' && update.dsnMessageId !== '') {
        old.dsnMessageId = update.dsnMessageId;
      }
    }
  }
  return {
    events: rows,
    accepted: [...accepted.values()],
    seen: [...seen.values()],
    recipients: [...recipients.values()],
  };
}
