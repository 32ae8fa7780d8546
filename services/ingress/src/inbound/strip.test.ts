import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stripOwnAuthenticationResults } from './strip.ts';

test('Authentication-Results claiming our authserv-id are removed, folded ones included; others stay', () => {
  const message = Buffer.from(
    [
      'Authentication-Results: MX.Example.org; dkim=pass header.d=bank.example',
      'Received: from x by y; Sun, 22 Nov 2026 10:00:00 +0000',
      'Authentication-Results:',
      '\tmx.example.org; spf=pass',
      '\tsmtp.mailfrom=bank.example',
      'Authentication-Results: other.example; spf=fail',
      'Subject: s',
      '',
      'Authentication-Results: mx.example.org; body lines are not header fields',
      '',
    ].join('\r\n'),
  );
  const out = stripOwnAuthenticationResults(message, 'mx.example.org').toString();
  assert.equal(
    out,
    [
      'Received: from x by y; Sun, 22 Nov 2026 10:00:00 +0000',
      'Authentication-Results: other.example; spf=fail',
      'Subject: s',
      '',
      'Authentication-Results: mx.example.org; body lines are not header fields',
      '',
    ].join('\r\n'),
  );
});

test('a message without such fields is returned as the same buffer', () => {
  const message = Buffer.from('Subject: s\r\n\r\nbody\r\n');
  assert.equal(stripOwnAuthenticationResults(message, 'mx.example.org'), message);
  const others = Buffer.from('Authentication-Results: other.example; none\r\n\r\nb\r\n');
  assert.equal(stripOwnAuthenticationResults(others, 'mx.example.org'), others);
});
