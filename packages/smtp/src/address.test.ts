import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type PathArgument,
  parseDomain,
  parseMailbox,
  parseMailboxWithReason,
  parsePathArgument,
} from './address.ts';

const plainFlags = {
  sourceRoute: false,
  domainLiteral: false,
  trailingDot: false,
  quoted: false,
  mappedDomain: false,
};
const utf8 = { utf8: true };

function parsed(rest: string, allowNull = false, options = {}): PathArgument {
  const result = parsePathArgument(rest, allowNull, options);
  assert.ok(result.ok, `expected ${JSON.stringify(rest)} to parse: ${result.ok ? '' : result.reason}`);
  return result.value;
}

function refused(rest: string, allowNull = false, options = {}): string {
  const result = parsePathArgument(rest, allowNull, options);
  assert.equal(result.ok, false, `expected ${JSON.stringify(rest)} to be refused`);
  return result.ok ? '' : result.reason;
}

test('parseDomain accepts dotted names and IDN labels, lower-cased', () => {
  assert.equal(parseDomain('example.com'), 'example.com');
  assert.equal(parseDomain('Mail.Example.COM'), 'mail.example.com');
  assert.equal(parseDomain('a-b.c0.example'), 'a-b.c0.example');
  assert.equal(parseDomain('BÜCHER.Example'), 'bücher.example');
  assert.equal(parseDomain('παράδειγμα.δοκιμή'), 'παράδειγμα.δοκιμή');
  assert.equal(parseDomain(`${'a'.repeat(63)}.example`), `${'a'.repeat(63)}.example`);
});

test('parseDomain refuses single labels, empty labels, bad hyphens and over-long names', () => {
  for (const bad of [
    '',
    'localhost',
    'example.com.',
    '.example.com',
    'a..example',
    '-a.example',
    'a-.example',
    'a.-example',
    'a_b.example',
    'a b.example',
    '[192.0.2.1]',
    `${'a'.repeat(64)}.example`,
    `${'a.'.repeat(128)}com`,
  ]) {
    assert.equal(parseDomain(bad), undefined, JSON.stringify(bad));
  }
});

test('parseMailbox splits local part and domain, keeping the received form', () => {
  assert.deepEqual(parseMailbox('John.Doe+tag@Example.COM'), {
    localPart: 'John.Doe+tag',
    domain: 'example.com',
    address: 'John.Doe+tag@Example.COM',
    ...plainFlags,
  });
  assert.deepEqual(parseMailbox("o'neil!#$%&*/=?^_`{|}~-@x.example")?.localPart, "o'neil!#$%&*/=?^_`{|}~-");
  // RFC 6531: UTF-8 local part and internationalised domain (as its A-label) with SMTPUTF8.
  assert.deepEqual(parseMailbox('δοκιμή@Παράδειγμα.δοκιμή', utf8), {
    localPart: 'δοκιμή',
    domain: 'xn--hxajbheg2az3al.xn--jxalpdlp',
    address: 'δοκιμή@Παράδειγμα.δοκιμή',
    ...plainFlags,
  });
  assert.equal(parseMailbox('用户@例子.广告', utf8)?.localPart, '用户');
  // Quoted local parts: spaces, escaped quote and backslash, and an '@' inside the quotes.
  assert.equal(parseMailbox('"john doe"@example.com')?.localPart, '"john doe"');
  assert.equal(parseMailbox('"a\\"b\\\\c"@example.com')?.localPart, '"a\\"b\\\\c"');
  assert.deepEqual(parseMailbox('"a@b"@example.com'), {
    localPart: '"a@b"',
    domain: 'example.com',
    address: '"a@b"@example.com',
    ...plainFlags,
    quoted: true,
  });
  assert.equal(parseMailbox(`${'a'.repeat(64)}@example.com`)?.localPart, 'a'.repeat(64));
});

