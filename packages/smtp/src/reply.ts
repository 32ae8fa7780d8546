/** One SMTP reply: a code, an optional enhanced status code and one or more lines of text. */
export interface Reply {
  readonly code: number;
  readonly enhanced?: string;
  readonly lines: readonly string[];
}

export function reply(code: number, enhanced: string | undefined, ...lines: string[]): Reply {
  return { code, enhanced, lines: lines.length > 0 ? lines : [''] };
}

/** Wire form: `code-text` for all but the last line (RFC 5321 §4.2.1), each line with the enhanced code. */
export function formatReply(r: Reply): string {
  const prefix = r.enhanced ? `${r.enhanced} ` : '';
  let out = '';
  r.lines.forEach((line, i) => {
    const sep = i === r.lines.length - 1 ? ' ' : '-';
    out += `${r.code}${sep}${prefix}${line}\r\n`;
  });
  return out;
}

export function isPositive(r: Reply): boolean {
  return r.code >= 200 && r.code < 400;
}

export function isTransient(r: Reply): boolean {
  return r.code >= 400 && r.code < 500;
}

export function isPermanent(r: Reply): boolean {
  return r.code >= 500;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;

/**
 * Parses the lines of one reply as received by a client (without CRLF). Returns undefined for
 * malformed input. The enhanced code is taken from the first line when it matches the code class.
 */
export function parseReplyLines(lines: readonly string[]): Reply | undefined {
  const first = lines[0];
  if (first === undefined) return undefined;
  // Three digits 2xx-5xx: Number() alone would also read e.g. "2e2" as 200.
  if (!/^[2-5]\d\d$/.test(first.slice(0, 3))) return undefined;
  const code = Number(first.slice(0, 3));
  let enhanced: string | undefined;
  const texts = lines.map((l) => l.slice(4));
  const m = ENHANCED.exec(texts[0] ?? '');
  if (m && m[1] === String(code)[0]) {
    enhanced = `${m[1]}.${m[2]}.${m[3]}`;
    for (let i = 0; i < texts.length; i++) {
      const t = texts[i] ?? '';
      if (t.startsWith(`${enhanced} `) || t === enhanced) texts[i] = t.slice(enhanced.length + 1);
    }
  }
  return { code, enhanced, lines: texts };
}
