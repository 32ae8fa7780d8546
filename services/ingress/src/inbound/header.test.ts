import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authenticationResults, FOLD_WIDTH, fold } from './header.ts';

const unfold = (text: string) => text.replace(/\r\n(?=[ \t])/g, '');

describe('fold', () => {
  it('breaks before spaces so that lines stay within 78 columns and unfolding restores the text', () => {
    const text = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const folded = fold(text, 10);
    const lines = folded.split('\r\n');
    assert.ok(lines.length > 1);
    assert.ok((lines[0]?.length ?? 0) + 10 <= FOLD_WIDTH);
    for (const line of lines.slice(1)) {
      assert.ok(line.startsWith(' ') && line.length <= FOLD_WIDTH, JSON.stringify(line));
    }
    assert.equal(unfold(folded), text);
  });

  it('keeps a word longer than the width whole', () => {
    const long = 'x'.repeat(120);
    assert.equal(fold(`a ${long} b`), `a\r\n ${long}\r\n b`);
  });

  it('cannot be made to end the field: CR, LF and other controls from DNS or the message are removed', () => {
    const folded = fold('spf=fail (evil\r\nX-Injected: yes\0) smtp.mailfrom=a.test');
    assert.equal(unfold(folded), 'spf=fail (evil X-Injected: yes) smtp.mailfrom=a.test');
    assert.ok(!/\r\n(?![ \t])/.test(folded));
  });
});

describe('authenticationResults', () => {
  it('puts one method per line, separated by ";", CRLF-terminated', () => {
    const header = authenticationResults('mx.test', ['spf=pass smtp.mailfrom=a.test', 'dkim=none']);
    assert.equal(
      header,
      'Authentication-Results: mx.test;\r\n spf=pass smtp.mailfrom=a.test;\r\n dkim=none\r\n',
    );
  });

  it('leaves room for the ";" after a folded entry', () => {
    const entry = `spf=pass ${'y'.repeat(70)} z`;
    const header = authenticationResults('mx.test', [entry, 'dkim=none']);
    for (const line of header.slice(0, -2).split('\r\n')) assert.ok(line.length <= FOLD_WIDTH, line);
  });

  it('says none when no method ran (RFC 8601 §2.2)', () => {
    assert.equal(authenticationResults('mx.test', []), 'Authentication-Results: mx.test; none\r\n');
  });
});
