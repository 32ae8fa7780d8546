/**
 * Property tests of the engine (issue 3): generated command streams and message bodies, split at
 * random TCP boundaries, fed to ServerSession over in-memory duplex pairs. No crash, no hang,
 * replies complete, well-formed and in order; for modelled streams the codes equal the model's
 * and every accepted body equals the generated message octet for octet.
 *
 * PETREL_FUZZ_STREAMS  streams in total (default 1,000,000; 80 % modelled, 20 % random bytes)
 * PETREL_FUZZ_SEED     master seed (default fixed, so CI is reproducible; "random" picks one)
 * PETREL_FUZZ_ONLY     replay one stream, e.g. "model:1234" or "bytes:99" (printed on failure)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ExpectedReply,
  enhancedOf,
  forEachStream,
  type ModelStream,
  modelStream,
  parseReplies,
  Rng,
  randomStream,
  runSession,
  type Segmented,
  type SessionOutcome,
  segment,
  streamSeed,
  type WireReply,
} from '../test/fuzz-support.ts';

const STREAMS = Number(process.env['PETREL_FUZZ_STREAMS'] ?? 1_000_000);
const SEED =
  process.env['PETREL_FUZZ_SEED'] === 'random'
    ? Math.floor(Math.random() * 0x1_0000_0000)
    : Number(process.env['PETREL_FUZZ_SEED'] ?? 0x5eed_0003);
const ONLY = /^(model|bytes):(\d+)$/.exec(process.env['PETREL_FUZZ_ONLY'] ?? '');
const MODEL_STREAMS = Math.ceil(STREAMS * 0.8);
const RANDOM_STREAMS = STREAMS - MODEL_STREAMS;
/** Sessions in flight at once: enough to overlap the event-loop turns between writes. */
const CONCURRENCY = 64;
/** No stream finishing for this long means one hangs (a stream takes well under a millisecond). */
const STALL_MS = 10_000;

/** Indices to run: all of them, or the one stream named by PETREL_FUZZ_ONLY. */
function plan(kind: 'model' | 'bytes', count: number): { count: number; index: (i: number) => number } {
  if (ONLY === null) return { count, index: (i) => i };
  if (ONLY[1] !== kind) return { count: 0, index: (i) => i };
  const only = Number(ONLY[2]);
  return { count: 1, index: () => only };
}

function replay(kind: string, index: number): string {
  return `PETREL_FUZZ_SEED=${SEED} PETREL_FUZZ_ONLY=${kind}:${index} node --test packages/smtp/src/fuzz.test.ts`;
}

function show(r: WireReply | ExpectedReply | undefined): string {
  if (r === undefined) return '(none)';
  if ('what' in r) return `${r.code}${r.enhanced === undefined ? '' : ` ${r.enhanced}`} (${r.what})`;
  return JSON.stringify(`${r.code} ${r.lines[0] ?? ''}`);
}

function clip(data: Buffer, max = 4000): string {
  const text = JSON.stringify(data.subarray(0, max).toString('latin1'));
  return data.length > max ? `${text}… (${data.length} octets)` : text;
}

/** Compares a session with its model; throws a message that names the first difference. */
function checkModel(stream: ModelStream, outcome: SessionOutcome): void {
  const replies = parseReplies(outcome.output);
  const expected: ExpectedReply[] = [{ code: 220, enhanced: undefined, what: 'greeting' }, ...stream.replies];
  for (let i = 0; i < Math.max(replies.length, expected.length); i++) {
    const want = expected[i];
    const got = replies[i];
    const same =
      want !== undefined &&
      got !== undefined &&
      got.code === want.code &&
      (want.enhanced === undefined || enhancedOf(got) === want.enhanced);
    if (!same) {
      throw new Error(
        `reply ${i}: expected ${show(want)}, got ${show(got)}\n` +
          `expected: ${expected.map((r) => `${r.code}${r.enhanced ? ` ${r.enhanced}` : ''}`).join(', ')}\n` +
          `actual:   ${replies.map((r) => `${r.code}${enhancedOf(r) ? ` ${enhancedOf(r)}` : ''}`).join(', ')}`,
      );
    }
  }
  if (outcome.delivered.length !== stream.messages.length) {
    throw new Error(
      `${outcome.delivered.length} messages delivered, the model accepted ${stream.messages.length}`,
    );
  }
  stream.messages.forEach((message, i) => {
    const body = outcome.delivered[i] as Buffer;
    if (!body.equals(message)) {
      throw new Error(`message ${i} differs:\nexpected ${clip(message, 600)}\nactual   ${clip(body, 600)}`);
    }
  });
}

