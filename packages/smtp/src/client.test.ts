import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { type TestContext, test } from 'node:test';
import { type SmtpSink, startSmtpSink } from '@petrel/test-harness';
import { rawServer } from '../test/wire.ts';
import {
  type ClientOptions,
  LocalRefusalReason,
  SmtpClient,
  SmtpClientError,
  SmtpClientErrorCode,
} from './client.ts';

async function sink(t: TestContext): Promise<SmtpSink> {
  const s = await startSmtpSink();
  t.after(() => s.close());
  return s;
}

async function connect(
  t: TestContext,
  s: SmtpSink,
  options: Partial<ClientOptions> = {},
): Promise<SmtpClient> {
  const client = await SmtpClient.connect({
    host: s.host,
    port: s.port,
    localName: 'client.example',
    timeoutMs: 5_000,
    ...options,
  });
  t.after(() => client.close());
  return client;
}

function isClientError(code: SmtpClientErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof SmtpClientError, `expected SmtpClientError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

/** A port nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

test('a message is delivered with its exact bytes, dot-stuffing undone by the server', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  assert.ok(client.extensions.has('PIPELINING'));
  assert.equal(client.extensions.get('SIZE'), String(100 * 1024 * 1024));
  const message = Buffer.from(
    'From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nčeština\r\nend\r\n',
  );
  const result = await client.send({ from: 'a@example.com', to: ['b@example.com'] }, message);
  assert.equal(result.mailReply.code, 250);
  assert.deepEqual(
    result.accepted.map((a) => [a.address, a.reply.code, a.reply.enhanced]),
    [['b@example.com', 250, '2.1.5']],
  );
  assert.deepEqual(result.rejected, []);
  assert.equal(result.dataReply?.code, 250);
  assert.equal(result.dataReply?.enhanced, '2.0.0');
  assert.equal(s.messages.length, 1);
  const received = s.messages[0];
  assert.ok(received);
  assert.deepEqual(received.data, message);
  assert.equal(received.mailFrom, 'a@example.com');
  assert.deepEqual(received.rcptTo, ['b@example.com']);
  assert.equal(received.helo, 'client.example');
  // SIZE is declared when offered (RFC 1870), BODY=8BITMIME for the 8-bit text (RFC 6152);
  // extra MAIL parameters are passed through.
  assert.deepEqual(received.mailParams, [`SIZE=${message.length}`, 'BODY=8BITMIME']);
  assert.equal(result.transfer.body, '8BITMIME');
  assert.equal(result.transfer.pipelining, true);
  assert.equal(result.transfer.chunking, false);
  assert.deepEqual(
    result.recipients.map((r) => [r.address, r.status, r.reply.code]),
    [['b@example.com', 'delivered', 250]],
  );
  await client.send(
    { from: 'a@example.com', to: ['b@example.com'], mailParams: ['BODY=8BITMIME'] },
    Buffer.from('x\r\n'),
  );
  assert.deepEqual(s.messages[1]?.mailParams, ['BODY=8BITMIME', 'SIZE=3']);
  await client.quit();
});

test('a message without a final CRLF gets one', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const result = await client.send({ from: '', to: ['b@example.com'] }, Buffer.from('a\r\n.b'));
  assert.equal(result.dataReply?.code, 250);
  assert.equal(s.messages[0]?.mailFrom, '');
  assert.equal(s.messages[0]?.data.toString(), 'a\r\n.b\r\n');
});

test('several messages go over one connection', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  for (let i = 0; i < 3; i++) {
    const result = await client.send(
      { from: `sender${i}@example.com`, to: [`r${i}@example.com`, `q${i}@example.com`] },
      Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`),
    );
    assert.equal(result.dataReply?.code, 250);
    assert.equal(result.accepted.length, 2);
  }
  await client.quit();
  assert.equal(s.connections, 1);
  assert.deepEqual(
    s.messages.map((m) => [m.connectionId, m.mailFrom, m.rcptTo, m.data.toString()]),
    [0, 1, 2].map((i) => [
      1,
      `sender${i}@example.com`,
      [`r${i}@example.com`, `q${i}@example.com`],
      `Subject: ${i}\r\n\r\nbody ${i}\r\n`,
    ]),
  );
});

test('per-recipient results: accepted, tempfail 450 and permfail 550', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const result = await client.send(
    { from: 'a@example.com', to: ['ok@example.com', 'tempfail-1@example.com', 'permfail-1@example.com'] },
    Buffer.from('hello\r\n'),
  );
  assert.deepEqual(
    result.accepted.map((a) => a.address),
    ['ok@example.com'],
  );
  assert.deepEqual(
    result.rejected.map((r) => [r.address, r.reply.code, r.reply.enhanced]),
    [
      ['tempfail-1@example.com', 450, '4.2.0'],
      ['permfail-1@example.com', 550, '5.1.1'],
    ],
  );
  assert.equal(result.dataReply?.code, 250);
  assert.deepEqual(s.messages[0]?.rcptTo, ['ok@example.com']);
});

