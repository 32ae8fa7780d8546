import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durationMs, limitArg, timeArg } from './args.ts';
import { age, clean, isoMillis, isoSeconds, keyValues, rate, table } from './format.ts';

test('table: columns aligned two spaces apart, numbers to the right, long values cut, no trailing spaces', () => {
  const rows = [
    { name: 'a', n: 5, note: 'short' },
    { name: 'longer-name', n: 12345, note: 'x'.repeat(30) },
  ];
  const out = table(
    [
      { header: 'NAME', value: (r) => r.name },
      { header: 'N', value: (r) => String(r.n), align: 'right' },
      { header: 'NOTE', value: (r) => r.note, max: 10 },
    ],
    rows,
  );
  assert.equal(
    out,
    [
      'NAME             N  NOTE',
      'a                5  short',
      `longer-name  12345  ${'x'.repeat(9)}…`,
      '',
    ].join('\n'),
  );
  // A header only when there are no rows.
  assert.equal(table([{ header: 'A', value: () => '' }], []), 'A\n');
});

test('clean shows control characters and bidi overrides as escapes', () => {
  assert.equal(clean('ok \u001b[31mred\u0007'), 'ok \\x1b[31mred\\x07');
  assert.equal(clean('csi \u009b2J'), 'csi \\x9b2J');
  assert.equal(clean('a\u202eb'), 'a\\u202eb');
  assert.equal(clean('tab\there\nnl'), 'tab\\x09here\\x0anl');
  assert.equal(clean('ünïcödé ✓'), 'ünïcödé ✓');
  // In tables and key/value blocks too.
  assert.equal(table([{ header: 'X', value: () => '\u001b]0;pwned\u0007' }], [1]), 'X\n\\x1b]0;pwned\\x07\n');
  assert.equal(keyValues([['Sender', 'a\u001bb']]), 'Sender  a\\x1bb\n');
});

test('times in ISO 8601 UTC, ages in the two largest units, rates', () => {
  assert.equal(isoSeconds('2026-11-23T13:00:00.123+01:00'), '2026-11-23T12:00:00Z');
  assert.equal(isoMillis('2026-11-23T12:00:00.123Z'), '2026-11-23T12:00:00.123Z');
  assert.equal(isoSeconds(null), '-');
  assert.equal(isoSeconds('not a time'), 'not a time');
  assert.deepEqual([0, 45, 750, 3600 + 5 * 60 + 59, 2 * 86_400 + 4 * 3600, null].map(age), [
    '0s',
    '45s',
    '12m30s',
    '1h05m',
    '2d04h',
    '-',
  ]);
  assert.deepEqual([null, 10, 2.5, 1 / 3].map(rate), ['-', '10/s', '2.5/s', '0.33/s']);
});

test('option values: durations, times, limits', () => {
  assert.equal(durationMs('90m'), 90 * 60_000);
  assert.equal(durationMs('1d12h'), 36 * 3_600_000);
  assert.equal(durationMs('2W'), 14 * 86_400_000);
  assert.equal(durationMs('12'), undefined);
  assert.equal(durationMs('yesterday'), undefined);
  const now = () => Date.parse('2026-11-23T12:00:00Z');
  assert.equal(timeArg(-1, now)('2h'), '2026-11-23T10:00:00.000Z');
  assert.equal(timeArg(1, now)('30d'), '2026-12-23T12:00:00.000Z');
  assert.equal(timeArg(1, now)('2026-12-01T08:00:00+01:00'), '2026-12-01T07:00:00.000Z');
  assert.equal(timeArg(1, now)('2026-12-01'), '2026-12-01T00:00:00.000Z');
  // No zone: ambiguous (local or UTC?), refused rather than guessed.
  assert.throws(() => timeArg(1, now)('2026-12-01T08:00:00'), /RFC 3339/);
  assert.throws(() => timeArg(-1, now)('tomorrow'), /duration \(90m, 12h, 30d\) ago/);
  assert.equal(limitArg(1000)('1000'), 1000);
  for (const bad of ['0', '1001', '1.5', '-1', 'ten', ' '])
    assert.throws(() => limitArg(1000)(bad), /1 to 1000/);
});
