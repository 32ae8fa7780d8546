import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { reply } from './reply.ts';
import { ServerSession, type ServerSessionOptions, type SessionHandler } from './server.ts';

const DEADLINE_MS = 5_000;
const CRLF = Buffer.from('\r\n');

/** What the handler's message() was called with. */
interface Delivered {
  readonly sender: string | undefined;
  readonly recipients: string[];
  readonly bodyType: string;
  readonly smtputf8: boolean;
  readonly body: Buffer;
}

interface TestServer {
  readonly port: number;
  readonly sessions: ServerSession[];
  /** The server side of each connection, in order. */
  readonly sockets: Socket[];
  readonly delivered: Delivered[];
}

/**
 * A TCP server running one ServerSession per connection. Recipients whose local part starts
 * with "refuse" are refused by the handler with 550 5.1.1; messages are recorded.
 */
async function startServer(t: TestContext, options: Partial<ServerSessionOptions> = {}): Promise<TestServer> {
  const sessions: ServerSession[] = [];
  const delivered: Delivered[] = [];
  const runs: Promise<void>[] = [];
  const errors: unknown[] = [];
  const sockets = new Set<Socket>();
  const accepted: Socket[] = [];
  const handler: SessionHandler = {
    rcptTo(_session, _tx, recipient) {
      if (recipient.mailbox.localPart.startsWith('refuse')) return reply(550, '5.1.1', 'No such user');
      return undefined;
    },
    async message(_session, tx, body) {
      delivered.push({
        sender: tx.sender?.address,
        recipients: tx.recipients.map((r) => r.mailbox.address),
        bodyType: tx.bodyType,
        smtputf8: tx.smtputf8,
        body: Buffer.from(body),
      });
      return reply(250, '2.0.0', `Queued as ${delivered.length}`);
    },
  };
  let ids = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    accepted.push(socket);
    socket.on('close', () => sockets.delete(socket));
    const session = new ServerSession(socket, `s${++ids}`, handler, {
      hostname: 'test.local',
      maxMessageSize: 1000,
      maxRecipients: 3,
      ...options,
    });
    sessions.push(session);
    runs.push(session.run().catch((error: unknown) => void errors.push(error)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await Promise.all(runs);
    assert.deepEqual(errors, [], 'ServerSession.run() rejected');
  });
  return { port: (server.address() as AddressInfo).port, sessions, sockets: accepted, delivered };
}

/** Resolves once `socket` (server side) has delivered `octets` more octets to its readers. */
function serverReads(socket: Socket, octets: number): Promise<void> {
  let seen = 0;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server read ${seen} of ${octets} octets`)), DEADLINE_MS);
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen < octets) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
}

interface WireReply {
  readonly code: number;
  /** The text of each line after "code-" / "code ". */
  readonly lines: string[];
  /** The first line as received, e.g. "503 5.5.1 Send EHLO or HELO first". */
  readonly first: string;
}

/** A raw SMTP client: writes bytes as given and reads whole replies, each with a deadline. */
class Wire {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#notify();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#notify();
    });
    socket.on('error', () => undefined);
  }

  static async open(t: TestContext, port: number): Promise<Wire> {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setNoDelay(true);
    await once(socket, 'connect');
    t.after(() => socket.destroy());
    return new Wire(socket);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #waitForInput(deadline: number, what: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#wake = undefined;
          reject(new Error(`timed out waiting for ${what}; unread: ${JSON.stringify(this.unread)}`));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Received octets not yet consumed as a reply. */
  get unread(): string {
    return this.#buffer.toString('utf8');
  }

  write(data: string | Buffer): void {
    this.#socket.write(data);
  }

  #takeReply(): WireReply | undefined {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const end = this.#buffer.indexOf(CRLF, start);
      if (end === -1) return undefined;
      const line = this.#buffer.subarray(start, end).toString('utf8');
      lines.push(line);
      start = end + 2;
      if (line.charAt(3) !== '-') break;
    }
    this.#buffer = this.#buffer.subarray(start);
    const first = lines[0] ?? '';
    lines.forEach((line, i) => {
      const form = i === lines.length - 1 ? /^[2-5]\d\d( |$)/ : /^[2-5]\d\d-/;
      assert.match(line, form, `malformed reply ${JSON.stringify(lines)}`);
      assert.equal(line.slice(0, 3), first.slice(0, 3), 'same code on every line');
    });
    return { code: Number(first.slice(0, 3)), lines: lines.map((l) => l.slice(4)), first };
  }

  async reply(): Promise<WireReply> {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      const r = this.#takeReply();
      if (r !== undefined) return r;
      if (this.#closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.unread)}`);
      await this.#waitForInput(deadline, 'a reply');
    }
  }

  async command(line: string): Promise<WireReply> {
    this.write(`${line}\r\n`);
    return await this.reply();
  }

  /** Waits for the server to close the connection; nothing may be left unread. */
  async closed(): Promise<void> {
    const deadline = Date.now() + DEADLINE_MS;
    while (!this.#closed) await this.#waitForInput(deadline, 'the server to close');
    assert.equal(this.unread, '', 'no further replies before the close');
  }
}