test('parseMailbox refuses malformed mailboxes', () => {
  for (const bad of [
    '',
    'user',
    'user.example.com',
    '@example.com',
    'user@',
    'user@localhost',
    'user@-x.example',
    'user@x-.example',
    'user@x..example',
    '.user@example.com',
    'user.@example.com',
    'us..er@example.com',
    'us er@example.com',
    'us"er@example.com',
    'us(er)@example.com',
    'us,er@example.com',
    'us\\er@example.com',
    '"unterminated@example.com',
    '"bad"quote"@example.com',
    '"trailing\\"@example.com',
    '"ctl\u0001"@example.com',
    `${'a'.repeat(65)}@example.com`,
  ]) {
    assert.equal(parseMailbox(bad), undefined, JSON.stringify(bad));
  }
});

test('parsePathArgument: plain path, tolerated space after the colon', () => {
  const plain = parsed('<user@example.com>');
  assert.equal(plain.mailbox?.address, 'user@example.com');
  assert.equal(plain.mailbox?.localPart, 'user');
  assert.equal(plain.mailbox?.domain, 'example.com');
  assert.equal(plain.params.size, 0);
  assert.equal(parsed(' <user@example.com>').mailbox?.address, 'user@example.com');
  assert.equal(parsed('<"john doe"@example.com>').mailbox?.localPart, '"john doe"');
  assert.equal(
    parsed('<δοκιμή@bücher.example> SMTPUTF8', false, utf8).mailbox?.domain,
    'xn--bcher-kva.example',
  );
});

test('parsePathArgument: a quoted local part may contain ">"', () => {
  // RFC 5321 §4.1.2 qtextSMTP includes %d62; the path ends at the '>' after the mailbox.
  const value = parsed('<"a>b"@example.com> SIZE=10');
  assert.equal(value.mailbox?.localPart, '"a>b"');
  assert.equal(value.mailbox?.address, '"a>b"@example.com');
  assert.equal(value.params.get('SIZE'), '10');
  refused('<"a>b"@example.com');
});

test('parsePathArgument: the null path <> only when allowed', () => {
  const nul = parsed('<>', true);
  assert.equal(nul.mailbox, undefined);
  assert.equal(nul.params.size, 0);
  assert.equal(parsed('<> SIZE=100', true).params.get('SIZE'), '100');
  assert.match(refused('<>', false), /null path/);
});

test('parsePathArgument: parameters keyed upper-case, keyword-only ones have no value', () => {
  const value = parsed('<a@example.com> size=1000 Body=8BITMIME smtputf8 X-Vendor=a+b/c', true);
  assert.deepEqual(
    [...value.params],
    [
      ['SIZE', '1000'],
      ['BODY', '8BITMIME'],
      ['SMTPUTF8', undefined],
      ['X-VENDOR', 'a+b/c'],
    ],
  );
  // Values keep their case; runs of spaces between parameters are tolerated.
  assert.equal(parsed('<a@example.com>  BODY=8bitmime').params.get('BODY'), '8bitmime');
  // RFC 6531 allows UTF-8 in esmtp-value.
  assert.equal(parsed('<a@example.com> X=ü').params.get('X'), 'ü');
});

test('parsePathArgument: duplicate parameters are refused, whatever their case', () => {
  assert.match(refused('<a@example.com> SIZE=1 SIZE=2'), /duplicate parameter SIZE/);
  assert.match(refused('<a@example.com> SIZE=1 size=2'), /duplicate parameter SIZE/);
  assert.match(refused('<a@example.com> SMTPUTF8 smtputf8'), /duplicate/);
});

test('parsePathArgument: bad parameter keywords and values are refused', () => {
  // RFC 5321 §4.1.2: esmtp-value = 1*(%d33-60 / %d62-126): non-empty, no '=', no SP or controls.
  for (const bad of [
    '<a@example.com> SIZE=',
    '<a@example.com> X==1',
    '<a@example.com> X=a=b',
    '<a@example.com> =1',
    '<a@example.com> -X=1',
    '<a@example.com> X_Y=1',
    '<a@example.com> X=a\tb',
    '<a@example.com> X=a\u007fb',
  ]) {
    assert.match(refused(bad), /invalid parameter/, JSON.stringify(bad));
  }
});

