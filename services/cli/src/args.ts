/**
 * Option values of the API commands, checked before anything is sent: a bad value is a usage
 * error (exit 2) with the accepted forms named, not a 400 from the API.
 */
import { InvalidArgumentError } from 'commander';

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** `90m`, `12h`, `30d`, `1d12h`: milliseconds, or undefined when it is not a duration. */
export function durationMs(value: string): number | undefined {
  const v = value.trim().toLowerCase();
  if (!/^(\d+[smhdw])+$/.test(v)) return undefined;
  let total = 0;
  for (const [, n, unit] of v.matchAll(/(\d+)([smhdw])/g)) total += Number(n) * (UNIT_MS[unit ?? ''] ?? 0);
  return total;
}

/** RFC 3339 with a zone (`2026-11-23T12:00:00Z`, `...+01:00`) or a date (midnight UTC). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/;

/**
 * A point in time: RFC 3339, or a duration counted from now (`direction` -1: ago, as for
 * --since 2h; +1: ahead, as for --expires 30d). ISO 8601 UTC out.
 */
export function timeArg(direction: -1 | 1, now: () => number = Date.now) {
  return (value: string): string => {
    const d = durationMs(value);
    if (d !== undefined) return new Date(now() + direction * d).toISOString();
    const t = RFC3339.test(value.trim()) ? Date.parse(value.trim().replace(' ', 'T')) : Number.NaN;
    if (Number.isNaN(t)) {
      throw new InvalidArgumentError(
        `must be an RFC 3339 time (2026-11-23T12:00:00Z) or a duration (90m, 12h, 30d) ${direction < 0 ? 'ago' : 'from now'}`,
      );
    }
    return new Date(t).toISOString();
  };
}

/** A whole number from 1 to `max`. */
export function limitArg(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
    return n;
  };
}