/** Asserts the code and, when given, the enhanced status code of the (first line of the) reply. */
function expectReply(r: WireReply, code: number, enhanced?: string): void {
  assert.equal(r.code, code, `expected ${code}, got ${JSON.stringify(r.first)}`);
  if (enhanced !== undefined) {
    assert.ok(r.first.startsWith(`${code} ${enhanced} `), `expected ${code} ${enhanced}, got ${r.first}`);
  }
}

/** Connects, reads the greeting and sends EHLO. */
async function session(t: TestContext, port: number): Promise<Wire> {
  const wire = await Wire.open(t, port);
  expectReply(await wire.reply(), 220);
  expectReply(await wire.command('EHLO client.example'), 250);
  return wire;
}

/** Dot-stuffs a CRLF message by hand (independent of data.ts) and appends the terminator. */
function stuffed(message: string): string {
  return `${message.replace(/^\./gm, '..')}.\r\n`;
}

test('greeting is 220 with our host name; EHLO lists the extensions', async (t) => {
  const server = await startServer(t);
  const wire = await Wire.open(t, server.port);
  const greeting = await wire.reply();
  expectReply(greeting, 220);
  assert.deepEqual(greeting.lines, ['test.local ESMTP Petrel']);
  const ehlo = await wire.command('EHLO client.example');
  expectReply(ehlo, 250);
  assert.deepEqual(ehlo.lines, [
    'test.local greets client.example',
    'PIPELINING',
    'SIZE 1000',
    '8BITMIME',
    'ENHANCEDSTATUSCODES',
    'SMTPUTF8',
  ]);
  assert.equal(server.sessions[0]?.info.helo, 'client.example');
  assert.equal(server.sessions[0]?.info.esmtp, true);
  expectReply(await wire.command('NOOP'), 250, '2.0.0');
  expectReply(await wire.command('EHLO'), 501, '5.5.4');
  expectReply(await wire.command('HELO [192.0.2.1]'), 250);
  assert.equal(server.sessions[0]?.info.esmtp, false);
  // Parameters need the ESMTP hello.
  expectReply(await wire.command('MAIL FROM:<a@example.com> SIZE=10'), 555, '5.5.4');
});

test('commands out of sequence and unknown commands are refused', async (t) => {
  const server = await startServer(t);
  const wire = await Wire.open(t, server.port);
  expectReply(await wire.reply(), 220);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 503, '5.5.1');
  expectReply(await wire.command('EHLO client.example'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 503, '5.5.1');
  expectReply(await wire.command('DATA'), 503, '5.5.1');
  expectReply(await wire.command('MAIL TO:<a@example.com>'), 501, '5.5.4');
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250, '2.1.0');
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 503, '5.5.1');
  expectReply(await wire.command('FROB'), 500, '5.5.1');
  expectReply(await wire.command(''), 500, '5.5.1');
  // Only refused recipients: DATA gets 554 (RFC 2920 §3.1), and the handler saw nothing.
  expectReply(await wire.command('RCPT TO:<refuse-1@example.com>'), 550, '5.1.1');
  expectReply(await wire.command('DATA'), 554, '5.5.1');
  expectReply(await wire.command('RCPT TO:<>'), 501, '5.1.3');
  expectReply(await wire.command('RCPT TO:<b@example.com> NOTIFY=NEVER'), 555, '5.5.4');
  expectReply(await wire.command('DATA now'), 501, '5.5.4');
  assert.equal(server.delivered.length, 0);
});