test('parsePathArgument: missing brackets, bad mailbox and garbage after the path', () => {
  assert.match(refused('user@example.com'), /enclosed in <>/);
  assert.match(refused('<user@example.com'), /enclosed in <>/);
  assert.match(refused(''), /enclosed in <>/);
  assert.match(refused('  <user@example.com>'), /enclosed in <>/);
  assert.match(refused('<userexample.com>'), /invalid mailbox/);
  assert.match(refused('<@example.com>'), /invalid mailbox/);
  assert.match(refused('<user@localhost>'), /invalid mailbox/);
  assert.match(refused('<user@-bad.example>'), /invalid mailbox/);
  assert.match(refused('<user@example.com>garbage'), /garbage after path/);
  assert.match(refused('<user@example.com>>'), /garbage after path/);
  assert.match(refused('<>x', true), /garbage after path/);
  // Malformed source routes are syntax errors (well-formed ones are flagged, see below).
  assert.match(refused('<@relay.example user@example.com>'), /invalid (mailbox|source route)/);
  assert.match(refused('<@:user@example.com>'), /invalid (mailbox|source route)/);
  assert.match(refused('<@a.example;@b.example:user@example.com>'), /invalid (mailbox|source route)/);
});

test('recognises forms policy must refuse, flagged rather than syntax errors', () => {
  const route = parsed('<@a.example,@b.example:user@c.example>').mailbox;
  assert.deepEqual(route, {
    localPart: 'user',
    domain: 'c.example',
    address: 'user@c.example',
    ...plainFlags,
    sourceRoute: true,
  });
  assert.equal(parsed('<@a.example:"x>y"@c.example> SIZE=1').mailbox?.localPart, '"x>y"');

  const v4 = parsed('<user@[192.0.2.1]>').mailbox;
  assert.equal(v4?.domain, '[192.0.2.1]');
  assert.equal(v4?.domainLiteral, true);
  const v6 = parsed('<user@[IPv6:2001:db8::1]>').mailbox;
  assert.equal(v6?.domain.toLowerCase(), '[ipv6:2001:db8::1]');
  assert.equal(v6?.domainLiteral, true);
  assert.match(refused('<user@[300.0.0.1]>'), /invalid/);
  // Anything bracketed that parses is a literal, flagged for policy to refuse.
  assert.equal(
    parsePathArgument('<user@[2001:db8::1]>', false).ok
      ? parsed('<user@[2001:db8::1]>').mailbox?.domainLiteral
      : true,
    true,
  );
  assert.match(refused('<user@[]>'), /invalid/);
  assert.match(refused('<user@[IPv6:nonsense]>'), /invalid/);

  const dot = parsed('<user@Example.ORG.>').mailbox;
  assert.equal(dot?.domain, 'example.org');
  assert.equal(dot?.trailingDot, true);
  assert.match(refused('<user@example.org..>'), /invalid mailbox/);

  assert.equal(parsed('<"john doe"@example.org>').mailbox?.quoted, true);
  assert.equal(parsed('<john@example.org>').mailbox?.quoted, false);
});

test('non-ASCII addresses only with SMTPUTF8; IDN domains become A-labels', () => {
  assert.match(refused('<δοκιμή@example.org>'), /non-ASCII address requires SMTPUTF8/);
  assert.match(refused('<user@bücher.example>'), /non-ASCII address requires SMTPUTF8/);
  const idn = parsed('<Δοκιμή@BÜCHER.example>', false, utf8).mailbox;
  assert.equal(idn?.domain, 'xn--bcher-kva.example');
  assert.equal(idn?.address, 'Δοκιμή@BÜCHER.example');
  assert.equal(idn?.localPart, 'Δοκιμή');
  // A look-alike (Cyrillic а) is a different domain, not example.org.
  assert.equal(parsed('<user@ex\u0430mple.org>', false, utf8).mailbox?.domain, 'xn--exmple-4nf.org');
  // IDNA refuses a zero-width joiner outside a permitted context.
  assert.match(refused('<user@a\u200db.example>', false, utf8), /invalid/);
});

