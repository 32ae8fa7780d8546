// The client against our own ServerSession over loopback: extensions, pipelining, SIZE, 8BITMIME,
// SMTPUTF8, DSN, REQUIRETLS, BDAT/BINARYMIME, STARTTLS, AUTH and connection reuse.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { startServer, type TestServer, testCertificate } from '../test/wire.ts';
import {
  type ClientOptions,
  LocalRefusalReason,
  SmtpClient,
  SmtpClientError,
  SmtpClientErrorCode,
} from './client.ts';
import type { MailParameters } from './params.ts';
import { reply } from './reply.ts';
import type { AuthHandler, ServerSessionOptions } from './server.ts';

const cert = testCertificate();
const tls = () => ({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.2' as const });
const auth: AuthHandler = {
  credentials: { password: (u) => (u === 'relay@example.org' ? 'secret' : undefined) },
};

async function client(
  t: TestContext,
  port: number,
  options: Partial<ClientOptions> = {},
): Promise<SmtpClient> {
  const c = await SmtpClient.connect({
    host: '127.0.0.1',
    port,
    localName: 'client.example',
    timeoutMs: 5_000,
    ...options,
  });
  t.after(() => c.close());
  return c;
}

/** Records what the server side of connection `index` reads from now on. */
function spy(server: TestServer, index = 0): { chunks: string[]; text: () => string } {
  const socket = server.sockets[index] as Socket;
  const chunks: string[] = [];
  socket.on('data', (chunk: Buffer) => void chunks.push(chunk.toString('latin1')));
  return { chunks, text: () => chunks.join('') };
}

function isClientError(code: SmtpClientErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof SmtpClientError, `expected SmtpClientError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

async function serverWithMailLog(
  t: TestContext,
  options: Partial<ServerSessionOptions> = {},
): Promise<{ server: TestServer; mails: MailParameters[] }> {
  const mails: MailParameters[] = [];
  const server = await startServer(t, options, {
    auth,
    mailFrom: (_s, _p, parameters) => {
      mails.push(parameters);
      return undefined;
    },
  });
  return { server, mails };
}

test('EHLO extensions are read; MAIL, every RCPT and DATA go in one write with PIPELINING', async (t) => {
  const server = await startServer(t, { maxMessageSize: 100_000, maxRecipients: 10 });
  const c = await client(t, server.port);
  assert.equal(c.esmtp, true);
  for (const keyword of [
    'PIPELINING',
    'SIZE',
    '8BITMIME',
    'SMTPUTF8',
    'DSN',
    'CHUNKING',
    'ENHANCEDSTATUSCODES',
  ])
    assert.ok(c.extensions.has(keyword), keyword);
  assert.equal(c.extensions.get('SIZE'), '100000');
  // CHUNKING would replace DATA: the client acts as if it were not offered.
  c.extensions.delete('CHUNKING');
  const wire = spy(server);
  const result = await c.send(
    { from: 'a@example.com', to: ['b@example.com', 'refuse-1@example.com', 'c@example.com'] },
    Buffer.from('Subject: x\r\n\r\n.dot\r\n'),
  );
  const first = wire.chunks[0] ?? '';
  assert.equal(
    first,
    'MAIL FROM:<a@example.com> SIZE=20\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<refuse-1@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n',
  );
  assert.deepEqual(
    result.recipients.map((r) => [r.address, r.status, r.reply.code, r.reply.enhanced]),
    [
      ['b@example.com', 'delivered', 250, '2.0.0'],
      ['refuse-1@example.com', 'failed', 550, '5.1.1'],
      ['c@example.com', 'delivered', 250, '2.0.0'],
    ],
  );
  assert.equal(server.delivered[0]?.body.toString(), 'Subject: x\r\n\r\n.dot\r\n');
  assert.equal(server.delivered[0]?.tx.transfer, 'DATA');
  assert.deepEqual(server.delivered[0]?.recipients, ['b@example.com', 'c@example.com']);
});

test('CHUNKING: BDAT chunks of the configured size, the last with LAST, exact bytes', async (t) => {
  const server = await startServer(t, { maxMessageSize: 100_000 });
  const c = await client(t, server.port, { chunkSize: 100 });
  const wire = spy(server);
  const message = Buffer.from(`Subject: chunks\r\n\r\n${'.line of text\r\n'.repeat(20)}`);
  const result = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, message);
  assert.equal(result.transfer.chunking, true);
  assert.equal(result.dataReply?.code, 250);
  assert.deepEqual(server.delivered[0]?.body, message);
  assert.equal(server.delivered[0]?.tx.transfer, 'BDAT');
  const bdat = [...wire.text().matchAll(/BDAT (\d+)( LAST)?\r\n/g)].map((m) => `${m[1]}${m[2] ?? ''}`);
  assert.equal(message.length, 319);
  assert.deepEqual(bdat, ['100', '100', '100', '19 LAST']);
  // No dot-stuffing with BDAT.
  assert.ok(!wire.text().includes('..line'));
});

test('BINARYMIME goes with BDAT to a server offering it, and is refused locally (5.6.3) without CHUNKING', async (t) => {
  const { server, mails } = await serverWithMailLog(t);
  const c = await client(t, server.port);
  const binary = Buffer.from([0x00, 0xff, 0x0a, 0x2e, 0x0d, 0x0a, 0x2e, 0x0d, 0x0a, 0x01]);
  const result = await c.send({ from: 'a@example.com', to: ['b@example.com'], body: 'BINARYMIME' }, binary);
  assert.equal(result.dataReply?.code, 250);
  assert.deepEqual(server.delivered[0]?.body, binary);
  assert.equal(server.delivered[0]?.bodyType, 'BINARYMIME');
  assert.equal(mails[0]?.body, 'BINARYMIME');

  c.extensions.delete('CHUNKING');
  const refused = await c.send({ from: 'a@example.com', to: ['b@example.com'], body: 'BINARYMIME' }, binary);
  assert.equal(refused.localRefusal?.reason, LocalRefusalReason.BinaryMimeUnsupported);
  assert.equal(refused.localRefusal?.reply.enhanced, '5.6.3');
  assert.equal(mails.length, 1, 'no MAIL for the refused message');
});

test('SIZE: declared on MAIL; a message over the advertised limit is refused locally with 5.3.4 and no MAIL', async (t) => {
  const { server, mails } = await serverWithMailLog(t, { maxMessageSize: 1000 });
  const c = await client(t, server.port);
  const wire = spy(server);
  const big = await c.send(
    { from: 'a@example.com', to: ['b@example.com', 'c@example.com'] },
    Buffer.alloc(1001, 'a'),
  );
  assert.equal(big.localRefusal?.reason, LocalRefusalReason.MessageTooBig);
  assert.equal(big.mailReply.code, 552);
  assert.equal(big.mailReply.enhanced, '5.3.4');
  assert.deepEqual(
    big.recipients.map((r) => [r.address, r.status, r.reply.enhanced]),
    [
      ['b@example.com', 'failed', '5.3.4'],
      ['c@example.com', 'failed', '5.3.4'],
    ],
  );
  assert.deepEqual(big.accepted, []);
  assert.equal(mails.length, 0);
  assert.equal(wire.text(), '', 'nothing was sent for the refused message');
  assert.equal(c.usable, true);
  const fits = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('small\r\n'));
  assert.equal(fits.dataReply?.code, 250);
  assert.equal(mails[0]?.size, 7);
});

test('8BITMIME and SMTPUTF8 are declared when the message needs them', async (t) => {
  const { server, mails } = await serverWithMailLog(t);
  const c = await client(t, server.port);
  const seven = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('plain\r\n'));
  assert.equal(seven.transfer.body, '7BIT');
  const eight = await c.send(
    { from: 'a@example.com', to: ['b@example.com'] },
    Buffer.from('Subject: x\r\n\r\nčeština\r\n'),
  );
  assert.equal(eight.transfer.body, '8BITMIME');
  assert.equal(eight.transfer.smtputf8, false);
  const utf8 = await c.send({ from: 'ålice@exämple.com', to: ['bøb@example.com'] }, Buffer.from('hi\r\n'));
  assert.equal(utf8.transfer.smtputf8, true);
  // A message received with SMTPUTF8 needs it when its header is not ASCII.
  const header = await c.send(
    { from: 'a@example.com', to: ['b@example.com'], smtputf8: true },
    Buffer.from('Subject: ünïcode\r\n\r\nbody\r\n'),
  );
  assert.equal(header.transfer.smtputf8, true);
  const asciiHeader = await c.send(
    { from: 'a@example.com', to: ['b@example.com'], smtputf8: true },
    Buffer.from('Subject: plain\r\n\r\nbödy\r\n'),
  );
  assert.equal(asciiHeader.transfer.smtputf8, false);
  assert.deepEqual(
    mails.map((m) => [m.body, m.smtputf8]),
    [
      ['7BIT', false],
      ['8BITMIME', false],
      ['7BIT', true],
      ['8BITMIME', true],
      ['8BITMIME', false],
    ],
  );
  assert.deepEqual(server.delivered[2]?.recipients, ['bøb@example.com']);
  assert.equal(server.delivered[2]?.sender, 'ålice@exämple.com');
});

test('DSN parameters are passed through, xtext-encoded, when the server offers DSN', async (t) => {
  const { server, mails } = await serverWithMailLog(t);
  const c = await client(t, server.port);
  const wire = spy(server);
  const result = await c.send(
    {
      from: 'a@example.com',
      to: [
        { address: 'b@example.com', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;B+x=y@example.com' },
        { address: 'c@example.com', notify: ['NEVER'] },
        'd@example.com',
      ],
      dsn: { ret: 'HDRS', envid: 'id=1+2 x' },
    },
    Buffer.from('hi\r\n'),
  );
  assert.equal(result.transfer.dsn, true);
  assert.equal(result.dataReply?.code, 250);
  assert.match(wire.text(), /^MAIL FROM:<a@example\.com> SIZE=4 RET=HDRS ENVID=id\+3D1\+2B2\+20x\r\n/);
  assert.match(
    wire.text(),
    /RCPT TO:<b@example\.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B\+2Bx\+3Dy@example\.com\r\n/,
  );
  assert.equal(mails[0]?.ret, 'HDRS');
  assert.equal(mails[0]?.envid, 'id=1+2 x');
  const dsn = server.delivered[0]?.tx.recipients.map((r) => [r.mailbox.address, r.dsn.notify, r.dsn.orcpt]);
  assert.deepEqual(dsn, [
    ['b@example.com', ['SUCCESS', 'FAILURE'], 'rfc822;B+x=y@example.com'],
    ['c@example.com', ['NEVER'], undefined],
    ['d@example.com', [], undefined],
  ]);
  // Without DSN at the server, no DSN parameter is sent (the caller reports "relayed").
  c.extensions.delete('DSN');
  const plain = await c.send(
    { from: 'a@example.com', to: [{ address: 'b@example.com', notify: ['SUCCESS'] }], dsn: { ret: 'FULL' } },
    Buffer.from('hi\r\n'),
  );
  assert.equal(plain.transfer.dsn, false);
  assert.equal(mails[1]?.ret, undefined);
  assert.deepEqual(server.delivered[1]?.tx.recipients[0]?.dsn.notify, []);
});

test('STARTTLS opportunistic: used with an unvalidated certificate, reported; EHLO again and extensions re-read', async (t) => {
  const server = await startServer(t, { tls }, { auth });
  const c = await client(t, server.port);
  assert.equal(c.tls.offered, true);
  assert.equal(c.tls.used, true);
  assert.match(c.tls.version ?? '', /^TLSv1\.[23]$/);
  assert.ok((c.tls.cipher ?? '') !== '');
  assert.equal(c.tls.authorized, false);
  assert.equal(c.tls.authorizationError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  // RFC 3207 §4.2: the extensions are those offered over TLS.
  assert.equal(c.extensions.has('STARTTLS'), false);
  assert.equal(c.extensions.has('REQUIRETLS'), true);
  assert.match(c.extensions.get('AUTH') ?? '', /PLAIN/);
  const result = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('secret\r\n'));
  assert.equal(result.tls.used, true);
  assert.equal(result.dataReply?.code, 250);
  const info = server.delivered[0]?.session;
  assert.match(info?.tls?.protocol ?? '', /^TLSv1\.[23]$/);
  assert.equal(info?.helo, 'client.example');
});

test('STARTTLS with the right CA and name validates; a wrong name is reported', async (t) => {
  const server = await startServer(t, { tls });
  const good = await client(t, server.port, { ca: cert.cert, servername: 'localhost' });
  assert.equal(good.tls.authorized, true);
  assert.equal(good.tls.authorizationError, undefined);
  const wrongName = await client(t, server.port, { ca: cert.cert, servername: 'mx.other.example' });
  assert.equal(wrongName.tls.used, true);
  assert.equal(wrongName.tls.authorized, false);
  assert.equal(wrongName.tls.authorizationError, 'ERR_TLS_CERT_ALTNAME_INVALID');
});

test("tls 'required': no STARTTLS, or a certificate that does not validate, is a TLS error", async (t) => {
  const plain = await startServer(t, {});
  await assert.rejects(
    SmtpClient.connect({
      host: '127.0.0.1',
      port: plain.port,
      localName: 'c.example',
      tls: 'required',
      timeoutMs: 5_000,
    }),
    isClientError(SmtpClientErrorCode.Tls),
  );
  const secure = await startServer(t, { tls });
  await assert.rejects(
    SmtpClient.connect({
      host: '127.0.0.1',
      port: secure.port,
      localName: 'c.example',
      tls: 'required',
      timeoutMs: 5_000,
    }),
    (error: unknown) => {
      assert.ok(error instanceof SmtpClientError);
      assert.equal(error.code, SmtpClientErrorCode.Tls);
      assert.match(error.message, /DEPTH_ZERO_SELF_SIGNED_CERT/);
      return true;
    },
  );
  // Validated: fine; or explicitly accepting any certificate.
  const ok = await client(t, secure.port, { tls: 'required', ca: cert.cert, servername: 'localhost' });
  assert.equal(ok.tls.authorized, true);
  const any = await client(t, secure.port, { tls: 'required', rejectUnauthorized: false });
  assert.equal(any.tls.used, true);
  assert.equal(any.tls.authorized, false);
  // 'none' never starts TLS.
  const none = await client(t, secure.port, { tls: 'none' });
  assert.equal(none.tls.used, false);
  assert.equal(none.tls.offered, true);
  assert.equal(none.extensions.has('STARTTLS'), true);
});

test('opportunistic: a failed handshake falls back to a new plaintext connection, reported', async (t) => {
  // The server only speaks TLS 1.0/1.1 (when OpenSSL allows it at all); the client requires 1.2+.
  const server = await startServer(t, {
    tls: () => ({
      cert: cert.cert,
      key: cert.key,
      minVersion: 'TLSv1' as const,
      maxVersion: 'TLSv1.1' as const,
    }),
  });
  const c = await client(t, server.port);
  assert.equal(c.tls.used, false);
  assert.match(c.tls.failure ?? '', /TLS handshake failed/);
  assert.equal(server.sessions.length, 2);
  const result = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('x\r\n'));
  assert.equal(result.dataReply?.code, 250);
  assert.equal(server.delivered[0]?.session.tls, undefined);
  await assert.rejects(
    SmtpClient.connect({
      host: '127.0.0.1',
      port: server.port,
      localName: 'c.example',
      tls: 'required',
      timeoutMs: 5_000,
    }),
    isClientError(SmtpClientErrorCode.Tls),
  );
});

test('REQUIRETLS: on MAIL over validated TLS; refused locally in clear (5.7.10) or unvalidated', async (t) => {
  const { server, mails } = await serverWithMailLog(t, { tls });
  const secure = await client(t, server.port, { ca: cert.cert, servername: 'localhost' });
  const result = await secure.send(
    { from: 'a@example.com', to: ['b@example.com'], requireTls: true },
    Buffer.from('x\r\n'),
  );
  assert.equal(result.dataReply?.code, 250);
  assert.equal(mails[0]?.requireTls, true);

  const clear = await client(t, server.port, { tls: 'none' });
  const refused = await clear.send(
    { from: 'a@example.com', to: ['b@example.com'], requireTls: true },
    Buffer.from('x\r\n'),
  );
  assert.equal(refused.localRefusal?.reason, LocalRefusalReason.RequireTlsNoTls);
  assert.equal(refused.localRefusal?.reply.enhanced, '5.7.10');
  const unvalidated = await client(t, server.port);
  const refused2 = await unvalidated.send(
    { from: 'a@example.com', to: ['b@example.com'], requireTls: true },
    Buffer.from('x\r\n'),
  );
  assert.equal(refused2.localRefusal?.reason, LocalRefusalReason.RequireTlsNoTls);
  assert.equal(mails.length, 1);
  // RFC 8689 §5: a next hop without REQUIRETLS gets nothing (5.7.30).
  secure.extensions.delete('REQUIRETLS');
  const unsupported = await secure.send(
    { from: 'a@example.com', to: ['b@example.com'], requireTls: true },
    Buffer.from('x\r\n'),
  );
  assert.equal(unsupported.localRefusal?.reason, LocalRefusalReason.RequireTlsUnsupported);
  assert.equal(unsupported.localRefusal?.reply.enhanced, '5.7.30');
  assert.equal(mails.length, 1);
});

test('AUTH PLAIN and LOGIN over TLS; 535 is a typed error; never in clear unless allowed', async (t) => {
  const server = await startServer(t, { tls }, { auth });
  for (const mechanism of ['PLAIN', 'LOGIN'] as const) {
    const c = await client(t, server.port, {
      auth: { username: 'relay@example.org', password: 'secret', mechanisms: [mechanism] },
    });
    assert.equal(c.authenticated, mechanism);
    const result = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('x\r\n'));
    assert.equal(result.dataReply?.code, 250);
    assert.equal(server.delivered.at(-1)?.session.auth?.identity, 'relay@example.org');
  }
  await assert.rejects(
    SmtpClient.connect({
      host: '127.0.0.1',
      port: server.port,
      localName: 'c.example',
      timeoutMs: 5_000,
      auth: { username: 'relay@example.org', password: 'wrong' },
    }),
    (error: unknown) => {
      assert.ok(error instanceof SmtpClientError);
      assert.equal(error.code, SmtpClientErrorCode.AuthFailed);
      assert.equal(error.reply?.code, 535);
      assert.equal(error.reply?.enhanced, '5.7.8');
      assert.ok(!error.message.includes('wrong'), 'no password in the message');
      return true;
    },
  );
  await assert.rejects(
    SmtpClient.connect({
      host: '127.0.0.1',
      port: server.port,
      localName: 'c.example',
      timeoutMs: 5_000,
      tls: 'none',
      auth: { username: 'relay@example.org', password: 'secret' },
    }),
    isClientError(SmtpClientErrorCode.AuthUnavailable),
  );
});

test('connection reuse: RSET only after a transaction that failed midway, messagesSent, state', async (t) => {
  const server = await startServer(t, {});
  const c = await client(t, server.port);
  assert.equal(c.state, 'idle');
  assert.equal(c.usable, true);
  const wire = spy(server);
  const first = await c.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('1\r\n'));
  assert.equal(first.dataReply?.code, 250);
  const refused = await c.send({ from: 'a@example.com', to: ['refuse-1@example.com'] }, Buffer.from('2\r\n'));
  assert.deepEqual(refused.accepted, []);
  assert.equal(c.usable, true);
  const third = await c.send({ from: 'a@example.com', to: ['c@example.com'] }, Buffer.from('3\r\n'));
  assert.equal(third.dataReply?.code, 250);
  const commands = wire
    .text()
    .split('\r\n')
    .filter((l) => /^[A-Z]{4}\b/.test(l))
    .map((l) => l.split(' ')[0]);
  assert.deepEqual(commands, ['MAIL', 'RCPT', 'BDAT', 'MAIL', 'RCPT', 'RSET', 'MAIL', 'RCPT', 'BDAT']);
  assert.equal(c.messagesSent, 2);
  assert.equal(server.delivered.length, 2);
  // One transaction in progress and one queued behind it (pipelined); a third is refused.
  const pending = c.send({ from: 'a@example.com', to: ['d@example.com'] }, Buffer.from('4\r\n'));
  assert.equal(c.state, 'busy');
  assert.equal(c.acceptsFollower, true);
  const queued = c.send({ from: 'a@example.com', to: ['e@example.com'] }, Buffer.from('5\r\n'));
  assert.equal(c.acceptsFollower, false);
  await assert.rejects(
    c.send({ from: 'a@example.com', to: ['f@example.com'] }, Buffer.from('x\r\n')),
    isClientError(SmtpClientErrorCode.Unusable),
  );
  assert.equal((await pending).dataReply?.code, 250);
  assert.equal((await queued).dataReply?.code, 250);
  assert.equal(c.messagesSent, 4);
  await c.quit();
  assert.equal(c.state, 'closed');
  assert.equal(c.usable, false);
  await assert.rejects(
    c.send({ from: 'a@example.com', to: ['f@example.com'] }, Buffer.from('6\r\n')),
    isClientError(SmtpClientErrorCode.Unusable),
  );
});

test('a server that closes an idle connection makes the client unusable', async (t) => {
  const server = await startServer(t, {}, {});
  const c = await client(t, server.port);
  assert.equal(c.usable, true);
  server.sockets[0]?.destroy();
  await c.closed;
  assert.equal(c.state, 'closed');
  assert.equal(c.usable, false);
});

test('a 5xx to DATA (BINARYMIME sent with DATA is refused by the server) ends the transaction for all', async (t) => {
  const server = await startServer(t, {}, { message: async () => reply(554, '5.6.0', 'no') });
  const c = await client(t, server.port);
  c.extensions.delete('CHUNKING');
  const result = await c.send(
    { from: 'a@example.com', to: ['b@example.com', 'c@example.com'] },
    Buffer.from('x\r\n'),
  );
  assert.equal(result.dataReply?.code, 554);
  assert.deepEqual(
    result.recipients.map((r) => r.status),
    ['failed', 'failed'],
  );
  assert.equal(c.messagesSent, 0);
});
