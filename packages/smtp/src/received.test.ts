import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  countReceived,
  MAX_RECEIVED_HOPS,
  type ReceivedInfo,
  receivedHeader,
  receivedProtocol,
  rfc5322Date,
} from './received.ts';

const date = new Date(Date.UTC(2026, 10, 22, 18, 50, 0));
const base: ReceivedInfo = {
  heloName: 'client.example',
  remoteAddress: '192.0.2.1',
  byHost: 'mx.example.org',
  protocol: 'ESMTP',
  id: '01JD5ABCDEF',
  date,
};

/** The field unfolded (RFC 5322 §2.2.3) and its physical lines. */
function parts(field: string) {
  assert.ok(field.endsWith('\r\n'), 'CRLF-terminated');
  const lines = field.slice(0, -2).split('\r\n');
  return { lines, unfolded: field.slice(0, -2).replace(/\r\n(?=[ \t])/g, '') };
}

function assertWellFormed(field: string): string {
  const { lines, unfolded } = parts(field);
  assert.match(lines[0] ?? '', /^Received: /);
  for (const [i, line] of lines.entries()) {
    assert.ok(!/[\r\n]/.test(line), `bare CR or LF in line ${i}`);
    if (i > 0) assert.match(line, /^[ \t]\S/, `continuation line ${i} starts with white space`);
  }
  // Comments balance: strip them innermost-first, nothing may remain.
  let rest = unfolded;
  for (let prev = ''; prev !== rest; ) {
    prev = rest;
    rest = rest.replace(/\([^()]*\)/g, '');
  }
  assert.ok(!/[()]/.test(rest), `unbalanced parentheses in ${JSON.stringify(unfolded)}`);
  assert.equal(unfolded.split(';').length, 2, 'exactly one ";" before the date');
  return unfolded;
}

test('the minimal field: from, TCP-info, by, with, id and date', () => {
  assert.equal(
    receivedHeader(base),
    'Received: from client.example ([192.0.2.1]) by mx.example.org with ESMTP\r\n' +
      '\tid 01JD5ABCDEF; Sun, 22 Nov 2026 18:50:00 +0000\r\n',
  );
});

test('every clause in RFC 5321 §4.4 order, TLS and identity as comments', () => {
  const field = receivedHeader({
    ...base,
    reverseName: 'host.client.example',
    protocol: 'ESMTPSA',
    recipient: 'user@example.org',
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    authIdentity: 'app@example.org',
  });
  const unfolded = assertWellFormed(field);
  assert.equal(
    unfolded.replace(/\t/g, ' '),
    'Received: from client.example (host.client.example [192.0.2.1])' +
      ' (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384) (authenticated as app@example.org)' +
      ' by mx.example.org with ESMTPSA id 01JD5ABCDEF for <user@example.org>;' +
      ' Sun, 22 Nov 2026 18:50:00 +0000',
  );
});

test('lines stay below 78 octets and folding only adds CRLF + white space', () => {
  const field = receivedHeader({
    ...base,
    heloName: 'a-rather-long-client-name.subdomain.example',
    reverseName: 'another-long-reverse-name.isp.example.net',
    protocol: 'UTF8SMTPSA',
    recipient: 'someone.with.a.long.name@sub.example.org',
    tls: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' },
    authIdentity: 'submission-user@example.org',
  });
  const { lines } = parts(field);
  assert.ok(lines.length > 2);
  for (const line of lines) assert.ok(Buffer.byteLength(line) < 78, `${line.length}: ${line}`);
  assertWellFormed(field);
  // The date is never split across lines.
  assert.ok(lines.some((l) => l.includes('Sun, 22 Nov 2026 18:50:00 +0000')));
});

test('a name longer than a line stands alone; no line reaches 998 octets', () => {
  const long = `${'a'.repeat(63)}.`.repeat(8);
  const field = receivedHeader({ ...base, heloName: long });
  const { lines } = parts(field);
  for (const line of lines) assert.ok(Buffer.byteLength(line) <= 998);
  assert.equal(lines[0], 'Received:');
  assert.match(lines[1] ?? '', /^\tfrom a{63}\./);
  // Client text is capped (RFC 5321 §4.5.3.1.2: 255-octet domain).
  assert.ok((lines[1] ?? '').length <= 1 + 'from '.length + 255);
});

