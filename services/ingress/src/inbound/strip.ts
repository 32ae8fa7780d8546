/**
 * RFC 8601 §5: an MTA that adds Authentication-Results must remove fields claiming its own
 * authserv-id that arrived with the message, or a sender could forge "dkim=pass" from us.
 * Only the header section is touched; the body bytes are returned as they are.
 */
const FIELD = /^authentication-results[ \t]*:/i;

export function stripOwnAuthenticationResults(message: Buffer, authservId: string): Buffer {
  // End of the header section: the first empty line (CRLF CRLF), or the whole message.
  const end = message.indexOf('\r\n\r\n');
  const headerEnd = end === -1 ? message.length : end + 2;
  const header = message.subarray(0, headerEnd).toString('latin1');
  if (!/authentication-results/i.test(header)) return message;
  // Group physical lines into fields (continuation lines start with WSP), then decide per field.
  const fields: string[][] = [];
  for (const line of header.split('\r\n')) {
    const last = fields[fields.length - 1];
    if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) last.push(line);
    else fields.push([line]);
  }
  const id = authservId.toLowerCase();
  let removed = false;
  const kept = fields.filter((field) => {
    const first = field[0] ?? '';
    if (!FIELD.test(first)) return true;
    // authserv-id is the first token of the value (RFC 8601 §2.2), after folding whitespace.
    const value = field
      .join(' ')
      .slice(first.indexOf(':') + 1)
      .replace(/^[ \t]+/, '');
    const token = /^([^;\s(]+)/.exec(value)?.[1]?.toLowerCase();
    if (token !== id) return true;
    removed = true;
    return false;
  });
  if (!removed) return message;
  return Buffer.concat([
    Buffer.from(kept.map((f) => f.join('\r\n')).join('\r\n'), 'latin1'),
    message.subarray(headerEnd),
  ]);
}
