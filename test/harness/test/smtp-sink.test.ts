import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SmtpSink } from '../src/smtp-sink.ts';
import { behaviourByLocalPart, startSmtpSink } from '../src/smtp-sink.ts';
import { waitFor } from '../src/wait.ts';

const DEADLINE_MS = 5000;

interface Reply {
  code: number;
  lines: string[];
  text: string;
}

/** Rejects if `promise` has not settled within `ms`, and clears its timer either way. */
async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw SMTP client: writes exact bytes and parses replies as they arrive, never guessing with sleeps. */
class RawClient {
  readonly socket: Socket;
  readonly closed: Promise<void>;
  #isClosed = false;
  #pending = '';
  #current: string[] = [];
  #replies: Reply[] = [];
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.#pending += chunk.toString('utf8');
      let nl = this.#pending.indexOf('\r\n');
      while (nl !== -1) {
        const line = this.#pending.slice(0, nl);
        this.#pending = this.#pending.slice(nl + 2);
        this.#current.push(line);
        // "250-..." continues a multi-line reply; "250 ..." (or a bare "250") ends it.
        if (line.charAt(3) !== '-') {
          this.#replies.push({
            code: Number(line.slice(0, 3)),
            lines: this.#current,
            text: this.#current.join('\n'),
          });
          this.#current = [];
        }
        nl = this.#pending.indexOf('\r\n');
      }
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#isClosed = true;
        this.#wake?.();
        resolve();
      });
    });
  }

  static async open(sink: SmtpSink): Promise<RawClient> {
    const socket = connect(sink.port, sink.host);
    const client = new RawClient(socket);
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }),
      DEADLINE_MS,
      'connect',
    );
    return client;
  }

  /** Resolves once the bytes are handed to the kernel, so separate calls become separate segments. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Waits for `count` complete replies (a multi-line reply counts once). */
  async read(count = 1): Promise<Reply[]> {
    const wait = async (): Promise<Reply[]> => {
      while (this.#replies.length < count) {
        if (this.#isClosed) {
          throw new Error(`connection closed after ${this.#replies.length} of ${count} replies`);
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
      }
      return this.#replies.splice(0, count);
    };
    return withDeadline(wait(), DEADLINE_MS, `${count} replies`);
  }

  async codes(count = 1): Promise<number[]> {
    return (await this.read(count)).map((r) => r.code);
  }

  async one(): Promise<Reply> {
    const [reply] = await this.read(1);
    assert.ok(reply);
    return reply;
  }

  async waitClosed(): Promise<void> {
    await withDeadline(this.closed, DEADLINE_MS, 'connection close');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

async function sinkFor(
  t: { after: (fn: () => Promise<void>) => void },
  ...args: Parameters<typeof startSmtpSink>
) {
  const sink = await startSmtpSink(...args);
  t.after(() => sink.close());
  return sink;
}

async function client(t: { after: (fn: () => Promise<void>) => void }, sink: SmtpSink): Promise<RawClient> {
  const c = await RawClient.open(sink);
  t.after(async () => c.destroy());
  assert.equal((await c.one()).code, 220);
  return c;
}

/** Sends EHLO/MAIL/RCPT.../DATA (pipelined) and checks the replies up to 354. */
async function startData(c: RawClient, recipients: string[], from = 'sender@client.test'): Promise<void> {
  await c.write(
    `EHLO client.test\r\nMAIL FROM:<${from}>\r\n${recipients.map((r) => `RCPT TO:<${r}>\r\n`).join('')}DATA\r\n`,
  );
  const codes = await c.codes(3 + recipients.length);
  assert.deepEqual(codes, [250, 250, ...recipients.map(() => 250), 354]);
}

test('pipelined transaction in one write is recorded byte-exactly with dot-unstuffing', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  const body = 'Subject: hi\r\n\r\n..leading dot\r\nmiddle\r\n..foo\r\n...\r\nend. with .. dots\r\n';
  await c.write(
    'EHLO client.test\r\n' +
      'MAIL FROM:<a@client.test> SIZE=42 BODY=8BITMIME\r\n' +
      'RCPT TO:<b@remote.test>\r\n' +
      'RCPT TO: <c@remote.test> NOTIFY=NEVER\r\n' +
      'DATA\r\n' +
      body +
      '.\r\n' +
      'QUIT\r\n',
  );
  const replies = await c.read(7);
  assert.deepEqual(
    replies.map((r) => r.code),
    [250, 250, 250, 250, 354, 250, 221],
  );
  const ehlo = replies[0]?.lines ?? [];
  for (const ext of ['PIPELINING', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SMTPUTF8']) {
    assert.ok(
      ehlo.some((l) => l.slice(4) === ext),
      `EHLO advertises ${ext}`,
    );
  }
  assert.ok(ehlo.some((l) => /^250[ -]SIZE \d+$/.test(l)));
  assert.equal(replies[1]?.text, '250 2.1.0 ok');
  assert.equal(replies[2]?.text, '250 2.1.5 ok');
  assert.match(replies[5]?.text ?? '', /^250 2\.0\.0 queued as \d+$/);
  assert.equal(replies[6]?.text, '221 2.0.0 bye');
  await c.waitClosed();

  assert.equal(sink.messages.length, 1);
  const m = sink.messages[0];
  assert.ok(m);
  assert.equal(m.mailFrom, 'a@client.test');
  assert.deepEqual(m.mailParams, ['SIZE=42', 'BODY=8BITMIME']);
  assert.deepEqual(m.rcptTo, ['b@remote.test', 'c@remote.test']);
  assert.equal(m.helo, 'client.test');
  assert.equal(m.connectionId, 1);
  assert.ok(m.receivedAt instanceof Date);
  assert.deepEqual(
    m.data,
    Buffer.from('Subject: hi\r\n\r\n.leading dot\r\nmiddle\r\n.foo\r\n..\r\nend. with .. dots\r\n'),
  );
  assert.equal(sink.connections, 1);
  assert.deepEqual(sink.messagesTo('c@remote.test'), [m]);
  assert.deepEqual(sink.messagesTo('nobody@remote.test'), []);
});

test('binary-safe 8-bit body and empty body', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await startData(c, ['x@remote.test']);
  const body = Buffer.concat([
    Buffer.from('Subject: \u00fc\r\n\r\n'),
    Buffer.from([0xff, 0x00, 0x0d, 0x2e, 0x0a]),
    Buffer.from('\r\n'),
  ]);
  await c.write(Buffer.concat([body, Buffer.from('.\r\n')]));
  assert.equal((await c.one()).code, 250);
  assert.deepEqual(sink.messages[0]?.data, body);

  await startData(c, ['y@remote.test']);
  await c.write('.\r\n');
  assert.equal((await c.one()).code, 250);
  assert.deepEqual(sink.messages[1]?.data, Buffer.alloc(0));
});

test('end-of-data marker split across writes', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  const payload = 'line1\r\n..x\r\nline2\r\n.\r\n';
  const splits: [string, string][] = [
    ['line1\r\nline2\r\n.', '\r\n'],
    ['line1\r\nline2', '\r\n.\r\n'],
  ];
  // Also every cut point through a stuffed line and the terminator.
  for (let i = 1; i < payload.length; i++) splits.push([payload.slice(0, i), payload.slice(i)]);
  for (const [first, second] of splits) {
    sink.clear();
    await startData(c, ['r@remote.test']);
    await c.write(first);
    // Give the first part its own read on the sink side; correctness never depends on this pause.
    await sleep(5);
    await c.write(second);
    const reply = await c.one();
    assert.equal(reply.code, 250, `split ${JSON.stringify([first, second])}`);
    const expected = (first + second).replace(/\r\n\.\r\n$/, '\r\n').replace(/^\.\./gm, '.');
    assert.equal(
      sink.messages[0]?.data.toString('utf8'),
      expected,
      `split ${JSON.stringify([first, second])}`,
    );
  }
  // Three-way split "\r\n" / "." / "\r\n" as well.
  sink.clear();
  await startData(c, ['r@remote.test']);
  for (const part of ['abc', '\r\n', '.', '\r\n']) {
    await c.write(part);
    await sleep(5);
  }
  assert.equal((await c.one()).code, 250);
  assert.equal(sink.messages[0]?.data.toString('utf8'), 'abc\r\n');
});

