/**
 * Plain-text output: aligned tables, key/value blocks, times in ISO 8601 UTC, ages and rates.
 * Every value that came from outside (an address, a remote server's reply) goes through `clean`:
 * a terminal must not receive escape sequences from a stranger's SMTP reply.
 */

export interface Column<R> {
  readonly header: string;
  readonly value: (row: R) => string;
  /** Numbers align right. */
  readonly align?: 'left' | 'right';
  /** Longer values are cut, ending in `…` (the whole value is in --json). */
  readonly max?: number;
}

const GAP = '  ';

/** Control characters (C0, DEL, C1) and bidirectional overrides, shown as escapes instead. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function clean(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0) ?? 0;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
  });
}

function cut(text: string, max: number | undefined): string {
  const chars = [...text];
  return max === undefined || chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

function width(text: string): number {
  return [...text].length;
}

/** A table: a header line and one line per row, columns two spaces apart, no trailing spaces. */
export function table<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((row) => columns.map((c) => cut(clean(c.value(row)), c.max)));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((r) => width(r[i] ?? ''))));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - width(v));
        if (columns[i]?.align === 'right') return pad + v;
        return i === values.length - 1 ? v : v + pad;
      })
      .join(GAP)
      .trimEnd();
  return `${[line(columns.map((c) => c.header)), ...cells.map(line)].join('\n')}\n`;
}

/** `Label   value` lines, labels padded to the longest. Values are cleaned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const w = Math.max(...pairs.map(([k]) => width(k)));
  return `${pairs.map(([k, v]) => `${k}${' '.repeat(w - width(k))}${GAP}${clean(v)}`.trimEnd()).join('\n')}\n`;
}

/** The API's answer for --json: pretty, as the API sent it. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** An ISO 8601 time in UTC to the second (`2026-11-23T12:00:00Z`); `-` for none. */
export function isoSeconds(value: string | null | undefined): string {
  return iso(value, false);
}

/** To the millisecond: timeline entries are often less than a second apart. */
export function isoMillis(value: string | null | undefined): string {
  return iso(value, true);
}

function iso(value: string | null | undefined, millis: boolean): string {
  if (value === null || value === undefined || value === '') return '-';
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) return value;
  const s = t.toISOString();
  return millis ? s : s.replace(/\.\d{3}Z$/, 'Z');
}

/** A duration in the two largest units: `45s`, `12m30s`, `3h05m`, `2d04h`; `-` for none. */
export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`;
}

/** A rate per second, `-` for none (unlimited or not known). */
export function rate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined) return '-';
  return `${Number(perSecond.toFixed(2))}/s`;
}

/** `1 message`, `3 messages`. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `-` for an empty value, so that a column never looks shifted. */
export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}