test('control characters and NUL are refused', () => {
  for (const bad of [
    '<us\u0000er@example.org>',
    '<user@exam\u0001ple.org>',
    '<"a\u007fb"@example.org>',
    '<u\u0085@example.org>',
  ]) {
    assert.equal(parsePathArgument(bad, false, utf8).ok, false, JSON.stringify(bad));
  }
  assert.match(refused('<us\u0000er@example.org>', false, utf8), /control characters/);
});

test('RFC 5321 §4.5.3.1 size limits count UTF-8 octets', () => {
  assert.ok(parsed(`<${'a'.repeat(64)}@example.org>`).mailbox);
  assert.match(refused(`<${'a'.repeat(65)}@example.org>`), /local part/);
  // 32 two-octet characters fill the 64 octets; one more is too many.
  assert.ok(parsed(`<${'é'.repeat(32)}@example.org>`, false, utf8).mailbox);
  assert.match(refused(`<${'é'.repeat(33)}@example.org>`, false, utf8), /local part/);
  // Quoted local parts are limited too (quotes included).
  assert.ok(parsed(`<"${'a'.repeat(62)}"@example.org>`).mailbox);
  assert.match(refused(`<"${'a'.repeat(63)}"@example.org>`), /local part/);
  // Domain: 255 octets.
  const label = 'a'.repeat(63);
  const long = `${label}.${label}.${label}.${label}.example`; // 263 octets
  const tooLong = parseMailboxWithReason(`u@${long}`);
  assert.match(tooLong.ok ? '' : tooLong.reason, /domain/);
  assert.match(refused(`<u@${long}>`), /path/);
  // Path: 256 octets including the brackets.
  const domain = `${label}.${label}.${label}.${'b'.repeat(54)}`; // 246 octets
  assert.ok(parsed(`<${'u'.repeat(7)}@${domain}>`).mailbox); // 7 + 1 + 246 + 2 = 256
  assert.match(refused(`<${'u'.repeat(8)}@${domain}>`), /path/);
});

test('plain host names (checked in one go) parse as the label-by-label checks would', () => {
  const domainOf = (text: string) => {
    const r = parseMailboxWithReason(`u@${text}`);
    return r.ok ? { domain: r.value.domain, trailingDot: r.value.trailingDot } : r.problem;
  };
  assert.deepEqual(domainOf('Mail.Example.ORG'), { domain: 'mail.example.org', trailingDot: false });
  assert.deepEqual(domainOf(`${'a'.repeat(63)}.b-c.d0`), {
    domain: `${'a'.repeat(63)}.b-c.d0`,
    trailingDot: false,
  });
  assert.deepEqual(domainOf('example.org.'), { domain: 'example.org', trailingDot: true });
  // A-labels still go through decoding, whatever their case.
  assert.deepEqual(domainOf('XN--bcher-kva.example'), {
    domain: 'xn--bcher-kva.example',
    trailingDot: false,
  });
  assert.equal(domainOf('xn--zz.example'), 'invalid-idn');
  assert.equal(domainOf('mail.Xn--zz.example'), 'invalid-idn');
  for (const bad of ['-a.org', 'a-.org', 'a..org', '.a.org', 'org', `${'a'.repeat(64)}.org`, 'a_b.org']) {
    assert.equal(domainOf(bad), 'syntax', bad);
  }
  assert.equal(domainOf(`${'a.'.repeat(127)}ab`), 'too-long');
});
