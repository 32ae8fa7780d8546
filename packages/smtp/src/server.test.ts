import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectReply, serverReads, session, startServer, stuffed, Wire } from '../test/wire.ts';
import { EXTENSION_COMMAND_ALLOWANCE, MAX_COMMAND_LINE } from './codes.ts';

/** The command line limit: RFC 5321's 512 plus what the advertised extensions add. */
const LIMIT = MAX_COMMAND_LINE + EXTENSION_COMMAND_ALLOWANCE;

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
    'BINARYMIME',
    'CHUNKING',
    'ENHANCEDSTATUSCODES',
    'SMTPUTF8',
    'DSN',
    'DELIVERBY',
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
  expectReply(await wire.command('RCPT TO:<b@example.com> FROB=1'), 555, '5.5.4');
  expectReply(await wire.command('DATA now'), 501, '5.5.4');
  assert.equal(server.delivered.length, 0);
});

test('a command line longer than the limit is refused whole and never executed', async (t) => {
  const server = await startServer(t);
  const wire = await session(t, server.port);
  // 512 octets with CRLF (RFC 5321 §4.5.3.1.4) plus the extensions' allowance: the longest allowed line works…
  expectReply(await wire.command(`NOOP ${'x'.repeat(LIMIT - 7)}`), 250);
  // …one more octet does not.
  expectReply(await wire.command(`NOOP ${'x'.repeat(LIMIT - 6)}`), 500, '5.5.2');
  const long = `MAIL FROM:<${'a'.repeat(LIMIT)}@example.com>`;
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
  const start = 'A'.repeat(13_000);
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
  expectReply(await wire.command('MAIL FROM:<a@example.com> BODY=FOO'), 501, '5.5.4');
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
  assert.deepEqual(
    server.delivered.map(({ sender, recipients, bodyType, smtputf8, body }) => ({
      sender,
      recipients,
      bodyType,
      smtputf8,
      body,
    })),
    [
      {
        sender: 'δοκιμή@example.com',
        recipients: ['b@example.com'],
        bodyType: '8BITMIME',
        smtputf8: true,
        body: Buffer.from('Subject: é\r\n\r\nbody\r\n'),
      },
    ],
  );
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
  // No EHLO: on a loaded host the 200 ms could pass before it arrived, and its reply would be the 421.
  const wire = await Wire.open(t, server.port);
  expectReply(await wire.reply(), 220);
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

test('RCPT TO:<Postmaster> without a domain stands for the configured postmaster (RFC 5321 §4.5.1)', async (t) => {
  const server = await startServer(t, { postmaster: 'abuse-desk@example.org' });
  const wire = await session(t, server.port);
  expectReply(await wire.command('MAIL FROM:<a@example.com>'), 250, '2.1.0');
  expectReply(await wire.command('RCPT TO:<pOsTmAsTeR> NOTIFY=NEVER'), 250, '2.1.5');
  // Only the exact domainless form: other local parts without a domain stay refused.
  expectReply(await wire.command('RCPT TO:<postmasterx>'), 501, '5.1.3');
  expectReply(await wire.command('RCPT TO:<abuse>'), 501, '5.1.3');
  expectReply(await wire.command('DATA'), 354);
  wire.write(stuffed('Subject: hi\r\n\r\nhello\r\n'));
  expectReply(await wire.reply(), 250, '2.0.0');
  assert.deepEqual(server.delivered[0]?.recipients, ['abuse-desk@example.org']);
  assert.equal(server.delivered[0]?.tx.recipients[0]?.dsn.notify.join(), 'NEVER');

  const byDefault = await startServer(t);
  const other = await session(t, byDefault.port);
  expectReply(await other.command('MAIL FROM:<a@example.com>'), 250, '2.1.0');
  expectReply(await other.command('RCPT TO:<Postmaster>'), 250, '2.1.5');
  expectReply(await other.command('DATA'), 354);
  other.write(stuffed('\r\nx\r\n'));
  expectReply(await other.reply(), 250, '2.0.0');
  assert.deepEqual(byDefault.delivered[0]?.recipients, ['postmaster@test.local']);
});