test('partial failure in one transaction: the final reply applies to every accepted recipient', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const delivered = await client.send(
    {
      from: 'a@example.com',
      to: ['ok@example.com', 'tempfail-1@example.com', 'permfail-1@example.com', 'ok2@example.com'],
    },
    Buffer.from('partial\r\n'),
  );
  assert.deepEqual(
    delivered.recipients.map((r) => [r.address, r.status, r.reply.code]),
    [
      ['ok@example.com', 'delivered', 250],
      ['tempfail-1@example.com', 'deferred', 450],
      ['permfail-1@example.com', 'failed', 550],
      ['ok2@example.com', 'delivered', 250],
    ],
  );
  assert.deepEqual(s.messages[0]?.rcptTo, ['ok@example.com', 'ok2@example.com']);
  // The sink answers 451 after the data: both accepted recipients are deferred by it.
  const deferred = await client.send(
    { from: 'a@example.com', to: ['ok@example.com', 'permfail-2@example.com', 'datatempfail-1@example.com'] },
    Buffer.from('later\r\n'),
  );
  assert.deepEqual(
    deferred.recipients.map((r) => [r.address, r.status, r.reply.code, r.reply.enhanced]),
    [
      ['ok@example.com', 'deferred', 451, '4.3.0'],
      ['permfail-2@example.com', 'failed', 550, '5.1.1'],
      ['datatempfail-1@example.com', 'deferred', 451, '4.3.0'],
    ],
  );
  assert.equal(client.messagesSent, 1);
  assert.equal(s.messages.length, 1);
  assert.equal(s.connections, 1);
});

test('non-ASCII addresses to a server without SMTPUTF8: a local 5.6.7 refusal, no MAIL sent', async (t) => {
  const commands: string[] = [];
  const port = await lockstepServer(t, commands, []);
  const client = await SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example' });
  t.after(() => client.close());
  const result = await client.send(
    { from: 'a@example.com', to: ['bjørn@example.com'] },
    Buffer.from('x\r\n'),
  );
  assert.equal(result.localRefusal?.reason, LocalRefusalReason.SmtpUtf8Unsupported);
  assert.equal(result.mailReply.code, 553);
  assert.equal(result.mailReply.enhanced, '5.6.7');
  assert.deepEqual(
    result.recipients.map((r) => [r.address, r.status, r.reply.enhanced]),
    [['bjørn@example.com', 'failed', '5.6.7']],
  );
  await client.quit();
  assert.deepEqual(commands, ['EHLO client.example', 'QUIT']);
});

test('when every recipient is refused nothing is sent and the connection stays usable', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const refused = await client.send(
    { from: 'a@example.com', to: ['permfail-1@example.com', 'tempfail-2@example.com'] },
    Buffer.from('never\r\n'),
  );
  assert.equal(refused.mailReply.code, 250);
  assert.deepEqual(refused.accepted, []);
  assert.deepEqual(
    refused.rejected.map((r) => [r.address, r.reply.code]),
    [
      ['permfail-1@example.com', 550],
      ['tempfail-2@example.com', 450],
    ],
  );
  assert.equal(refused.dataReply, undefined);
  // The server's transaction was closed: the next MAIL on this connection is not "nested".
  const next = await client.send({ from: 'a@example.com', to: ['ok@example.com'] }, Buffer.from('next\r\n'));
  assert.equal(next.mailReply.code, 250);
  assert.equal(next.dataReply?.code, 250);
  assert.equal(s.messages.length, 1);
  assert.equal(s.messages[0]?.data.toString(), 'next\r\n');
  assert.equal(s.connections, 1);
});

test('a temporary failure after the data is the dataReply (451), and the connection stays usable', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const result = await client.send(
    { from: 'a@example.com', to: ['datatempfail-1@example.com'] },
    Buffer.from('body\r\n'),
  );
  assert.equal(result.dataReply?.code, 451);
  assert.equal(result.dataReply?.enhanced, '4.3.0');
  assert.equal(s.messages.length, 0);
  const next = await client.send({ from: 'a@example.com', to: ['ok@example.com'] }, Buffer.from('next\r\n'));
  assert.equal(next.dataReply?.code, 250);
  assert.equal(s.messages.length, 1);
});

test('a permanent failure after the data is the dataReply (554)', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  const result = await client.send(
    { from: 'a@example.com', to: ['datapermfail-1@example.com'] },
    Buffer.from('body\r\n'),
  );
  assert.equal(result.dataReply?.code, 554);
  assert.equal(s.messages.length, 0);
});

test('a server closing with 421 mid-transaction makes send() throw CONNECTION_LOST', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  await assert.rejects(
    client.send(
      { from: 'a@example.com', to: ['ok@example.com', 'close421-1@example.com'] },
      Buffer.from('x\r\n'),
    ),
    isClientError(SmtpClientErrorCode.ConnectionLost),
  );
  assert.equal(s.messages.length, 0);
  assert.deepEqual(s.rejectedRecipients, [{ recipient: 'close421-1@example.com', code: 421 }]);
});

