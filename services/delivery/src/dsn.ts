/**
 * Delivery status notifications (RFC 3464) as multipart/report (RFC 6522), and the rules for
 * when to send one (RFC 3461 NOTIFY, never for the null sender, never for a bounce).
 * SMTPUTF8 originals get message/global-delivery-status and message/global (RFC 6533).
 */
import { isAscii } from 'node:buffer';
import { randomBytes } from 'node:crypto';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipient {
  readonly address: string;
  /** RFC 3461 ORCPT as received: "rfc822;user@example.org" (or "utf-8;..."). */
  readonly orcpt?: string | undefined;
  readonly action: DsnAction;
  /** RFC 3463 status, e.g. 5.1.1. */
  readonly status: string;
  readonly remoteMta?: string | undefined;
  /** The remote reply, e.g. "550 5.1.1 no such user"; written as "smtp; ..." (RFC 3464 §2.3.6). */
  readonly diagnostic?: string | undefined;
  readonly lastAttempt?: Date | undefined;
  /** For "delayed": until when we keep trying. */
  readonly willRetryUntil?: Date | undefined;
}

export interface DsnInput {
  /** Our host name (Reporting-MTA, and the From domain: MAILER-DAEMON@<it>). */
  readonly reportingMta: string;
  /** The original envelope sender (the DSN's recipient). */
  readonly sender: string;
  readonly envid?: string | undefined;
  /** RFC 3461 RET; absent: headers only (our choice for an unspecified RET, RFC 3461 §4.3). */
  readonly ret?: 'FULL' | 'HDRS' | undefined;
  readonly arrivalDate?: Date | undefined;
  /** "dns; client.example.net ([192.0.2.1])" style, from the original session. */
  readonly receivedFrom?: string | undefined;
  readonly smtputf8?: boolean | undefined;
  readonly recipients: readonly DsnRecipient[];
  readonly original: Buffer;
  /** The whole original is returned up to this size (RET=FULL); above it, its header only. */
  readonly maxReturnSize?: number;
  readonly now?: Date;
  readonly messageId?: string;
  readonly boundary?: string;
}

const CRLF = '\r\n';
const HEADER_END = Buffer.from('\r\n\r\n');

/** RFC 5322 date-time. */
function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${p(d.getUTCDate())} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** A field body made safe: no CR/LF (a remote reply could carry them), folded at spaces. */
function field(name: string, value: string): string {
  const clean = value.replace(/[\r\n]+/g, ' ').replace(/\s+$/, '');
  const words = clean.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const word of words) {
    if (line.length + 1 + word.length > 78 && line.length > name.length + 1) {
      lines.push(line);
      line = ` ${word}`;
    } else {
      line += ` ${word}`;
    }
  }
  lines.push(line);
  return lines.join(CRLF);
}

function headerSection(message: Buffer): Buffer {
  const end = message.indexOf(HEADER_END);
  return end === -1 ? message : message.subarray(0, end + 2);
}

/** RFC 3461 §4.2 addr-type;address. An ORCPT given in xtext was decoded by the ingress. */
function addressField(address: string, utf8: boolean): string {
  return `${utf8 && /[^\x20-\x7e]/.test(address) ? 'utf-8' : 'rfc822'};${address}`;
}

const SUBJECTS: Record<DsnAction, string> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
  relayed: 'Mail Relayed Without Delivery Notification',
  expanded: 'Mail Delivered to an Alias',
};

function explanation(input: DsnInput): string {
  const failed = input.recipients.filter((r) => r.action === 'failed');
  const delayed = input.recipients.filter((r) => r.action === 'delayed');
  const lines = [`This is the mail system at ${input.reportingMta}.`, ''];
  if (failed.length > 0) {
    lines.push('Your message could not be delivered to the following recipients:', '');
    for (const r of failed) lines.push(`  <${r.address}>: ${r.diagnostic ?? r.status}`);
    lines.push('');
  }
  if (delayed.length > 0) {
    lines.push('Your message has not been delivered yet to the following recipients; we keep trying:', '');
    for (const r of delayed) {
      lines.push(
        `  <${r.address}>: ${r.diagnostic ?? r.status}${r.willRetryUntil ? ` (until ${rfc5322Date(r.willRetryUntil)})` : ''}`,
      );
    }
    lines.push('');
  }
  for (const r of input.recipients.filter((x) => x.action !== 'failed' && x.action !== 'delayed')) {
    lines.push(`  <${r.address}>: ${r.action}`);
  }
  return lines.join(CRLF);
}

