/**
 * `petrel trace <queue-id | message-id | address>`: where is my message? A queue id shows that
 * message (recipients and timeline); anything else is searched for, newest first, and a single
 * match is shown as if its queue id had been given.
 */
import type { Message, MessageResponse, MessagesResponse, Recipient, TimelineEntry } from '@petrel/recorder';
import { ExitCode } from '../errors.ts';
import { type Column, count, isoMillis, isoSeconds, json, keyValues, orDash, table } from '../format.ts';
import type { CommandContext } from '../run.ts';

export interface TraceOptions {
  readonly since?: string;
  readonly until?: string;
  readonly limit?: number;
}

/** A queue id: a ULID, 26 characters of Crockford's base32 (no I, L, O, U). */
const QUEUE_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/i;

export function isQueueId(value: string): boolean {
  return QUEUE_ID.test(value);
}

export async function trace(ctx: CommandContext, query: string, options: TraceOptions): Promise<ExitCode> {
  const q = query.trim();
  if (isQueueId(q)) {
    const found = await ctx.client.get<MessageResponse>(
      `v1/messages/${encodeURIComponent(q.toUpperCase())}`,
      {
        expect: 'message',
      },
    );
    ctx.out(ctx.json ? json(found) : messageView(found));
    return ExitCode.Ok;
  }
  const limit = options.limit ?? 50;
  const found = await ctx.client.get<MessagesResponse>('v1/messages', {
    query: { q, since: options.since, until: options.until, limit },
    expect: 'messages',
  });
  const { messages } = found;
  if (messages.length === 0) {
    if (ctx.json) ctx.out(json(found));
    ctx.note(`no message matches ${JSON.stringify(q)}${range(options)}`);
    return ExitCode.Failed;
  }
  if (messages.length >= limit) {
    ctx.note(`showing the newest ${limit}; narrow it with --since/--until or raise --limit`);
  }
  if (ctx.json) {
    ctx.out(json(found));
    return ExitCode.Ok;
  }
  const [only] = messages;
  if (messages.length === 1 && only !== undefined) {
    const one = await ctx.client.get<MessageResponse>(`v1/messages/${encodeURIComponent(only.queueId)}`, {
      expect: 'message',
    });
    ctx.out(messageView(one));
    return ExitCode.Ok;
  }
  ctx.out(table(MATCH_COLUMNS, messages));
  return ExitCode.Ok;
}

function range(options: TraceOptions): string {
  if (options.since === undefined && options.until === undefined) return ' (within the retention)';
  return ` between ${isoSeconds(options.since ?? null)} and ${isoSeconds(options.until ?? null)}`;
}

/** Statuses from the least to the most final, as the recorder orders them. */
const STATUS_ORDER = ['queued', 'deferred', 'delivered', 'bounced', 'expired', 'purged'];

/** `2 delivered, 1 deferred`: how many recipients are in each status. */
export function statusSummary(recipients: readonly Recipient[]): string {
  const counts = new Map<string, number>();
  for (const r of recipients) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  const rank = (s: string) => {
    const i = STATUS_ORDER.indexOf(s);
    return i === -1 ? STATUS_ORDER.length : i;
  };
  return (
    [...counts]
      .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
      .map(([status, n]) => `${n} ${status}`)
      .join(', ') || '-'
  );
}

/** The envelope sender; the null reverse-path (a DSN's) shown as `<>`. */
function sender(s: string): string {
  return s === '' ? '<>' : s;
}

const MATCH_COLUMNS: readonly Column<Message>[] = [
  { header: 'QUEUE ID', value: (m) => m.queueId },
  { header: 'ACCEPTED', value: (m) => isoSeconds(m.acceptedAt) },
  { header: 'SENDER', value: (m) => sender(m.sender), max: 40 },
  { header: 'RCPTS', value: (m) => String(m.recipients.length), align: 'right' },
  { header: 'STATUS', value: (m) => statusSummary(m.recipients) },
  { header: 'MESSAGE-ID', value: (m) => orDash(m.messageId), max: 50 },
];

const RECIPIENT_COLUMNS: readonly Column<Recipient>[] = [
  { header: 'RECIPIENT', value: (r) => r.address, max: 50 },
  { header: 'STATUS', value: (r) => r.status },
  { header: 'ATTEMPTS', value: (r) => String(r.attempts), align: 'right' },
  { header: 'UPDATED', value: (r) => isoSeconds(r.updatedAt) },
  { header: 'DSN', value: (r) => orDash(r.dsnQueueId) },
  { header: 'LAST REPLY', value: (r) => orDash(r.lastReply), max: 100 },
];

function remote(e: TimelineEntry): string {
  const parts = [e.remoteHost, e.remoteAddress === '' ? '' : `[${e.remoteAddress}]`, e.tlsProtocol];
  return orDash(parts.filter((p) => p !== '').join(' '));
}

function detail(e: TimelineEntry): string {
  const reply =
    e.reply === null ? '' : [e.reply.code, e.reply.enhanced, e.reply.text].filter(Boolean).join(' ');
  const text = reply === '' ? e.error : reply;
  const dsn = e.dsnQueueId === null ? '' : `DSN ${e.dsnQueueId}`;
  return orDash([text, dsn].filter((p) => p !== '').join('; '));
}

function recipientsCell(list: readonly string[]): string {
  const [first] = list;
  if (first === undefined) return '-';
  return list.length === 1 ? first : `${first} +${list.length - 1}`;
}

const TIMELINE_COLUMNS: readonly Column<TimelineEntry>[] = [
  { header: 'AT', value: (e) => isoMillis(e.at) },
  { header: 'EVENT', value: (e) => e.event },
  { header: 'RECIPIENTS', value: (e) => recipientsCell(e.recipients), max: 50 },
  { header: 'ATTEMPT', value: (e) => (e.attempt > 0 ? String(e.attempt) : '-'), align: 'right' },
  { header: 'REMOTE', value: remote, max: 60 },
  { header: 'TOOK', value: (e) => (e.durationMs > 0 ? `${e.durationMs}ms` : '-'), align: 'right' },
  { header: 'DETAIL', value: detail, max: 120 },
];

/** A message: its envelope, its recipients' state, and what happened, oldest first. */
export function messageView({ message: m, timeline }: MessageResponse): string {
  const head = keyValues([
    ['Queue id', m.queueId],
    ['Accepted', isoSeconds(m.acceptedAt)],
    ['Message-ID', m.messageId === '' ? '-' : `<${m.messageId}>`],
    ['Sender', sender(m.sender)],
    ['Size', m.size > 0 ? count(m.size, 'byte') : '-'],
    ['Client', orDash(m.clientAddress)],
    ['Trace id', orDash(m.traceId)],
  ]);
  const recipients = m.recipients.length === 0 ? '(none recorded)\n' : table(RECIPIENT_COLUMNS, m.recipients);
  const events = timeline.length === 0 ? '(no events recorded)\n' : table(TIMELINE_COLUMNS, timeline);
  return `${head}\nRecipients\n${recipients}\nTimeline\n${events}`;
}