/** Replies worth seeing at least once in a full run: proof the generator still reaches them. */
const COVERAGE = [
  '214',
  '221',
  '250 2.0.0',
  '250 2.1.0',
  '250 2.1.5',
  '252',
  '354',
  '452 4.5.3',
  '454',
  '500 5.5.1',
  '500 5.5.2',
  '501 5.1.3',
  '501 5.1.7',
  '501 5.5.2',
  '501 5.5.4',
  '502',
  '503',
  '530 5.7.10',
  '550 5.1.1',
  '552 5.3.4',
  '553 5.6.7',
  '554 5.4.6',
  '554 5.5.1',
  '554 5.6.0',
  '555',
] as const;

test(`${MODEL_STREAMS} modelled command streams: replies complete, in order and as modelled; bodies intact`, async (t) => {
  const { count, index } = plan('model', MODEL_STREAMS);
  const seen = new Map<string, number>();
  let delivered = 0;
  let octets = 0;
  const started = performance.now();
  await forEachStream(count, CONCURRENCY, STALL_MS, async (i, track) => {
    const n = index(i);
    const rng = new Rng(streamSeed(SEED, n));
    const stream = modelStream(rng);
    const input: Segmented = segment(rng, stream.wire);
    let outcome: SessionOutcome | undefined;
    try {
      outcome = await runSession(input, stream.bareLineEndings, track);
      checkModel(stream, outcome);
    } catch (error) {
      throw new Error(
        `model stream ${n} (seed ${SEED}) failed: ${(error as Error).message}\n` +
          `replay: ${replay('model', n)}\n` +
          `bare line endings: ${stream.bareLineEndings}; chunks: ${input.chunks.map((c) => c.length).join(' ')}\n` +
          `units: ${stream.units.join(' ')}\n` +
          `wire: ${clip(stream.wire)}\n` +
          `output: ${JSON.stringify(outcome?.output.slice(0, 4000))}`,
        { cause: error },
      );
    }
    for (const r of stream.replies) {
      const key = `${r.code}${r.enhanced ? ` ${r.enhanced}` : ''}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    delivered += stream.messages.length;
    octets += stream.wire.length;
  });
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(
    `seed ${SEED}: ${count} streams, ${octets} octets, ${delivered} messages in ${seconds.toFixed(1)} s`,
  );
  if (count >= 20_000) {
    const keys = [...seen.keys()];
    const missing = COVERAGE.filter((c) => !keys.some((k) => k === c || k.startsWith(`${c} `)));
    assert.deepEqual(missing, [], 'replies the generator no longer produces');
  }
});

test(`${RANDOM_STREAMS} random byte streams: no crash, no hang, replies complete and well-formed`, async (t) => {
  const { count, index } = plan('bytes', RANDOM_STREAMS);
  const started = performance.now();
  await forEachStream(count, CONCURRENCY, STALL_MS, async (i, track) => {
    const n = index(i);
    const rng = new Rng(streamSeed(SEED ^ 0x0b17e5, n));
    const { wire, bareLineEndings } = randomStream(rng);
    const input = segment(rng, wire);
    let outcome: SessionOutcome | undefined;
    try {
      outcome = await runSession(input, bareLineEndings, track);
      const replies = parseReplies(outcome.output);
      assert.equal(replies[0]?.code, 220, 'the greeting comes first');
      const quit = replies.findIndex((r) => r.code === 221);
      assert.ok(quit === -1 || quit === replies.length - 1, 'nothing after 221');
      const accepted = replies.filter((r) => r.code === 250).length;
      assert.ok(outcome.delivered.length <= accepted, 'every delivered message was answered');
    } catch (error) {
      throw new Error(
        `random stream ${n} (seed ${SEED}) failed: ${(error as Error).message}\n` +
          `replay: ${replay('bytes', n)}\n` +
          `bare line endings: ${bareLineEndings}; chunks: ${input.chunks.map((c) => c.length).join(' ')}\n` +
          `wire: ${clip(wire)}\noutput: ${JSON.stringify(outcome?.output.slice(0, 4000))}`,
        { cause: error },
      );
    }
  });
  t.diagnostic(`seed ${SEED}: ${count} streams in ${((performance.now() - started) / 1000).toFixed(1)} s`);
});

test('the reply checker refuses malformed output', () => {
  const greeting = '220 fuzz.test ESMTP\r\n';
  assert.equal(parseReplies(`${greeting}250-fuzz.test greets a\r\n250 SIZE 1\r\n`).length, 2);
  for (const bad of [
    '250 2.0.0 OK',
    '250-2.0.0 OK\r\n',
    '250-2.0.0 OK\r\n251 2.0.0 OK\r\n',
    '250 2.0.0 O\rK\r\n',
    '25 2.0.0 OK\r\n',
    '250 OK\r\n',
    '550 2.0.0 OK\r\n',
    '250-2.0.0 a\r\n250 b\r\n',
  ]) {
    assert.throws(() => parseReplies(`${greeting}${bad}`), Error, JSON.stringify(bad));
  }
});

/** Sends chunks with a loop turn after each (the engine reads each one alone) and parses the replies. */
async function converse(
  chunks: readonly string[],
  bareLineEndings: 'reject' | 'normalize' = 'reject',
): Promise<{ codes: string[]; delivered: string[] }> {
  const outcome = await runSession(
    { chunks: chunks.map((c) => Buffer.from(c, 'utf8')), pauses: chunks.map(() => 'turn' as const) },
    bareLineEndings,
  );
  return {
    codes: parseReplies(outcome.output).map((r) => `${r.code}${enhancedOf(r) ? ` ${enhancedOf(r)}` : ''}`),
    delivered: outcome.delivered.map((b) => b.toString('latin1')),
  };
}

const ENVELOPE = 'EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n';
const ACCEPTED_ENVELOPE = ['220', '250', '250 2.1.0', '250 2.1.5', '354'];

// Regression cases found by the properties above (RFC 5321 §4.1.1.4 / §4.5.2: only <CRLF>.<CRLF>
// ends the data, whatever the segmentation; a dot after a bare CR is not at a line start).

test('normalize: a bare CR at the end of a TCP segment does not make the next dot end DATA', async () => {
  const result = await converse(
    [ENVELOPE, 'x\r', '.\r\nMAIL FROM:<evil@attacker.example>\r\n.\r\n', 'QUIT\r\n'],
    'normalize',
  );
  assert.deepEqual(result.codes, [...ACCEPTED_ENVELOPE, '250 2.0.0', '221 2.0.0']);
  assert.deepEqual(result.delivered, ['x\r\n.\r\nMAIL FROM:<evil@attacker.example>\r\n']);
});

test('normalize: a line ".<CR>." is dot-stuffing, not the end of DATA', async () => {
  const result = await converse([ENVELOPE, 'y\r\n.\r.\r\nRSET\r\n.\r\nQUIT\r\n'], 'normalize');
  assert.deepEqual(result.codes, [...ACCEPTED_ENVELOPE, '250 2.0.0', '221 2.0.0']);
  assert.deepEqual(result.delivered, ['y\r\n\r\n.\r\nRSET\r\n']);
});

test('BDAT: a message ending in a bare CR is refused (reject) or completed to CRLF (normalize)', async () => {
  const bdat =
    'EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nabc\r';
  const refused = await converse([bdat, 'QUIT\r\n']);
  assert.deepEqual(refused.codes, ['220', '250', '250 2.1.0', '250 2.1.5', '554 5.6.0', '221 2.0.0']);
  assert.deepEqual(refused.delivered, []);
  const normalized = await converse([bdat, 'QUIT\r\n'], 'normalize');
  assert.deepEqual(normalized.delivered, ['abc\r\n']);
});

test('verbs are ASCII: "quıt" (dotless i) and "ſtarttls" (long s) are unknown commands', async () => {
  const result = await converse([
    'EHLO client.example\r\nquıt\r\nſtarttls\r\nmaıl FROM:<a@example.com>\r\nNOOP\r\n',
  ]);
  assert.deepEqual(result.codes, ['220', '250', '500 5.5.1', '500 5.5.1', '500 5.5.1', '250 2.0.0']);
});

test('RCPT parameters after HELO get 555, as MAIL parameters do (RFC 5321 §4.1.1.11)', async () => {
  const result = await converse([
    'HELO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net> NOTIFY=NEVER\r\n',
  ]);
  assert.deepEqual(result.codes, ['220', '250', '250 2.1.0', '555 5.5.4']);
});

test('RCPT TO:<Postmaster> without a domain reaches the handler (RFC 5321 §4.1.1.3, §4.5.1)', async () => {
  const result = await converse([
    'EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<Postmaster>\r\n',
  ]);
  assert.deepEqual(result.codes, ['220', '250', '250 2.1.0', '250 2.1.5']);
});
