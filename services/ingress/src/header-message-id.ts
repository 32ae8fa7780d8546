import { firstField } from '@petrel/smtp';

/**
 * The Message-ID header field of a message (RFC 5322 §3.6.4), for the trace API's lookups: the
 * first one in the header section, unfolded (§2.2.3), without its angle brackets and comments.
 * '' when there is none.
 */
const NAME = Buffer.from('message-id', 'latin1');
/** A longer value is cut: RFC 5322 §2.1.1 lines hold 998 characters; the trace needs no more. */
export const MAX_MESSAGE_ID = 998;

export function headerMessageId(message: Buffer): string {
  const raw = firstField(message, NAME);
  if (raw === undefined) return '';
  const unfolded = raw.toString('latin1').replace(/\r?\n/g, '');
  return Buffer.from(idOf(unfolded), 'latin1').toString('utf8').slice(0, MAX_MESSAGE_ID);
}

/** msg-id = [CFWS] "<" id-left "@" id-right ">" [CFWS]; lenient: no brackets, take the text. */
function idOf(value: string): string {
  const withoutComments = value.replace(/\([^()]*\)/g, ' ');
  const open = withoutComments.indexOf('<');
  const close = withoutComments.indexOf('>', open + 1);
  if (open !== -1 && close !== -1) return withoutComments.slice(open + 1, close).trim();
  return withoutComments.trim().split(/\s+/)[0] ?? '';
}
