// The client's verifyPeer hook (used for DANE, RFC 7672 §3) against our own ServerSession over
// loopback: a refused peer fails before EHLO/MAIL over TLS and never falls back to plaintext.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { startServer, type TestServer, testCertificate } from '../test/wire.ts';
import { type ClientOptions, SmtpClient, SmtpClientError, SmtpClientErrorCode } from './client.ts';

const cert = testCertificate();
const tls = () => ({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.2' as const });
const fingerprint = new X509Certificate(cert.cert).fingerprint256;

function connect(port: number, options: Partial<ClientOptions>): Promise<SmtpClient> {
  return SmtpClient.connect({
    host: '127.0.0.1',
    port,
    servername: 'mx.example.test',
    localName: 'client.example',
    timeoutMs: 5_000,
    ...options,
  });
}

/** A server that records MAIL FROM, and what it saw on each connection. */
async function server(t: TestContext): Promise<{ server: TestServer; mails: string[] }> {
  const mails: string[] = [];
  const s = await startServer(
    t,
    { tls },
    {
      mailFrom: (_session, path) => {
        mails.push(path.mailbox?.address ?? '');
        return undefined;
      },
    },
  );
  return { server: s, mails };
}

function refusedBy(reason: Error): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof SmtpClientError, `expected SmtpClientError, got ${String(error)}`);
    assert.equal(error.code, SmtpClientErrorCode.Tls);
    assert.equal(error.phase, 'starttls');
    assert.equal(error.cause, reason);
    assert.match(error.message, /mx\.example\.test refused by verifyPeer: no TLSA record matches/);
    return true;
  };
}

test("verifyPeer accepting: tls 'required' works with a certificate PKIX would refuse; peerVerified, REQUIRETLS allowed", async (t) => {
  const { server: s, mails } = await server(t);
  const seen: string[] = [];
  const c = await connect(s.port, {
    tls: 'required',
    verifyPeer: (socket: TLSSocket) => {
      seen.push(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
      return undefined;
    },
  });
  t.after(() => c.close());
  assert.deepEqual(seen, [fingerprint], 'called once, with the TLS socket of the server');
  assert.equal(c.tls.used, true);
  assert.equal(c.tls.authorized, false, 'self-signed and for another name: PKIX says no');
  assert.equal(c.tls.peerVerified, true);
  const result = await c.send(
    { from: 'a@example.com', to: ['b@example.com'], requireTls: true },
    Buffer.from('Subject: x\r\n\r\nhi\r\n'),
  );
  assert.equal(result.localRefusal, undefined, 'RFC 8689 §4.2.1: DANE counts as verified');
  assert.equal(result.dataReply?.code, 250);
  assert.deepEqual(mails, ['a@example.com']);
  assert.equal(s.delivered.length, 1);

  // Without verifyPeer, tls 'required' still refuses the same certificate.
  await assert.rejects(connect(s.port, { tls: 'required' }), /not valid: DEPTH_ZERO_SELF_SIGNED_CERT/);
  // An explicit rejectUnauthorized applies as well as verifyPeer.
  await assert.rejects(
    connect(s.port, { tls: 'required', rejectUnauthorized: true, verifyPeer: () => undefined }),
    /not valid/,
  );
});

test("verifyPeer refusing: a Tls error, no MAIL FROM, with 'required' and 'opportunistic' alike, no plaintext retry", async (t) => {
  const { server: s, mails } = await server(t);
  const reason = new Error('no TLSA record matches');
  await assert.rejects(connect(s.port, { tls: 'required', verifyPeer: () => reason }), refusedBy(reason));
  assert.equal(s.sessions.length, 1);
  // A thrown error counts the same; opportunistic TLS does not fall back to a plaintext connection.
  await assert.rejects(
    connect(s.port, {
      tls: 'opportunistic',
      verifyPeer: () => {
        throw reason;
      },
    }),
    refusedBy(reason),
  );
  assert.equal(s.sessions.length, 2, 'no second, plaintext connection');
  for (const socket of s.sockets) if (!socket.destroyed) await once(socket, 'close');
  assert.deepEqual(mails, []);
  assert.equal(s.delivered.length, 0);
});
