// The client against a real Postfix smtpd over loopback: STARTTLS with a validated certificate,
// EHLO again over TLS, PIPELINING/CHUNKING as Postfix offers them; Postfix relays the message on
// to the scriptable sink, where the exact bytes arrive.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ReceivedMessage, startPostfix, startSmtpSink, waitFor } from '@petrel/test-harness';
import { testCertificate } from '../test/wire.ts';
import { SmtpClient } from './client.ts';

test('delivers to Postfix over STARTTLS (required, validated), and Postfix relays it on', {
  timeout: 120_000,
}, async (t) => {
  const arrived = Promise.withResolvers<ReceivedMessage>();
  const sink = await startSmtpSink({ onMessage: (m) => arrived.resolve(m) });
  t.after(() => sink.close());
  const cert = testCertificate();
  const postfix = await startPostfix(t.after.bind(t), {
    relayHost: sink.host,
    relayPort: sink.port,
    tls: 'none',
    smtpdTls: { chain: cert.cert, key: cert.key },
  });
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port: postfix.submitPort,
    localName: 'client.example',
    tls: 'required',
    ca: cert.cert,
    servername: 'localhost',
    timeoutMs: 30_000,
  });
  t.after(() => client.close());
  assert.equal(client.tls.used, true);
  assert.equal(client.tls.authorized, true);
  assert.match(client.tls.version ?? '', /^TLSv1\.[23]$/);
  assert.ok(client.extensions.has('PIPELINING'));
  assert.equal(client.extensions.has('STARTTLS'), false, 'extensions re-read over TLS');
  const body = `From: a@example.com\r\nTo: rcpt@elsewhere.example\r\nSubject: via postfix\r\nMessage-ID: <client-postfix@petrel.test>\r\n\r\n.dot line\r\nčeština\r\n`;
  const result = await client.send(
    { from: 'a@example.com', to: ['rcpt@elsewhere.example', 'other@elsewhere.example'] },
    Buffer.from(body),
  );
  assert.deepEqual(
    result.recipients.map((r) => [r.address, r.status]),
    [
      ['rcpt@elsewhere.example', 'delivered'],
      ['other@elsewhere.example', 'delivered'],
    ],
  );
  assert.match(result.dataReply?.lines.join(' ') ?? '', /queued as/);
  assert.equal(result.transfer.body, '8BITMIME');
  // Postfix 3.x offers CHUNKING: the message went as BDAT, pipelined MAIL/RCPT before it.
  assert.equal(result.transfer.chunking, true);
  assert.equal(result.transfer.pipelining, true);
  const m = await arrived.promise;
  assert.deepEqual([...m.rcptTo].sort(), ['other@elsewhere.example', 'rcpt@elsewhere.example']);
  assert.equal(m.mailFrom, 'a@example.com');
  const text = m.data.toString('utf8');
  // Postfix's Received field records that we used TLS (ESMTPS, RFC 3848); our body follows unchanged.
  assert.match(text, /^Received: from client\.example [^\r]*\r\n\tby postfix\.test \(Postfix\) with ESMTPS /);
  assert.ok(text.endsWith('\r\n\r\n.dot line\r\nčeština\r\n'), text);

  // Two more on the connection, the second queued behind the first: its MAIL and RCPT go out
  // right after the first one's BDAT LAST chunk, and Postfix takes both.
  const more = [...sink.messages].length;
  const first = client.send(
    { from: 'a@example.com', to: ['p1@elsewhere.example'] },
    Buffer.from('Subject: p1\r\n\r\none\r\n'),
  );
  assert.equal(client.acceptsFollower, true);
  const second = client.send(
    { from: 'a@example.com', to: ['p2@elsewhere.example'] },
    Buffer.from('Subject: p2\r\n\r\ntwo\r\n'),
  );
  assert.equal((await first).recipients[0]?.status, 'delivered');
  assert.equal((await second).recipients[0]?.status, 'delivered');
  await client.quit();
  await waitFor(() => sink.messages.length >= more + 2, {
    timeoutMs: 30_000,
    message: 'both relayed by Postfix',
  });
  assert.deepEqual(
    sink.messages
      .slice(more)
      .map((x) => x.rcptTo[0])
      .sort(),
    ['p1@elsewhere.example', 'p2@elsewhere.example'],
  );
  await postfix.stop();
});
