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

/** Deterministic PRNG (mulberry32) so a failure names a reproducible seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = Buffer.from('\r\n.\r\n.ab\r\n');

test('the indexOf decoder agrees with the octet-by-octet reference on random input and splits', async () => {
  const { ReferenceDecoder } = await import('../test/data-reference.ts');
  for (let seed = 1; seed <= 20_000; seed++) {
    const rand = prng(seed);
    const length = Math.floor(rand() * 40);
    const wire = Buffer.alloc(length);
    for (let i = 0; i < length; i++) wire[i] = ALPHABET[Math.floor(rand() * ALPHABET.length)] as number;
    const splits = [Math.floor(rand() * (length + 1)), Math.floor(rand() * (length + 1))].sort(
      (x, y) => x - y,
    );
    const maxLineLength = 1 + Math.floor(rand() * 4);
    const fast = new DataDecoder({ maxSize: 1 << 20, maxLineLength });
    const slow = new ReferenceDecoder({ maxSize: 1 << 20, maxLineLength });
    let fastUsed = 0;
    let slowUsed = 0;
    let start = 0;
    for (const end of [...splits, length]) {
      const chunk = wire.subarray(start, end);
      if (!fast.done) fastUsed += fast.push(chunk);
      if (!slow.done) slowUsed += slow.push(chunk);
      start = end;
    }
    const what = `seed ${seed}: ${JSON.stringify(wire.toString())} split ${splits}`;
    assert.equal(fast.done, slow.done, what);
    assert.equal(fastUsed, slowUsed, what);
    assert.deepEqual(fast.problems, slow.problems, what);
    if (fast.done) assert.deepEqual(fast.body(), slow.body(), what);
  }
});

test('normalize turns bare CR and bare LF into CRLF, and a bare-LF dot still does not end the data', () => {
  const wire = Buffer.from('a\nb\rc\r\n.\nd\r\n.\r\nQUIT\r\n');
  for (let a = 0; a <= wire.length; a++) {
    const decoder = new DataDecoder({ maxSize: 1 << 20, bareLineEndings: 'normalize' });
    let used = decoder.push(wire.subarray(0, a));
    if (!decoder.done) used += decoder.push(wire.subarray(a));
    assert.ok(decoder.done, `split ${a}`);
    assert.equal(used, wire.length - 'QUIT\r\n'.length, `split ${a}`);
    assert.equal(decoder.body().toString(), 'a\r\nb\r\nc\r\n\r\nd\r\n', `split ${a}`);
    assert.ok(decoder.problems.bareLf && decoder.problems.bareCr);
  }
});

test('BDAT mode keeps dots, never ends by itself, and still checks lines unless BINARYMIME', () => {
  const chunk = Buffer.from('.a\r\n.\r\nb\nc\r');
  const bdat = new DataDecoder({ maxSize: 1 << 20, dotStuffed: false });
  assert.equal(bdat.push(chunk), chunk.length);
  assert.equal(bdat.push(Buffer.from('\n')), 1);
  assert.equal(bdat.done, false);
  assert.equal(bdat.body().toString(), '.a\r\n.\r\nb\nc\r\n');
  assert.ok(bdat.problems.bareLf);
  assert.equal(bdat.problems.bareCr, false, 'a CR at a chunk end followed by LF is a CRLF');
  const binary = new DataDecoder({ maxSize: 1 << 20, dotStuffed: false, checkLines: false });
  binary.push(Buffer.from([0, 10, 13, 0x2e, 10]));
  assert.deepEqual(binary.problems, { oversized: false, bareLf: false, bareCr: false, longLine: false });
  assert.equal(binary.size, 5);
});
