const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "5m", "4h", "2d", "250ms" or plain milliseconds → milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+)(ms|s|m|h|d)?\s*$/.exec(text);
  if (m === null) throw new Error(`invalid duration "${text}" (expected e.g. 30s, 5m, 4h, 2d)`);
  const value = Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1);
  if (value <= 0) throw new Error(`duration "${text}" must be positive`);
  return value;
}

/** "1m,5m,15m,1h,4h" → delays in ms. */
export function parseDurations(text: string): number[] {
  return text.split(',').map(parseDuration);
}