test('a command line longer than 512 octets is refused whole and never executed', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  // 512 octets with CRLF is the limit (RFC 5321 §4.5.3.1.4): the longest allowed line works…
  expectReply(await wire.command(`NOOP ${'x'.repeat(505)}`), 250);
  // …one more octet does not.
  expectReply(await wire.command(`NOOP ${'x'.repeat(506)}`), 500, '5.5.2');
  const long = `MAIL FROM:<${'a'.repeat(520)}@example.com>`;
  expectReply(await wire.command(long), 500, '5.5.2');
  // Had the long MAIL run, this one would be "nested".
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250, '2.1.0');
  expectReply(await wire.command('RSET'), 250, '2.0.0');
  // A line far beyond the limit arrives in many segments; only its end is reported, once, and
  // no part of it (here a tail that looks like a command) is interpreted.
  wire.write(`${'A'.repeat(200_000)} MAIL FROM:<b@example.com>\r\nMAIL FROM:<c@example.com>\r\n`);
  expectReply(await wire.reply(), 500, '5.5.2');
  expectReply(await wire.reply(), 250, '2.1.0');
  expectReply(await wire.command('RSET'), 250, '2.0.0');
  // The start of an over-long line is read (and dropped) before its short end arrives: that
  // end, though a command on its own, is still part of the long line.
  const serverSocket = server.sockets[0];
  assert.ok(serverSocket);
  const start = 'A'.repeat(1000);
  const read = serverReads(serverSocket, start.length);
  wire.write(start);
  await read;
  wire.write('MAIL FROM:<d@example.com>\r\nMAIL FROM:<e@example.com>\r\n');
  expectReply(await wire.reply(), 500, '5.5.2');
  expectReply(await wire.reply(), 250, '2.1.0');
  expectReply(await wire.command('QUIT'), 221);
  await wire.closed();
});

test('MAIL parameters: SIZE, BODY, SMTPUTF8 and unknown ones', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com> SIZE=2000'), 552, '5.3.4');
  expectReply(await wire.command('MAIL FROM:<a@example.com> SIZE=big'), 501, '5.5.4');
  expectReply(await wire.command('MAIL FROM:<a@example.com> FROB=1'), 555, '5.5.4');
  expectReply(await wire.command('MAIL FROM:<a@example.com> BODY=BINARYMIME'), 501, '5.5.4');
  expectReply(await wire.command('MAIL FROM:<a@example.com> SIZE=1 SIZE=1'), 501, '5.1.7');
  expectReply(await wire.command('MAIL FROM:a@example.com'), 501, '5.1.7');
  // None of the refused MAILs opened a transaction.
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 503, '5.5.1');
  expectReply(
    await wire.command('MAIL FROM:<δοκιμή@example.com> SIZE=1000 body=8bitmime SMTPUTF8'),
    250,
    '2.1.0',
  );
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250, '2.1.5');
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed('Subject: é\r\n\r\nbody\r\n'));
  expectReply(await wire.reply(), 250, '2.0.0');
  assert.deepEqual(server.delivered, [
    {
      sender: 'δοκιμή@example.com',
      recipients: ['b@example.com'],
      bodyType: '8BITMIME',
      smtputf8: true,
      body: Buffer.from('Subject: é\r\n\r\nbody\r\n'),
    },
  ]);
  // The null reverse-path is a valid sender.
  expectReply(await wire.command('MAIL FROM:<>'), 250, '2.1.0');
});