test('commands split across chunks, bare LF, lower case verbs, null sender', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await c.write('eh');
  await sleep(5);
  await c.write('lo client.test\nmail from: <> BODY=7BIT\r');
  await sleep(5);
  await c.write('\nrcpt to:<u@remote.test>\ndata\n');
  assert.deepEqual(await c.codes(4), [250, 250, 250, 354]);
  await c.write('hello\r\n.\r\n');
  assert.equal((await c.one()).code, 250);
  const m = sink.messages[0];
  assert.equal(m?.mailFrom, '');
  assert.deepEqual(m?.mailParams, ['BODY=7BIT']);
  assert.deepEqual(m?.rcptTo, ['u@remote.test']);
});

test('sequence errors, unknown commands, RSET and NOOP', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await c.write('MAIL FROM:<a@b.test>\r\nEHLO c.test\r\nRCPT TO:<x@y.test>\r\nDATA\r\nFOO\r\nNOOP\r\n');
  const replies = await c.read(6);
  assert.deepEqual(
    replies.map((r) => r.text.split('\n').at(-1)),
    [
      '503 5.5.1 bad sequence',
      '250 SMTPUTF8',
      '503 5.5.1 bad sequence',
      '503 5.5.1 bad sequence',
      '500 5.5.2 unrecognised',
      '250 2.0.0 ok',
    ],
  );
  await c.write('MAIL FROM:<a@b.test>\r\nRSET\r\nRCPT TO:<x@y.test>\r\nHELO c.test\r\n');
  assert.deepEqual(await c.codes(4), [250, 250, 503, 250]);
});