/** The complete DSN message (CRLF line endings), to be sent with MAIL FROM:<>. */
export function buildDsn(input: DsnInput): Buffer {
  if (input.recipients.length === 0) throw new TypeError('a DSN needs at least one recipient');
  const now = input.now ?? new Date();
  const utf8 = input.smtputf8 === true;
  const boundary = input.boundary ?? `petrel-dsn-${randomBytes(12).toString('hex')}`;
  if (input.original.includes(boundary)) throw new TypeError('boundary occurs in the returned message');
  const messageId = input.messageId ?? `<${randomBytes(12).toString('hex')}@${input.reportingMta}>`;
  const action = input.recipients.some((r) => r.action === 'failed')
    ? 'failed'
    : (input.recipients[0] as DsnRecipient).action;

  const perMessage = [field('Reporting-MTA', `dns; ${input.reportingMta}`)];
  if (input.envid) perMessage.push(field('Original-Envelope-Id', input.envid));
  if (input.receivedFrom) perMessage.push(field('Received-From-MTA', input.receivedFrom));
  if (input.arrivalDate) perMessage.push(field('Arrival-Date', rfc5322Date(input.arrivalDate)));
  const blocks = input.recipients.map((r) => {
    const b: string[] = [];
    if (r.orcpt) b.push(field('Original-Recipient', r.orcpt));
    b.push(field('Final-Recipient', addressField(r.address, utf8)));
    b.push(field('Action', r.action));
    b.push(field('Status', r.status));
    if (r.remoteMta) b.push(field('Remote-MTA', `dns; ${r.remoteMta}`));
    if (r.diagnostic) b.push(field('Diagnostic-Code', `smtp; ${r.diagnostic}`));
    if (r.lastAttempt) b.push(field('Last-Attempt-Date', rfc5322Date(r.lastAttempt)));
    if (r.willRetryUntil) b.push(field('Will-Retry-Until', rfc5322Date(r.willRetryUntil)));
    return b.join(CRLF);
  });
  const status = [perMessage.join(CRLF), ...blocks].join(CRLF + CRLF) + CRLF;

  const maxReturn = input.maxReturnSize ?? 10 * 1024 * 1024;
  const full = input.ret === 'FULL' && input.original.length <= maxReturn;
  const returned = full ? input.original : headerSection(input.original);
  const returnedType = full
    ? utf8
      ? 'message/global'
      : 'message/rfc822'
    : utf8
      ? 'message/global-headers'
      : 'text/rfc822-headers';
  const eightBit = !isAscii(returned) || utf8;

  const head = [
    field('From', `Mail Delivery System <MAILER-DAEMON@${input.reportingMta}>`),
    field('To', `<${input.sender}>`),
    field('Subject', SUBJECTS[action]),
    field('Date', rfc5322Date(now)),
    field('Message-ID', messageId),
    // RFC 3834 §5: an automatic response; nobody should answer it automatically.
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF} boundary="${boundary}"`,
  ].join(CRLF);
  const parts = [
    `${head}${CRLF}${CRLF}This is a MIME-encapsulated message.${CRLF}`,
    `--${boundary}${CRLF}Content-Type: text/plain; charset=utf-8${CRLF}Content-Transfer-Encoding: 8bit${CRLF}${CRLF}${explanation(input)}${CRLF}`,
    `--${boundary}${CRLF}Content-Type: ${utf8 ? 'message/global-delivery-status' : 'message/delivery-status'}${CRLF}${utf8 ? `Content-Transfer-Encoding: 8bit${CRLF}` : ''}${CRLF}${status}`,
    `--${boundary}${CRLF}Content-Type: ${returnedType}${CRLF}${eightBit ? `Content-Transfer-Encoding: 8bit${CRLF}` : ''}${CRLF}`,
  ];
  const tail = `${returned.subarray(-2).toString('latin1') === CRLF ? '' : CRLF}--${boundary}--${CRLF}`;
  return Buffer.concat([Buffer.from(parts.join(''), 'utf8'), returned, Buffer.from(tail)]);
}

/**
 * Whether a DSN goes to the sender for this action (RFC 3461 §4.1, §6.2): never for the null
 * sender (a DSN about a DSN); never for a message that is itself a delivery report or an
 * automatic bounce (no loops); NOTIFY=NEVER → none; with NOTIFY, only the listed kinds; without
 * NOTIFY, failures (and delays when `delaysByDefault`).
 */
export function shouldSendDsn(
  sender: string,
  notify: readonly string[],
  action: 'failed' | 'delayed' | 'delivered',
  original: Buffer,
  delaysByDefault = false,
): boolean {
  if (sender === '') return false;
  const header = headerSection(original).toString('latin1');
  if (/^content-type:\s*multipart\/report\s*;[\s\S]*?report-type\s*=\s*"?delivery-status/im.test(header))
    return false;
  if (
    /^auto-submitted:\s*auto-(replied|generated)/im.test(header) &&
    /^from:[^\n]*mailer-daemon@/im.test(header)
  ) {
    return false;
  }
  if (notify.includes('NEVER')) return false;
  const wanted = action === 'failed' ? 'FAILURE' : action === 'delayed' ? 'DELAY' : 'SUCCESS';
  if (notify.length > 0) return notify.includes(wanted);
  return action === 'failed' || (action === 'delayed' && delaysByDefault);
}
