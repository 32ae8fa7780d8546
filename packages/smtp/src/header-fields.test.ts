import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countFields, firstField } from './header-fields.ts';

const m = (s: string) => Buffer.from(s, 'latin1');
const NAME = m('message-id');

test('firstField: the first field of the name, with its folded lines; none past the header section', () => {
  assert.equal(firstField(m('Subject: a\r\nMessage-ID: <x@y>\r\n\r\nbody'), NAME)?.toString(), ' <x@y>\r\n');
  assert.equal(
    firstField(m('MESSAGE-id :\r\n <f@y>\r\n\tmore\r\nTo: z\r\n\r\n'), NAME)?.toString(),
    '\r\n <f@y>\r\n\tmore\r\n',
  );
  assert.equal(firstField(m('Message-ID: <one@y>\nMessage-ID: <two@y>\n\n'), NAME)?.toString(), ' <one@y>\n');
  assert.equal(firstField(m('Message-ID: <end@y>'), NAME)?.toString(), ' <end@y>');
  assert.equal(firstField(m('Subject: a\r\n\r\nMessage-ID: <body@y>\r\n'), NAME), undefined);
  assert.equal(
    firstField(m('X-Message-ID: <x@y>\r\nMessage-IDs: <z@y>\r\n Message-ID: <folded@y>\r\n\r\n'), NAME),
    undefined,
  );
  assert.equal(firstField(m(''), NAME), undefined);
  // Only letters are folded: a CR where the name has '-' is no match.
  assert.equal(firstField(m('Message\rID: <cr@y>\r\n\r\n'), NAME), undefined);
});

test('countFields counts across case and obsolete white space before the colon', () => {
  assert.equal(
    countFields(m('Message-ID: a\r\nmessage-id : b\r\nSubject: c\r\n\r\nMessage-ID: d\r\n'), NAME),
    2,
  );
});
