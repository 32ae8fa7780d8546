/** RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, excluding the CRLF. */
export const FOLD_WIDTH = 78;

/** Controls other than whitespace (tab, LF, VT, FF, CR are whitespace and become spaces). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\x00-\x08\x0e-\x1f\x7f]/g;

/**
 * Folds a header field at spaces (RFC 5322 §2.2.3): a CRLF goes in front of a space, so
 * unfolding gives the text back. Runs of whitespace become one space and other control
 * characters are dropped first: parts of the text come from DNS and from the message, and must
 * never end the field or start a new one. `first` is how much of the first line is already used.
 * A word longer than the width stays whole.
 */
export function fold(text: string, first = 0, width = FOLD_WIDTH): string {
  let out = '';
  let line = first;
  const words = text.replace(CONTROL, '').trim().split(/\s+/);
  words.forEach((word, i) => {
    if (i === 0) {
      out = word;
      line += word.length;
      return;
    }
    if (line + 1 + word.length > width) {
      out += `\r\n ${word}`;
      line = 1 + word.length;
    } else {
      out += ` ${word}`;
      line += 1 + word.length;
    }
  });
  return out;
}

/**
 * The Authentication-Results header field (RFC 8601 §2.2), one method result per line, folded
 * and CRLF-terminated. Without results the field says `none` (no authentication was done).
 */
export function authenticationResults(authservId: string, results: readonly string[]): string {
  const name = 'Authentication-Results: ';
  if (results.length === 0) return `${name}${authservId}; none\r\n`;
  // One column less: each line but the last ends in ';'.
  const body = results.map((r) => ` ${fold(r, 1, FOLD_WIDTH - 1)}`).join(';\r\n');
  return `${name}${authservId};\r\n${body}\r\n`;
}