test('recipients refused by the handler or beyond maxRecipients are not added', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<one@example.com>'), 250, '2.1.5');
  expectReply(await wire.command('RCPT TO:<refuse-me@example.com>'), 550, '5.1.1');
  expectReply(await wire.command('RCPT TO:<two@example.com>'), 250, '2.1.5');
  expectReply(await wire.command('RCPT TO:<three@example.com>'), 250, '2.1.5');
  expectReply(await wire.command('RCPT TO:<four@example.com>'), 452, '4.5.3');
  expectReply(await wire.command('RCPT TO:<five@example.com>'), 452, '4.5.3');
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed('x\r\n'));
  expectReply(await wire.reply(), 250);
  assert.equal(server.delivered.length, 1);
  assert.deepEqual(server.delivered[0]?.recipients, [
    'one@example.com',
    'two@example.com',
    'three@example.com',
  ]);
});

test('a fully pipelined transaction in one write gets every reply in order and the exact body', async (t) => {
  const server = await startServer(t);
  const wire = await Wire.open(t, server.port);
  expectReply(await wire.reply(), 220);
  const message = [
    'From: a@example.com',
    'Subject: pipelined',
    '',
    '.leading dot',
    '..two dots',
    '.',
    ' .',
    'UTF-8: žluťoučký',
    'end',
    '',
  ].join('\r\n');
  wire.write(
    [
      'EHLO client.example',
      'MAIL FROM:<a@example.com>',
      'RCPT TO:<b@example.com>',
      'RCPT TO:<refuse-x@example.com>',
      'RCPT TO:<c@example.com>',
      'DATA',
      `${stuffed(message)}QUIT`,
      '',
    ].join('\r\n'),
  );
  expectReply(await wire.reply(), 250);
  expectReply(await wire.reply(), 250, '2.1.0');
  expectReply(await wire.reply(), 250, '2.1.5');
  expectReply(await wire.reply(), 550, '5.1.1');
  expectReply(await wire.reply(), 250, '2.1.5');
  expectReply(await wire.reply(), 354);
  const queued = await wire.reply();
  expectReply(queued, 250, '2.0.0');
  assert.deepEqual(queued.lines, ['2.0.0 Queued as 1']);
  expectReply(await wire.reply(), 221, '2.0.0');
  await wire.closed();
  assert.equal(server.delivered.length, 1);
  assert.deepEqual(server.delivered[0]?.recipients, ['b@example.com', 'c@example.com']);
  assert.equal(server.delivered[0]?.body.toString('utf8'), message);
  assert.deepEqual(server.delivered[0]?.body, Buffer.from(message));
});

test('a body with a bare LF is refused with 554 5.6.0 and not handed over', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  // The bare-LF dot does not end the data (SMTP smuggling); only the final CRLF.CRLF does.
  wire.write('line one\nsmuggled\n.\nMAIL FROM:<evil@example.com>\r\n.\r\n');
  expectReply(await wire.reply(), 554, '5.6.0');
  assert.equal(server.delivered.length, 0);
  // The transaction is over: RCPT needs a new MAIL, and a new MAIL is not nested.
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 503, '5.5.1');
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250, '2.1.0');
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write('bare\rCR\r\n.\r\n');
  expectReply(await wire.reply(), 554, '5.6.0');
  assert.equal(server.delivered.length, 0);
});

test('a body over maxMessageSize is refused with 552 and not handed over; one at the limit is accepted', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  const atLimit = `${'a'.repeat(98)}\r\n`.repeat(10);
  assert.equal(atLimit.length, 1000);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed(`${atLimit}x\r\n`));
  expectReply(await wire.reply(), 552, '5.3.4');
  assert.equal(server.delivered.length, 0);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed(atLimit));
  expectReply(await wire.reply(), 250, '2.0.0');
  assert.equal(server.delivered.length, 1);
  assert.equal(server.delivered[0]?.body.toString(), atLimit);
});

test('a body line over 998 octets is refused with 554 5.6.0', async (t) => {
  const server = await startServer(t, { maxMessageSize: 10_000 });
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed(`${'b'.repeat(999)}\r\n`));
  expectReply(await wire.reply(), 554, '5.6.0');
  assert.equal(server.delivered.length, 0);
});

