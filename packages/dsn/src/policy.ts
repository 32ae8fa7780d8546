/**
 * When a DSN is sent (RFC 3461 §4.1, §6.2; RFC 3834 §2) and from which reverse-path.
 */
import type { DsnAction } from './build.ts';
import { headerValue, readHeaders } from './mime.ts';

/**
 * MAIL FROM of every DSN: the null reverse-path <> (RFC 3461 §6.2, RFC 5321 §4.5.5), so that a
 * DSN that cannot be delivered is dropped instead of producing another one.
 */
export const dsnEnvelopeSender = '';

export interface DsnRequest {
  /** What happened to the recipient. */
  readonly action: DsnAction;
  /** The recipient's RFC 3461 NOTIFY values (any case); absent or empty: no NOTIFY was given. */
  readonly notify?: readonly string[] | undefined;
  /**
   * Policy for recipients without NOTIFY: RFC 3461 §4.1 lets the absence mean FAILURE or
   * FAILURE,DELAY. Default false (failures only).
   */
  readonly delaysWithoutNotify?: boolean | undefined;
}

const NOTIFY_OF: Readonly<Record<DsnAction, 'FAILURE' | 'DELAY' | 'SUCCESS'>> = {
  failed: 'FAILURE',
  delayed: 'DELAY',
  delivered: 'SUCCESS',
  relayed: 'SUCCESS',
  expanded: 'SUCCESS',
};

const REPORT_TYPE = /;\s*report-type\s*=\s*"?([A-Za-z0-9.+-]+)"?/i;

/**
 * Whether a message (its header section, or the whole message) is itself a delivery report,
 * which must never cause another one (RFC 3461 §6.2, RFC 3834 §2):
 *  - a multipart/report with report-type delivery-status or global-delivery-status (a DSN);
 *  - an automatic message (Auto-Submitted other than "no") that is a report of any kind
 *    (multipart/report: DSN, MDN, feedback report) or comes from a mail system
 *    (From MAILER-DAEMON@ or postmaster@);
 *  - a message from MAILER-DAEMON@, which is what non-MIME bounces come from.
 * Other automatic mail (a vacation reply, a cron report) is an ordinary message: when it cannot
 * be delivered its sender is told, and the DSN, sent from <>, cannot loop.
 */
export function isDeliveryReport(headers: Buffer | string): boolean {
  const fields = readHeaders(headers);
  const contentType = headerValue(fields, 'Content-Type') ?? '';
  const report = /^\s*multipart\/report\s*(;|$)/i.test(contentType);
  const reportType = REPORT_TYPE.exec(contentType)?.[1]?.toLowerCase();
  if (report && (reportType === 'delivery-status' || reportType === 'global-delivery-status')) return true;
  const from = fromLocalPart(headerValue(fields, 'From'));
  if (from === 'mailer-daemon') return true;
  const autoSubmitted = (headerValue(fields, 'Auto-Submitted') ?? 'no')
    .replace(/\([^)]*\)/g, '')
    .split(';')[0]
    ?.trim()
    .toLowerCase();
  if (autoSubmitted === 'no' || autoSubmitted === '') return false;
  return report || from === 'postmaster';
}

/** Lower-cased local part of the (first) From address. */
function fromLocalPart(from: string | undefined): string | undefined {
  if (from === undefined) return undefined;
  const angle = /<([^<>]*)>/.exec(from);
  const address = (angle ? angle[1] : from)?.trim() ?? '';
  const at = address.lastIndexOf('@');
  return at <= 0
    ? undefined
    : address
        .slice(0, at)
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase();
}

/**
 * Whether the sender gets a DSN about one recipient:
 *  - never for the null sender (RFC 3461 §6.2: no DSN about a DSN) nor for a message that is
 *    itself a delivery report (isDeliveryReport);
 *  - NOTIFY=NEVER: never; NOTIFY with values: only for the kinds listed (FAILURE for failed,
 *    DELAY for delayed, SUCCESS for delivered, relayed and expanded);
 *  - no NOTIFY: failures, and delays when the policy says so (delaysWithoutNotify); never successes.
 * `headers` is the original's header section or the whole original.
 */
export function shouldSendDsn(sender: string, headers: Buffer | string, request: DsnRequest): boolean {
  if (sender.trim() === '' || sender.trim() === '<>') return false;
  if (isDeliveryReport(headers)) return false;
  const notify = (request.notify ?? []).map((n) => n.trim().toUpperCase()).filter((n) => n !== '');
  if (notify.includes('NEVER')) return false;
  if (notify.length > 0) return notify.includes(NOTIFY_OF[request.action]);
  if (request.action === 'failed') return true;
  return request.action === 'delayed' && request.delaysWithoutNotify === true;
}
