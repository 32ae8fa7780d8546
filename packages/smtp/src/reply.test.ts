import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatReply, isPermanent, isPositive, isTransient, parseReplyLines, reply } from './reply.ts';

test('formatReply: single line with and without an enhanced code', () => {
  assert.equal(formatReply(reply(250, '2.1.0', 'Sender OK')), '250 2.1.0 Sender OK\r\n');
  assert.equal(formatReply(reply(354, undefined, 'Go ahead')), '354 Go ahead\r\n');
  // No text lines still gives one well-formed line.
  assert.deepEqual(reply(250, undefined).lines, ['']);
  assert.equal(formatReply(reply(250, undefined)), '250 \r\n');
});

test('formatReply: multi-line uses "-" on all but the last line and repeats the enhanced code', () => {
  assert.equal(
    formatReply(reply(550, '5.7.1', 'first', 'second', 'last')),
    '550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last\r\n',
  );
  assert.equal(
    formatReply(reply(250, undefined, 'mx.example greets you', 'PIPELINING', 'SIZE 1000')),
    '250-mx.example greets you\r\n250-PIPELINING\r\n250 SIZE 1000\r\n',
  );
});

test('parseReplyLines round-trips formatReply output', () => {
  for (const r of [
    reply(550, '5.7.1', 'first', 'second', 'last'),
    reply(250, undefined, 'mx.example greets you', 'PIPELINING', 'SIZE 1000'),
    reply(421, '4.3.2', 'Service shutting down'),
    reply(221, undefined, 'Bye'),
  ]) {
    const lines = formatReply(r).split('\r\n').slice(0, -1);
    assert.deepEqual(parseReplyLines(lines), r);
  }
});

test('parseReplyLines: multi-line reply with an enhanced code strips it from every line carrying it', () => {
  assert.deepEqual(parseReplyLines(['550-5.1.1 no such', '550-5.1.1 user here', '550 5.1.1']), {
    code: 550,
    enhanced: '5.1.1',
    lines: ['no such', 'user here', ''],
  });
  // A continuation line without the code keeps its text whole.
  assert.deepEqual(parseReplyLines(['451-4.3.0 try', '451 later']), {
    code: 451,
    enhanced: '4.3.0',
    lines: ['try', 'later'],
  });
  assert.deepEqual(parseReplyLines(['250 2.0.0']), { code: 250, enhanced: '2.0.0', lines: [''] });
  assert.deepEqual(parseReplyLines(['252 2.5.0 Cannot VRFY']), {
    code: 252,
    enhanced: '2.5.0',
    lines: ['Cannot VRFY'],
  });
});

test('parseReplyLines: replies without an enhanced code', () => {
  assert.deepEqual(parseReplyLines(['250-mx.example greets x', '250-PIPELINING', '250 SIZE 1000']), {
    code: 250,
    enhanced: undefined,
    lines: ['mx.example greets x', 'PIPELINING', 'SIZE 1000'],
  });
  assert.deepEqual(parseReplyLines(['354 End data with <CR><LF>.<CR><LF>']), {
    code: 354,
    enhanced: undefined,
    lines: ['End data with <CR><LF>.<CR><LF>'],
  });
  // A bare code is a valid reply line (RFC 5321 §4.2: the text is optional).
  assert.deepEqual(parseReplyLines(['250']), { code: 250, enhanced: undefined, lines: [''] });
  // Something that only starts like an enhanced code is text.
  assert.equal(parseReplyLines(['250 2.0.0.1 ok'])?.enhanced, undefined);
  assert.equal(parseReplyLines(['250 2.0.0x ok'])?.enhanced, undefined);
  assert.equal(parseReplyLines(['250 2.1234.0 ok'])?.enhanced, undefined);
});

test('parseReplyLines: an enhanced code of another class than the reply is not taken', () => {
  assert.deepEqual(parseReplyLines(['250 5.1.1 odd']), {
    code: 250,
    enhanced: undefined,
    lines: ['5.1.1 odd'],
  });
  assert.deepEqual(parseReplyLines(['450-5.2.0 mismatch', '450 5.2.0 again']), {
    code: 450,
    enhanced: undefined,
    lines: ['5.2.0 mismatch', '5.2.0 again'],
  });
  // Class 3 has no enhanced codes (RFC 3463 §3.1).
  assert.equal(parseReplyLines(['354 3.0.0 go'])?.enhanced, undefined);
});

test('parseReplyLines: malformed input gives undefined', () => {
  for (const bad of [[], [''], ['25'], ['abc text'], ['199 too low'], ['600 too high'], ['099 x']]) {
    assert.equal(parseReplyLines(bad), undefined, JSON.stringify(bad));
  }
  // The code is three digits 2xx-5xx (RFC 5321 §4.2 Reply-code), not anything Number()
  // happens to read as 200-599.
  for (const bad of [['2e2 ok'], ['5e2 no'], [' 25 x'], ['+25 x'], ['2.5e2 x'], ['25. x']]) {
    assert.equal(parseReplyLines(bad), undefined, JSON.stringify(bad));
  }
});

test('reply classes', () => {
  assert.ok(isPositive(reply(250, undefined)) && isPositive(reply(354, undefined)));
  assert.ok(!isPositive(reply(421, undefined)));
  assert.ok(isTransient(reply(450, undefined)) && !isTransient(reply(550, undefined)));
  assert.ok(isPermanent(reply(554, undefined)) && !isPermanent(reply(452, undefined)));
});
