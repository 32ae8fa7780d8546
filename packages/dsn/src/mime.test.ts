import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asEightBit, cleanText, field, headerSection, readHeaders, rfc5322Date } from './mime.ts';

describe('mime helpers', () => {
  it('rfc5322Date writes UTC dates with weekday and +0000', () => {
    assert.equal(rfc5322Date(new Date('2026-01-05T03:04:05Z')), 'Mon, 05 Jan 2026 03:04:05 +0000');
    assert.throws(() => rfc5322Date(new Date('nonsense')), /invalid date/);
  });

  it('field folds at white space within 78 characters and unfolds to the cleaned value', () => {
    const value = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const folded = field('Diagnostic-Code', `smtp; ${value}`);
    const lines = folded.split('\r\n');
    assert.ok(lines.length > 1);
    assert.ok(
      lines.every((l) => l.length <= 78),
      folded,
    );
    assert.ok(lines.slice(1).every((l) => l.startsWith(' ')));
    assert.equal(folded.replace(/\r\n/g, ''), `Diagnostic-Code: smtp; ${value}`);
  });

  it('field never lets CR, LF or other controls through, and splits a word only past 900 characters', () => {
    assert.equal(field('X', 'a\r\nB: c\0d\te'), 'X: a B: c d e');
    const huge = 'h'.repeat(2000);
    const lines = field('X', huge).split('\r\n');
    assert.ok(lines.every((l) => l.length < 998));
    assert.equal(
      lines
        .map((l) => l.trim())
        .join('')
        .replace(/^X: /, ''),
      huge,
    );
    const long = 'l'.repeat(300);
    assert.equal(field('X', long), `X: ${long}`);
  });

  it('cleanText escapes non-ASCII as RFC 6533 \\x{HEX} unless UTF-8 is allowed', () => {
    assert.equal(cleanText('Grüße 😀', false), 'Gr\\x{FC}\\x{DF}e \\x{1F600}');
    assert.equal(cleanText('Grüße 😀', true), 'Grüße 😀');
  });

  it('headerSection and readHeaders', () => {
    assert.equal(
      headerSection(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n')).toString(),
      'A: 1\r\nB: 2\r\n',
    );
    assert.equal(headerSection(Buffer.from('A: 1\r\n')).toString(), 'A: 1\r\n');
    assert.equal(headerSection(Buffer.from('\r\nbody')).toString(), '');
    assert.deepEqual(
      readHeaders('Content-Type: multipart/report;\r\n\treport-type=x\r\nbad line\r\nB:2\r\n\r\nC: 3'),
      [
        { name: 'Content-Type', value: 'multipart/report; report-type=x' },
        { name: 'B', value: '2' },
      ],
    );
  });

  it('asEightBit normalises line breaks and refuses NUL and lines over 998 octets', () => {
    assert.equal(asEightBit(Buffer.from('a\nb\rc\r\n'))?.toString(), 'a\r\nb\r\nc\r\n');
    const same = Buffer.from('a\r\nb\r\n');
    assert.equal(asEightBit(same), same);
    assert.equal(asEightBit(Buffer.from('a\0b')), undefined);
    assert.ok(asEightBit(Buffer.from(`${'x'.repeat(998)}\r\n`)));
    assert.equal(asEightBit(Buffer.from(`${'x'.repeat(999)}\r\n`)), undefined);
    assert.equal(asEightBit(Buffer.from('x'.repeat(999))), undefined);
  });
});