test('tempfail and permfail recipients are rejected and left out of rcptTo', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await c.write(
    'EHLO client.test\r\nMAIL FROM:<s@client.test>\r\n' +
      'RCPT TO:<tempfail-1@remote.test>\r\nRCPT TO:<ok@remote.test>\r\nRCPT TO:<permfail-2@remote.test>\r\nDATA\r\n',
  );
  const replies = await c.read(6);
  assert.equal(replies[2]?.text, '450 4.2.0 mailbox temporarily unavailable');
  assert.equal(replies[3]?.code, 250);
  assert.equal(replies[4]?.text, '550 5.1.1 no such user');
  assert.equal(replies[5]?.code, 354);
  await c.write('hi\r\n.\r\n');
  assert.equal((await c.one()).code, 250);
  assert.deepEqual(sink.messages[0]?.rcptTo, ['ok@remote.test']);
  assert.deepEqual(sink.rejectedRecipients, [
    { recipient: 'tempfail-1@remote.test', code: 450 },
    { recipient: 'permfail-2@remote.test', code: 550 },
  ]);

  // DATA when every recipient was refused.
  await c.write('MAIL FROM:<s@client.test>\r\nRCPT TO:<permfail-3@remote.test>\r\nDATA\r\n');
  const refused = await c.read(3);
  assert.equal(refused[2]?.text, '554 5.5.1 no valid recipients');
});

test('custom codes and texts from a behaviour function', async (t) => {
  const sink = await sinkFor(t, {
    hostname: 'mx.example',
    behaviour: (rcpt) =>
      rcpt.startsWith('a')
        ? { kind: 'tempfail', code: 452, text: 'too many recipients' }
        : { kind: 'permfail', code: 553, text: '5.1.3 bad address syntax' },
  });
  const c = await RawClient.open(sink);
  t.after(() => c.destroy());
  assert.match((await c.one()).text, /^220 mx\.example /);
  await c.write('HELO me\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n');
  const replies = await c.read(4);
  assert.equal(replies[0]?.text, '250 mx.example');
  assert.equal(replies[2]?.text, '452 4.2.0 too many recipients');
  assert.equal(replies[3]?.text, '553 5.1.3 bad address syntax');
});

test('close421 answers 421 and closes the connection', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await c.write('EHLO client.test\r\nMAIL FROM:<s@client.test>\r\nRCPT TO:<close421-x@remote.test>\r\n');
  const replies = await c.read(3);
  assert.match(replies[2]?.text ?? '', /^421 4\.3\.2 /);
  await c.waitClosed();
  assert.equal(sink.messages.length, 0);
  assert.deepEqual(sink.rejectedRecipients, [{ recipient: 'close421-x@remote.test', code: 421 }]);
});

test('dataTempfail and dataPermfail answer the final dot; the session stays usable', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  // The first recipient with a data-stage behaviour decides.
  await startData(c, ['ok@remote.test', 'datatempfail-1@remote.test', 'datapermfail-1@remote.test']);
  await c.write('body\r\n.\r\n');
  assert.equal((await c.one()).text, '451 4.3.0 temporary failure');
  await startData(c, ['datapermfail-2@remote.test']);
  await c.write('body\r\n.\r\n');
  assert.equal((await c.one()).text, '554 5.6.0 message rejected');
  assert.equal(sink.messages.length, 0);
  await startData(c, ['ok@remote.test']);
  await c.write('body\r\n.\r\n');
  assert.equal((await c.one()).code, 250);
  assert.equal(sink.messages.length, 1);
});