test('commands pipelined right after the final dot in the same write are executed', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write(
    `${stuffed('first\r\n')}MAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n${stuffed('.second\r\n')}NOOP\r\n`,
  );
  expectReply(await wire.reply(), 250, '2.0.0');
  expectReply(await wire.reply(), 250, '2.1.0');
  expectReply(await wire.reply(), 250, '2.1.5');
  expectReply(await wire.reply(), 354);
  expectReply(await wire.reply(), 250, '2.0.0');
  expectReply(await wire.reply(), 250, '2.0.0');
  assert.deepEqual(
    server.delivered.map((d) => [d.sender, d.recipients, d.body.toString()]),
    [
      ['a@example.com', ['b@example.com'], 'first\r\n'],
      ['c@example.com', ['d@example.com'], '.second\r\n'],
    ],
  );
  assert.equal(wire.unread, '');
});

test('RSET clears the transaction', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('RSET'), 250, '2.0.0');
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 503, '5.5.1');
  expectReply(await wire.command('DATA'), 503, '5.5.1');
  expectReply(await wire.command('MAIL FROM:<c@example.com>'), 250, '2.1.0');
  expectReply(await wire.command('RCPT TO:<d@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed('after reset\r\n'));
  expectReply(await wire.reply(), 250);
  // Recipients of the reset transaction are gone.
  assert.deepEqual(server.delivered[0]?.recipients, ['d@example.com']);
  assert.equal(server.delivered[0]?.sender, 'c@example.com');
});

test('QUIT gets 221 and the server closes the connection', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  // Nothing after QUIT is executed.
  wire.write('QUIT\r\nNOOP\r\n');
  expectReply(await wire.reply(), 221, '2.0.0');
  await wire.closed();
});

test('shutdown() of an idle session sends 421 4.3.2 and closes', async (t) => {
  const server = await startServer(t);
  const wire = await Wire.open(t, server.port);
  expectReply(await wire.reply(), 220);
  const serverSession = server.sessions[0];
  assert.ok(serverSession);
  serverSession.shutdown();
  expectReply(await wire.reply(), 421, '4.3.2');
  await wire.closed();
});

test('shutdown() of a busy session lets the transaction finish, then sends 421 4.3.2', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  const serverSession = server.sessions[0];
  assert.ok(serverSession);
  serverSession.shutdown();
  serverSession.shutdown();
  wire.write(`${stuffed('in flight\r\n')}NOOP\r\n`);
  expectReply(await wire.reply(), 250, '2.0.0');
  expectReply(await wire.reply(), 421, '4.3.2');
  // The pipelined NOOP was not executed.
  await wire.closed();
  assert.equal(server.delivered[0]?.body.toString(), 'in flight\r\n');
});

test('an idle session times out with 421 4.4.2 and is closed', async (t) => {
  const server = await startServer(t, { idleTimeoutMs: 200 });
  const wire = await session(t, server.port);
  expectReply(await wire.reply(), 421, '4.4.2');
  await wire.closed();
});

test('a stalled DATA phase times out with 421 4.4.2 and nothing is handed over', async (t) => {
  const server = await startServer(t, { dataTimeoutMs: 200 });
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250);
  expectReply(await wire.command('RCPT TO:<b@example.com>'), 250);
  expectReply(await wire.command('DATA'), 354);
  wire.write('partial body\r\n');
  expectReply(await wire.reply(), 421, '4.4.2');
  await wire.closed();
  assert.equal(server.delivered.length, 0);
});

test('too many errors end the session with 421', async (t) => {
  const server = await startServer(t, { maxErrors: 3 });
  const wire = await session(t, server.port);
  wire.write('FROB\r\nFROB\r\nFROB\r\nNOOP\r\n');
  expectReply(await wire.reply(), 500, '5.5.1');
  expectReply(await wire.reply(), 500, '5.5.1');
  expectReply(await wire.reply(), 500, '5.5.1');
  expectReply(await wire.reply(), 421, '4.3.2');
  await wire.closed();
});