test('CR, LF and parentheses in client text cannot inject lines or break the comments', () => {
  const field = receivedHeader({
    ...base,
    heloName: 'evil.example)\r\nX-Injected: yes\r\n (',
    reverseName: 'ptr.example\n(by forged',
    recipient: 'a)b\r\nc@example.org> (x',
    tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
    authIdentity: 'user) by forged.example (\r\n\tX-Evil: 1\\',
    id: 'id;with spaces\r\n',
  });
  const unfolded = assertWellFormed(field).replace(/\t/g, ' ');
  assert.ok(!unfolded.includes('\nX-'), 'no injected field');
  assert.ok(!/\r\n[^ \t]/.test(field.slice(0, -2)), 'every line break is a fold');
  assert.match(
    unfolded,
    /^Received: from evil\.example\?{3}X-Injected:\?yes\?{4} \(ptr\.example\?\?by\?forged \[/,
  );
  assert.match(
    unfolded,
    / \(authenticated as user\? by forged\.example \?{4}X-Evil: 1\?\) by mx\.example\.org /,
  );
  assert.match(unfolded, / for <a\?b\?\?c@example\.org\?\?\?x>;/);
  assert.match(unfolded, / id id\?with\?spaces\?\? /);
  assert.equal(
    unfolded.match(/ by /g)?.length,
    2,
    'the only real "by" clause is ours; the other is in a comment',
  );
});

test('non-ASCII client text is kept only for SMTPUTF8 messages (RFC 6532)', () => {
  const info = { ...base, heloName: 'bücher.example', authIdentity: 'jörg@example.org' };
  const unfold = (field: string) => assertWellFormed(field).replace(/\t/g, ' ');
  const ascii = receivedHeader(info);
  assert.ok(/^[\x20-\x7e\t\r\n]*$/.test(ascii), 'ASCII only');
  assert.match(ascii, /from b\?cher\.example /);
  const utf8 = unfold(receivedHeader({ ...info, protocol: 'UTF8SMTPA' }));
  assert.match(utf8, /from bücher\.example /);
  assert.match(utf8, /\(authenticated as jörg@example\.org\)/);
  // Unicode line separators and C1 controls are still replaced.
  assert.match(
    receivedHeader({ ...info, protocol: 'UTF8SMTP', heloName: 'a\u2028b\u0085c' }),
    /from a\?b\?c /,
  );
});

test('remote addresses as RFC 5321 §4.1.3 address literals', () => {
  const literal = (remoteAddress: string) =>
    /\((\[[^\]]*\])\)/.exec(receivedHeader({ ...base, remoteAddress }))?.[1];
  assert.equal(literal('192.0.2.1'), '[192.0.2.1]');
  assert.equal(literal('2001:db8::1'), '[IPv6:2001:db8::1]');
  assert.equal(literal('2001:DB8::1'), '[IPv6:2001:db8::1]');
  assert.equal(literal('::ffff:192.0.2.7'), '[192.0.2.7]');
  assert.equal(literal('fe80::1%eth0'), '[IPv6:fe80::1]');
  assert.equal(literal('not an ip]'), '[not?an?ip?]');
  assert.equal(literal(''), '[unknown]');
});

test('without a HELO name the address literal stands in the FROM clause', () => {
  const field = receivedHeader({ ...base, heloName: undefined, remoteAddress: '2001:db8::5' });
  assert.match(field, /^Received: from \[IPv6:2001:db8::5\] \(\[IPv6:2001:db8::5\]\)/);
  assert.match(
    receivedHeader({ ...base, heloName: '   ' }),
    /^Received: from \[192\.0\.2\.1\] \(\[192\.0\.2\.1\]\)/,
  );
});

test('the identity comment appears only when given', () => {
  assert.doesNotMatch(receivedHeader({ ...base, protocol: 'ESMTPA' }), /authenticated/);
  assert.match(
    receivedHeader({ ...base, authIdentity: 'u@example.org' }),
    /\(authenticated as u@example\.org\)/,
  );
  assert.doesNotMatch(receivedHeader(base), /using/);
});

test('dates follow RFC 5322 §3.3 in UTC', () => {
  assert.equal(rfc5322Date(date), 'Sun, 22 Nov 2026 18:50:00 +0000');
  assert.equal(rfc5322Date(new Date('2027-01-05T03:04:05+02:00')), 'Tue, 05 Jan 2027 01:04:05 +0000');
  assert.throws(() => rfc5322Date(new Date(Number.NaN)), RangeError);
});

test('a date formatted once per second is reused within it and rolls over with the next', () => {
  const t = date.getTime();
  assert.equal(rfc5322Date(new Date(t + 999)), 'Sun, 22 Nov 2026 18:50:00 +0000');
  assert.equal(rfc5322Date(new Date(t)), 'Sun, 22 Nov 2026 18:50:00 +0000');
  assert.equal(rfc5322Date(new Date(t + 1000)), 'Sun, 22 Nov 2026 18:50:01 +0000');
  assert.equal(rfc5322Date(new Date(t + 1999)), 'Sun, 22 Nov 2026 18:50:01 +0000');
  assert.equal(rfc5322Date(new Date(t - 1)), 'Sun, 22 Nov 2026 18:49:59 +0000');
  assert.equal(rfc5322Date(new Date(t + 86_400_000)), 'Mon, 23 Nov 2026 18:50:00 +0000');
  // Before 1970 the second is still the one the date falls in.
  assert.equal(rfc5322Date(new Date(-1)), 'Wed, 31 Dec 1969 23:59:59 +0000');
  assert.equal(rfc5322Date(new Date(0)), 'Thu, 01 Jan 1970 00:00:00 +0000');
  assert.throws(() => rfc5322Date(new Date(Number.NaN)), RangeError);
  assert.equal(rfc5322Date(new Date(0)), 'Thu, 01 Jan 1970 00:00:00 +0000');
});

test('the protocol keyword follows RFC 3848 and RFC 6531', () => {
  const p = (esmtp: boolean, tls: boolean, authenticated: boolean, utf8: boolean) =>
    receivedProtocol({ esmtp, tls, authenticated, utf8 });
  assert.equal(p(false, false, false, false), 'SMTP');
  assert.equal(p(true, false, false, false), 'ESMTP');
  assert.equal(p(true, true, false, false), 'ESMTPS');
  assert.equal(p(true, false, true, false), 'ESMTPA');
  assert.equal(p(true, true, true, false), 'ESMTPSA');
  assert.equal(p(true, false, false, true), 'UTF8SMTP');
  assert.equal(p(true, true, false, true), 'UTF8SMTPS');
  assert.equal(p(true, false, true, true), 'UTF8SMTPA');
  assert.equal(p(true, true, true, true), 'UTF8SMTPSA');
});

test('countReceived counts fields in the header section only', () => {
  const m = (s: string) => Buffer.from(s);
  assert.equal(MAX_RECEIVED_HOPS, 100);
  assert.equal(countReceived(m('Received: a\r\nreceived: b\r\nRECEIVED:c\r\nSubject: x\r\n\r\nbody\r\n')), 3);
  // Folded continuations are part of the field above; even when they read like a field.
  assert.equal(
    countReceived(m('Received: from a\r\n\tby b;\r\n Received: no\r\n\tReceived: no\r\nTo: x\r\n\r\n')),
    1,
  );
  // Body lines starting with "Received:" are not fields.
  assert.equal(countReceived(m('Received: a\r\n\r\nReceived: b\r\nReceived: c\r\n')), 1);
  // LF-only line endings.
  assert.equal(countReceived(m('Received: a\nReceived: b\n\nReceived: c\n')), 2);
  // A message without a body (no empty line) and without a final line break.
  assert.equal(countReceived(m('Received: a\r\nReceived: b\r\nReceived: c')), 3);
  // No header section at all.
  assert.equal(countReceived(m('\r\nReceived: a\r\n')), 0);
  assert.equal(countReceived(m('')), 0);
  // Names that only start like Received, or lack the colon, are other fields.
  assert.equal(countReceived(m('Received-SPF: pass\r\nReceivedX: 1\r\nReceived\r\nReceive: 1\r\n\r\n')), 0);
  // RFC 5322 §4.5.3 obsolete syntax: white space before the colon.
  assert.equal(countReceived(m('Received : a\r\nReceived\t: b\r\n\r\n')), 2);
  // Bytes that fold onto letters only by accident are not matched.
  assert.equal(countReceived(m('Re\x03eived: a\r\nReceived;: b\r\n')), 0);
});

test('countReceived sees the loop threshold and ignores a large body', () => {
  const headers = (n: number) =>
    'Received: from hop\r\n\tby relay; Sun, 22 Nov 2026 18:50:00 +0000\r\n'.repeat(n);
  const body = 'Received: body line\r\n'.repeat(50_000);
  const over = Buffer.from(`${headers(MAX_RECEIVED_HOPS + 1)}Subject: loop\r\n\r\n${body}`);
  assert.equal(countReceived(over), MAX_RECEIVED_HOPS + 1);
  assert.equal(countReceived(Buffer.from(`${headers(MAX_RECEIVED_HOPS)}\r\n${body}`)), MAX_RECEIVED_HOPS);
  // Our own field counts as one.
  const ours = receivedHeader({ ...base, tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' } });
  assert.equal(countReceived(Buffer.from(`${ours}${headers(2)}\r\nbody`)), 3);
});
