/**
 * Text as Postgres stores it: it refuses U+0000 in `text` (SQLSTATE 22021), which outside input
 * may hold (a Message-ID header, a remote server's reply, a webhook receiver's answer); one such
 * value would make a whole batch fail for good. Stored as U+FFFD instead.
 */
export function pgText(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}
