/**
 * The Message-ID header field of a message (RFC 5322 §3.6.4), for the trace API's lookups: the
 * first one in the header section, unfolded (§2.2.3), without its angle brackets and comments.
 * '' when there is none. Reads only the header section, and at most 64 KiB of it.
 */
const MAX_HEADER_SCAN = 64 * 1024;
/** A longer value is cut: RFC 5322 §2.1.1 lines hold 998 characters; the trace needs no more. */
export const MAX_MESSAGE_ID = 998;
const NAME = /^message-id[ \t]*:/i;

export function headerMessageId(message: Buffer): string {
  const end = headerEnd(message);
  const head = message.subarray(0, end).toString('latin1');
  let i = 0;
  while (i < head.length) {
    let next = head.indexOf('\n', i);
    if (next === -1) next = head.length;
    if (NAME.test(head.slice(i, i + 16))) {
      // The field, with its folded continuation lines.
      let stop = next;
      while (stop + 1 < head.length && (head[stop + 1] === ' ' || head[stop + 1] === '\t')) {
        const after = head.indexOf('\n', stop + 1);
        stop = after === -1 ? head.length : after;
      }
      const raw = head.slice(head.indexOf(':', i) + 1, stop).replace(/\r?\n/g, '');
      return Buffer.from(idOf(raw), 'latin1').toString('utf8').slice(0, MAX_MESSAGE_ID);
    }
    i = next + 1;
  }
  return '';
}

function headerEnd(message: Buffer): number {
  const limit = Math.min(message.length, MAX_HEADER_SCAN);
  const crlf = message.indexOf('\r\n\r\n');
  if (crlf !== -1 && crlf < limit) return crlf;
  const lf = message.indexOf('\n\n');
  if (lf !== -1 && lf < limit) return lf;
  return limit;
}

/** msg-id = [CFWS] "<" id-left "@" id-right ">" [CFWS]; lenient: no brackets, take the text. */
function idOf(value: string): string {
  const withoutComments = value.replace(/\([^()]*\)/g, ' ');
  const open = withoutComments.indexOf('<');
  const close = withoutComments.indexOf('>', open + 1);
  if (open !== -1 && close !== -1) return withoutComments.slice(open + 1, close).trim();
  return withoutComments.trim().split(/\s+/)[0] ?? '';
}
