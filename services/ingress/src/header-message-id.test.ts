import assert from 'node:assert/strict';
import test from 'node:test';
import { headerMessageId } from './header-message-id.ts';

const msg = (head: string, body = 'hello\r\n') => Buffer.from(`${head}\r\n\r\n${body}`);

test('the Message-ID header field, without brackets, folded or commented', () => {
  assert.equal(
    headerMessageId(msg('From: a@x\r\nMessage-ID: <abc@example.com>\r\nSubject: s')),
    'abc@example.com',
  );
  assert.equal(
    headerMessageId(msg('message-id:\r\n <folded@example.com>\r\nSubject: s')),
    'folded@example.com',
  );
  assert.equal(headerMessageId(msg('Message-Id: (c) <c@example.com> (tail)')), 'c@example.com');
  assert.equal(headerMessageId(msg('Message-ID: bare@example.com')), 'bare@example.com');
  assert.equal(
    headerMessageId(Buffer.from('Subject: s\nMessage-ID: <lf@example.com>\n\nbody')),
    'lf@example.com',
  );
  assert.equal(headerMessageId(msg('Message-ID: <ünï@example.com>')), 'ünï@example.com');
});

test('none: absent, only in the body, or a look-alike field name', () => {
  assert.equal(headerMessageId(msg('Subject: s')), '');
  assert.equal(headerMessageId(msg('Subject: s', 'Message-ID: <body@example.com>\r\n')), '');
  assert.equal(
    headerMessageId(msg('X-Message-ID: <x@example.com>\r\nResent-Message-ID: <r@example.com>')),
    '',
  );
  assert.equal(headerMessageId(Buffer.alloc(0)), '');
});

test('the first of two', () => {
  assert.equal(headerMessageId(msg('Message-ID: <one@x>\r\nMessage-ID: <two@x>')), 'one@x');
});

test('a Message-ID longer than a line is cut to 998 characters (it travels in every event)', () => {
  const long = `${'x'.repeat(5000)}@example.com`;
  assert.equal(
    headerMessageId(msg(`Message-ID:\r\n <${long.slice(0, 2000)}\r\n ${long.slice(2000)}>`)).length,
    998,
  );
});
