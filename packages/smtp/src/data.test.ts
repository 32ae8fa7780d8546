import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DataDecoder, dotStuff } from './data.ts';

/** Feeds `wire` split at the given offsets; returns the body, the consumed count and the decoder. */
function decode(wire: Buffer, splits: number[], maxSize = 1 << 20) {
  const decoder = new DataDecoder({ maxSize });
  let consumed = 0;
  let start = 0;
  for (const end of [...splits, wire.length]) {
    if (decoder.done) break;
    const chunk = wire.subarray(start, end);
    const used = decoder.push(chunk);
    consumed += used;
    start = end;
  }
  return { body: decoder.body(), consumed, decoder };
}

const message = Buffer.from('Subject: t\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n');

test('dot-stuffing round-trips at every split point', () => {
  const wire = Buffer.concat([dotStuff(message), Buffer.from('QUIT\r\n')]);
  const terminatorEnd = wire.length - 'QUIT\r\n'.length;
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a, Math.min(wire.length, a + 1), Math.min(wire.length, a + 3)]) {
      const { body, consumed, decoder } = decode(wire, [a, b]);
      assert.ok(decoder.done, `done with splits ${a},${b}`);
      assert.deepEqual(body, message, `body with splits ${a},${b}`);
      assert.equal(consumed, terminatorEnd, `consumed with splits ${a},${b}`);
    }
  }
});

test('only <CRLF>.<CRLF> ends the data; bare-LF dots do not (SMTP smuggling)', () => {
  for (const smuggle of [
    'a\n.\nMAIL FROM:<x@y.z>\r\n',
    'a\r\n.\nMAIL\r\n',
    'a\n.\r\nMAIL\r\n',
    'a\r.\rMAIL\r\n',
  ]) {
    const { decoder } = decode(Buffer.from(smuggle), []);
    assert.equal(decoder.done, false, JSON.stringify(smuggle));
    assert.ok(decoder.problems.bareLf || decoder.problems.bareCr, JSON.stringify(smuggle));
  }
  const { decoder, body } = decode(Buffer.from('a\n.\nb\r\n.\r\n'), [2]);
  assert.ok(decoder.done);
  assert.ok(decoder.problems.bareLf);
  assert.equal(body.toString(), 'a\n.\nb\r\n');
});

test('a CR held after a leading dot at a chunk end is data when no LF follows', () => {
  const wire = Buffer.from('x\r\n.\rY\r\n.\r\n');
  for (let a = 0; a <= wire.length; a++) {
    const { body, decoder } = decode(wire, [a]);
    assert.ok(decoder.done);
    assert.ok(decoder.problems.bareCr);
    assert.equal(body.toString(), 'x\r\n\rY\r\n', `split ${a}`);
  }
});

test('empty message and oversize and long lines are reported', () => {
  assert.equal(decode(Buffer.from('.\r\n'), []).body.length, 0);
  const big = decode(Buffer.from(`${'a'.repeat(50)}\r\n.\r\n`), [10, 20], 16);
  assert.ok(big.decoder.done && big.decoder.problems.oversized);
  assert.equal(big.decoder.size, 52);
  const long = decode(Buffer.from(`${'b'.repeat(999)}\r\nok\r\n.\r\n`), [500]);
  assert.ok(long.decoder.problems.longLine);
  const fine = decode(Buffer.from(`${'b'.repeat(998)}\r\n.\r\n`), [500]);
  assert.equal(fine.decoder.problems.longLine, false);
});

test('dotStuff appends CRLF when the message lacks a final line end', () => {
  assert.equal(dotStuff(Buffer.from('a\r\n.b')).toString(), 'a\r\n..b\r\n.\r\n');
  assert.equal(dotStuff(Buffer.from('.')).toString(), '..\r\n.\r\n');
});