test('disconnectInData destroys the socket without a reply and records nothing', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await startData(c, ['disconnect-in-data-1@remote.test']);
  await c.write('Subject: x\r\n\r\nbody\r\n');
  await c.waitClosed();
  await assert.rejects(c.read(1), /connection closed/);
  assert.equal(sink.messages.length, 0);
});

test('slow delays the final reply by at least delayMs, pipelined QUIT answered after it', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await startData(c, ['slow300-a@remote.test']);
  const started = performance.now();
  await c.write('body\r\n.\r\nQUIT\r\n');
  const [done, bye] = await c.read(2);
  const elapsed = performance.now() - started;
  assert.equal(done?.code, 250);
  assert.equal(bye?.code, 221);
  assert.ok(elapsed >= 300, `elapsed ${elapsed}ms`);
  assert.equal(sink.messages.length, 1);
  assert.equal(sink.held, 0);
});

test('setBehaviour swaps the script at run time', async (t) => {
  const sink = await sinkFor(t);
  const c = await client(t, sink);
  await c.write('EHLO client.test\r\nMAIL FROM:<s@client.test>\r\nRCPT TO:<a@remote.test>\r\n');
  assert.deepEqual(await c.codes(3), [250, 250, 250]);
  sink.setBehaviour(() => ({ kind: 'permfail' }));
  await c.write('RCPT TO:<b@remote.test>\r\n');
  assert.equal((await c.one()).code, 550);
  sink.setBehaviour(() => ({ kind: 'accept' }));
  await c.write('RCPT TO:<permfail-c@remote.test>\r\nDATA\r\nx\r\n.\r\n');
  assert.deepEqual(await c.codes(3), [250, 354, 250]);
  assert.deepEqual(sink.messages[0]?.rcptTo, ['a@remote.test', 'permfail-c@remote.test']);
  sink.clear();
  assert.equal(sink.messages.length, 0);
  assert.equal(sink.rejectedRecipients.length, 0);
});

test('close() with an idle client resolves, ends the client, and is idempotent', async (t) => {
  const sink = await startSmtpSink();
  const c = await client(t, sink);
  const second = await client(t, sink);
  assert.equal(sink.connections, 2);
  await withDeadline(sink.close(), DEADLINE_MS, 'sink.close()');
  await c.waitClosed();
  await second.waitClosed();
  await sink.close();
});

test('close() with a slow reply pending resolves promptly and records nothing', async (t) => {
  // A leaked 10-minute reply timer would also keep this test file's process alive past its timeout.
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const c = await client(t, sink);
  await startData(c, ['slow600000-a@remote.test']);
  await c.write('x\r\n.\r\n');
  await waitFor(() => (sink.held === 1 ? true : undefined), { timeoutMs: DEADLINE_MS });
  await withDeadline(sink.close(), DEADLINE_MS, 'sink.close()');
  await c.waitClosed();
  assert.equal(sink.messages.length, 0);
  assert.equal(sink.held, 0, 'a closed session holds nothing');
});

test('behaviourByLocalPart maps prefixes', () => {
  assert.deepEqual(behaviourByLocalPart('tempfail-a@x.test'), { kind: 'tempfail' });
  assert.deepEqual(behaviourByLocalPart('permfail-a@x.test'), { kind: 'permfail' });
  assert.deepEqual(behaviourByLocalPart('close421-a@x.test'), { kind: 'close421' });
  assert.deepEqual(behaviourByLocalPart('slow500-a@x.test'), { kind: 'slow', delayMs: 500 });
  assert.deepEqual(behaviourByLocalPart('disconnect-in-data-a@x.test'), { kind: 'disconnectInData' });
  assert.deepEqual(behaviourByLocalPart('datatempfail-a@x.test'), { kind: 'dataTempfail' });
  assert.deepEqual(behaviourByLocalPart('datapermfail-a@x.test'), { kind: 'dataPermfail' });
  assert.deepEqual(behaviourByLocalPart('someone@tempfail-x.test'), { kind: 'accept' });
  assert.deepEqual(behaviourByLocalPart('slow-a@x.test'), { kind: 'accept' });
});