test('the server vanishing during DATA makes send() throw CONNECTION_LOST', async (t) => {
  const s = await sink(t);
  const client = await connect(t, s);
  await assert.rejects(
    client.send({ from: 'a@example.com', to: ['disconnect-in-data-1@example.com'] }, Buffer.from('x\r\n')),
    isClientError(SmtpClientErrorCode.ConnectionLost),
  );
  assert.equal(s.messages.length, 0);
});

test('connecting to a closed port throws PETREL_ERR_SMTP_CONNECT', async () => {
  const port = await closedPort();
  await assert.rejects(
    SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example', timeoutMs: 5_000 }),
    (error: unknown) => {
      assert.ok(error instanceof SmtpClientError);
      assert.equal(error.code, SmtpClientErrorCode.Connect);
      assert.equal(error.code, 'PETREL_ERR_SMTP_CONNECT');
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    },
  );
});

test('a server that never answers makes connect() throw PETREL_ERR_SMTP_TIMEOUT', async (t) => {
  const port = await rawServer(t, () => undefined);
  await assert.rejects(
    SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example', timeoutMs: 200 }),
    isClientError(SmtpClientErrorCode.Timeout),
  );
});

test('a refusing greeting throws REJECTED with the reply', async (t) => {
  const port = await rawServer(t, (socket) => socket.end('554-5.7.1 go away\r\n554 5.7.1 really\r\n'));
  await assert.rejects(
    SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example', timeoutMs: 5_000 }),
    (error: unknown) => {
      assert.ok(error instanceof SmtpClientError);
      assert.equal(error.code, SmtpClientErrorCode.Rejected);
      assert.deepEqual(error.reply, { code: 554, enhanced: '5.7.1', lines: ['go away', 'really'] });
      return true;
    },
  );
});

test('a malformed reply throws PETREL_ERR_SMTP_PROTOCOL', async (t) => {
  const port = await rawServer(t, (socket) => socket.write('220 hi\r\n250_what\r\n'));
  await assert.rejects(
    SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example', timeoutMs: 5_000 }),
    isClientError(SmtpClientErrorCode.Protocol),
  );
});

/**
 * A minimal server without PIPELINING: records each command and fails the test if a client
 * sends a command before the previous reply (more than one command line in a chunk).
 */
async function lockstepServer(t: TestContext, commands: string[], bodies: string[]): Promise<number> {
  return await rawServer(t, (socket) => {
    let data: string | undefined;
    let pending = '';
    socket.write('220 lockstep ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      if (data !== undefined) {
        data += chunk.toString('latin1');
        const end = data.indexOf('\r\n.\r\n');
        if (end === -1) return;
        bodies.push(data.slice(0, end + 2));
        assert.equal(data.length, end + 5, 'nothing after the final dot');
        data = undefined;
        socket.write('250 2.0.0 queued\r\n');
        return;
      }
      pending += chunk.toString('latin1');
      const lines = pending.split('\r\n');
      pending = lines.pop() ?? '';
      assert.ok(
        lines.length <= 1 && pending === '',
        `pipelined without PIPELINING: ${JSON.stringify(lines)}`,
      );
      const line = lines[0];
      if (line === undefined) return;
      commands.push(line);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') socket.write('250-lockstep\r\n250 8BITMIME\r\n');
      else if (verb === 'RCPT' && line.includes('permfail')) socket.write('550 5.1.1 no\r\n');
      else if (verb === 'DATA') {
        data = '';
        socket.write('354 go\r\n');
      } else if (verb === 'QUIT') socket.end('221 2.0.0 bye\r\n');
      else socket.write('250 2.0.0 ok\r\n');
    });
  });
}

test('without PIPELINING the client waits for each reply and resets after refused recipients', async (t) => {
  const commands: string[] = [];
  const bodies: string[] = [];
  const port = await lockstepServer(t, commands, bodies);
  const client = await SmtpClient.connect({ host: '127.0.0.1', port, localName: 'client.example' });
  t.after(() => client.close());
  assert.equal(client.extensions.has('PIPELINING'), false);
  const refused = await client.send(
    { from: 'a@example.com', to: ['permfail-1@example.com'] },
    Buffer.from('x\r\n'),
  );
  assert.deepEqual(refused.accepted, []);
  assert.equal(refused.rejected[0]?.reply.code, 550);
  assert.equal(refused.dataReply, undefined);
  const sent = await client.send(
    { from: 'a@example.com', to: ['ok@example.com', 'permfail-2@example.com'] },
    Buffer.from('.dot\r\n'),
  );
  assert.deepEqual(
    sent.accepted.map((a) => a.address),
    ['ok@example.com'],
  );
  assert.equal(sent.dataReply?.code, 250);
  await client.quit();
  assert.deepEqual(commands, [
    'EHLO client.example',
    'MAIL FROM:<a@example.com>',
    'RCPT TO:<permfail-1@example.com>',
    'RSET',
    'MAIL FROM:<a@example.com>',
    'RCPT TO:<ok@example.com>',
    'RCPT TO:<permfail-2@example.com>',
    'DATA',
    'QUIT',
  ]);
  assert.deepEqual(bodies, ['..dot\r\n']);
});
