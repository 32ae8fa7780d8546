import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type PathArgument, parseDomain, parseMailbox, parsePathArgument } from './address.ts';

function parsed(rest: string, allowNull = false): PathArgument {
  const result = parsePathArgument(rest, allowNull);
  assert.ok(result.ok, `expected ${JSON.stringify(rest)} to parse: ${result.ok ? '' : result.reason}`);
  return result.value;
}

function refused(rest: string, allowNull = false): string {
  const result = parsePathArgument(rest, allowNull);
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
  });
  assert.deepEqual(parseMailbox("o'neil!#$%&*/=?^_`{|}~-@x.example")?.localPart, "o'neil!#$%&*/=?^_`{|}~-");
  // RFC 6531: UTF-8 local part and internationalised domain.
  assert.deepEqual(parseMailbox('δοκιμή@Παράδειγμα.δοκιμή'), {
    localPart: 'δοκιμή',
    domain: 'παράδειγμα.δοκιμή',
    address: 'δοκιμή@Παράδειγμα.δοκιμή',
  });
  assert.equal(parseMailbox('用户@例子.广告')?.localPart, '用户');
  // Quoted local parts: spaces, escaped quote and backslash, and an '@' inside the quotes.
  assert.equal(parseMailbox('"john doe"@example.com')?.localPart, '"john doe"');
  assert.equal(parseMailbox('"a\\"b\\\\c"@example.com')?.localPart, '"a\\"b\\\\c"');
  assert.deepEqual(parseMailbox('"a@b"@example.com'), {
    localPart: '"a@b"',
    domain: 'example.com',
    address: '"a@b"@example.com',
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
  assert.equal(parsed('<δοκιμή@bücher.example> SMTPUTF8').mailbox?.domain, 'bücher.example');
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
  // Source routes (RFC 5321 §4.1.2, obsolete) are not a relay's business.
  assert.match(refused('<@relay.example:user@example.com>'), /invalid mailbox/);
});
