// DANE (RFC 7672) end to end over loopback: TLSA records from an in-process DNS server that sets
// AD like a trusted validating resolver (and from dnsmasq, which does not validate), SMTP servers
// with STARTTLS and certificates from the harness, and the SMTP client with daneVerifier.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { Rcode, RecordType, type TlsaRecord, TlsaResolver } from '@petrel/dns';
import { type ServedAnswer, startWireDnsServer, type ZoneRecord, zoneHandler } from '@petrel/dns/testing';
import { reply, ServerSession, SmtpClient, SmtpClientError, SmtpClientErrorCode } from '@petrel/smtp';
import { issueCertificate, startDnsServer, type TestCertificate } from '@petrel/test-harness';
import {
  DaneError,
  DaneErrorCode,
  type DanePolicy,
  type DaneResult,
  danePolicy,
  daneVerifier,
  daneVerify,
  peerChain,
  recordsKey,
  usableRecords,
} from './dane.ts';

const MX = 'mx.dane.test';

/** A TLSA record for `pem` as an operator would publish it. */
function tlsaFor(pem: Buffer, usage: number, selector: number, matchingType: number): TlsaRecord {
  const cert = new X509Certificate(pem);
  const content = selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' });
  const data =
    matchingType === 0
      ? content
      : createHash(matchingType === 1 ? 'sha256' : 'sha512')
          .update(content)
          .digest();
  return { usage, selector, matchingType, data };
}

function zoneTlsa(name: string, records: readonly TlsaRecord[]): ZoneRecord[] {
  return records.map((r) => ({ name, ttl: 300, data: { type: 'TLSA' as const, ...r } }));
}

interface SmtpServer {
  readonly port: number;
  /** MAIL FROM addresses received, over every connection. */
  readonly mails: string[];
  readonly delivered: Buffer[];
}

/** An SMTP server with STARTTLS presenting `chain` (PEM, leaf first) and `key`. */
async function smtpServer(
  t: TestContext,
  chain: readonly TestCertificate[],
  key: Buffer,
): Promise<SmtpServer> {
  const mails: string[] = [];
  const delivered: Buffer[] = [];
  const sockets = new Set<Socket>();
  const runs: Promise<void>[] = [];
  const cert = Buffer.concat(chain.map((c) => c.cert));
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const session = new ServerSession(
      socket,
      `s${runs.length}`,
      {
        mailFrom: (_s, path) => {
          mails.push(path.mailbox?.address ?? '');
          return undefined;
        },
        rcptTo: () => undefined,
        message: async (_s, _tx, body) => {
          delivered.push(Buffer.from(body));
          return reply(250, '2.0.0', 'queued');
        },
      },
      { hostname: MX, maxMessageSize: 100_000, maxRecipients: 10, tls: () => ({ cert, key }) },
    );
    runs.push(session.run().catch(() => undefined));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    server.close();
    await Promise.all(runs);
  });
  return { port: (server.address() as AddressInfo).port, mails, delivered };
}

/** A DNS server answering like a validating resolver; `authenticated: false` makes it insecure. */
async function resolverFor(
  t: TestContext,
  records: readonly ZoneRecord[],
  options: {
    authenticated?: boolean;
    override?: (name: string) => ServedAnswer | undefined;
    /** Short only where a test waits for the timeout: the server shares this loaded process. */
    timeoutMs?: number;
  } = {},
) {
  const zone = zoneHandler(records, { authenticated: options.authenticated ?? true });
  const dns = await startWireDnsServer((q) => options.override?.(q.name) ?? zone(q), {
    after: t.after.bind(t),
  });
  const resolver = new TlsaResolver({
    servers: [dns.address],
    timeoutMs: options.timeoutMs ?? 3_000,
    tries: 1,
  });
  return { dns, deps: { tlsa: (name: string) => resolver.tlsa(name) } };
}

/** One delivery to the server as the worker will make it for a 'dane' policy. */
async function deliver(port: number, policy: DanePolicy, results: DaneResult[] = []) {
  assert.equal(policy.kind, 'dane', JSON.stringify(policy));
  if (policy.kind !== 'dane') throw new Error('unreachable');
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port,
    servername: MX,
    localName: 'relay.petrel.test',
    tls: 'required',
    timeoutMs: 5_000,
    verifyPeer: daneVerifier(policy.records, MX, { observe: (r) => results.push(r) }),
  });
  try {
    return await client.send(
      { from: 'sender@petrel.test', to: ['rcpt@dane.test'] },
      Buffer.from('Subject: dane\r\n\r\nhello\r\n'),
    );
  } finally {
    await client.quit();
  }
}

function refusedWith(code: DaneErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof SmtpClientError, `expected SmtpClientError, got ${String(error)}`);
    assert.equal(error.code, SmtpClientErrorCode.Tls);
    assert.ok(error.cause instanceof DaneError, 'the cause is the DANE failure');
    assert.equal(error.cause.code, code, error.cause.message);
    return true;
  };
}

test('DANE-EE 3 1 1 matching: delivered over TLS to a self-signed certificate for another name', async (t) => {
  const self = issueCertificate(['unrelated.example']);
  const smtp = await smtpServer(t, [self], self.key);
  const { deps } = await resolverFor(t, zoneTlsa(`_${smtp.port}._tcp.${MX}`, [tlsaFor(self.cert, 3, 1, 1)]));
  const policy = await danePolicy(MX, smtp.port, deps);
  assert.equal(policy.kind, 'dane');
  assert.equal(policy.tlsaName, `_${smtp.port}._tcp.${MX}`, 'the TLSA name carries the port connected to');
  const results: DaneResult[] = [];
  const result = await deliver(smtp.port, policy, results);
  assert.equal(result.dataReply?.code, 250);
  assert.equal(result.tls.used, true);
  assert.equal(result.tls.authorized, false, 'PKIX would have refused it');
  assert.equal(result.tls.peerVerified, true);
  assert.deepEqual(smtp.mails, ['sender@petrel.test']);
  assert.equal(smtp.delivered.length, 1);
  assert.equal(results[0]?.ok, true);
  assert.equal(results[0]?.ok && results[0].usage, 3);
});

test('DANE-EE not matching: refused after the handshake, before MAIL FROM', async (t) => {
  const self = issueCertificate([MX]);
  const other = issueCertificate([MX]);
  const smtp = await smtpServer(t, [self], self.key);
  const { deps } = await resolverFor(t, zoneTlsa(`_${smtp.port}._tcp.${MX}`, [tlsaFor(other.cert, 3, 1, 1)]));
  const policy = await danePolicy(MX, smtp.port, deps);
  await assert.rejects(deliver(smtp.port, policy), refusedWith(DaneErrorCode.NoMatch));
  assert.deepEqual(smtp.mails, []);
  assert.equal(smtp.delivered.length, 0);
});

test('DANE-TA 2 0 1: a chain to the matching CA with the MX name is delivered; a wrong name is refused', async (t) => {
  const ca = issueCertificate(['DANE Test CA']);
  const good = issueCertificate([MX], ca);
  const wrong = issueCertificate(['mx.elsewhere.test'], ca);
  const okServer = await smtpServer(t, [good, ca], good.key);
  const badServer = await smtpServer(t, [wrong, ca], wrong.key);
  const taRecord = tlsaFor(ca.cert, 2, 0, 1);
  const { deps } = await resolverFor(t, [
    ...zoneTlsa(`_${okServer.port}._tcp.${MX}`, [taRecord]),
    ...zoneTlsa(`_${badServer.port}._tcp.${MX}`, [taRecord]),
  ]);
  const results: DaneResult[] = [];
  const delivered = await deliver(okServer.port, await danePolicy(MX, okServer.port, deps), results);
  assert.equal(delivered.dataReply?.code, 250);
  assert.deepEqual(okServer.mails, ['sender@petrel.test']);
  const first = results[0];
  assert.ok(first?.ok);
  assert.equal(first.usage, 2);
  assert.equal(first.depth, 1);
  assert.equal(first.name, MX);

  await assert.rejects(
    deliver(badServer.port, await danePolicy(MX, badServer.port, deps)),
    refusedWith(DaneErrorCode.NameMismatch),
  );
  assert.deepEqual(badServer.mails, []);
});

test("DANE-TA whose CA the server does not send: refused ('2 0 1'), accepted by a bare key ('2 1 0')", async (t) => {
  const ca = issueCertificate(['DANE Test CA']);
  const leaf = issueCertificate([MX], ca);
  const smtp = await smtpServer(t, [leaf], leaf.key);
  const name = `_${smtp.port}._tcp.${MX}`;
  const { deps: certOnly } = await resolverFor(t, zoneTlsa(name, [tlsaFor(ca.cert, 2, 0, 1)]));
  await assert.rejects(
    deliver(smtp.port, await danePolicy(MX, smtp.port, certOnly)),
    refusedWith(DaneErrorCode.NoMatch),
  );
  const { deps: bareKey } = await resolverFor(t, zoneTlsa(name, [tlsaFor(ca.cert, 2, 1, 0)]));
  const result = await deliver(smtp.port, await danePolicy(MX, smtp.port, bareKey));
  assert.equal(result.dataReply?.code, 250);
});

test('insecure TLSA (no AD), from the in-process server and from dnsmasq: no DANE', async (t) => {
  const self = issueCertificate([MX]);
  const record = tlsaFor(self.cert, 3, 1, 1);
  const { deps } = await resolverFor(t, zoneTlsa(`_25._tcp.${MX}`, [record]), { authenticated: false });
  const policy = await danePolicy(MX, 25, deps);
  assert.equal(policy.kind, 'none');
  assert.match(policy.kind === 'none' ? policy.reason : '', /not DNSSEC-validated/);

  const dnsmasq = await startDnsServer({
    after: t.after.bind(t),
    records: [
      {
        type: 'TLSA',
        name: `_25._tcp.${MX}`,
        usage: 3,
        selector: 1,
        matchingType: 1,
        data: record.data.toString('hex'),
      },
    ],
  });
  const real = new TlsaResolver({ servers: [dnsmasq.address] });
  const answer = await real.tlsa(`_25._tcp.${MX}`);
  assert.equal(answer.records.length, 1, 'dnsmasq serves the record');
  assert.equal((await danePolicy(MX, 25, { tlsa: (n) => real.tlsa(n) })).kind, 'none');
});

test('SERVFAIL (bogus) and timeouts: defer — the MX host must not be used', async (t) => {
  const name = `_25._tcp.${MX}`;
  const { deps } = await resolverFor(t, [], {
    timeoutMs: 300,
    override: (n) =>
      n === name ? { rcode: Rcode.ServFail } : n === `_26._tcp.${MX}` ? { silent: true } : undefined,
  });
  const bogus = await danePolicy(MX, 25, deps);
  assert.equal(bogus.kind, 'defer');
  assert.match(bogus.kind === 'defer' ? bogus.reason : '', /ESERVFAIL|RCODE 2/);
  const silent = await danePolicy(MX, 26, deps);
  assert.equal(silent.kind, 'defer');
  assert.match(silent.kind === 'defer' ? silent.reason : '', /no answer/);
});

test('a truncated UDP answer is fetched over TCP, and DANE then applies', async (t) => {
  const self = issueCertificate([MX]);
  const smtp = await smtpServer(t, [self], self.key);
  const name = `_${smtp.port}._tcp.${MX}`;
  const records = zoneTlsa(name, [tlsaFor(self.cert, 3, 1, 1)]);
  const zone = zoneHandler(records);
  const { dns, deps } = await resolverFor(t, records, {
    override: (n) =>
      n === name
        ? {
            ...zone({
              name: n,
              type: RecordType.TLSA,
              transport: 'tcp',
              dnssecOk: true,
              udpPayloadSize: undefined,
            }),
            truncateUdp: true,
          }
        : undefined,
  });
  const policy = await danePolicy(MX, smtp.port, deps);
  assert.equal(policy.kind, 'dane');
  assert.deepEqual(
    dns.questions.map((q) => q.transport),
    ['udp', 'tcp'],
  );
  assert.equal((await deliver(smtp.port, policy)).dataReply?.code, 250);
});

test('policies: unusable-only records → encrypt; none, NXDOMAIN, addresses → none', async (t) => {
  const self = issueCertificate([MX]);
  const { deps } = await resolverFor(t, [
    ...zoneTlsa(`_25._tcp.pkix.dane.test`, [tlsaFor(self.cert, 1, 1, 1), tlsaFor(self.cert, 0, 0, 1)]),
    ...zoneTlsa(`_25._tcp.odd.dane.test`, [
      { usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(20) },
    ]),
    { name: 'plain.dane.test', data: { type: 'A', address: '192.0.2.1' } },
  ]);
  const pkix = await danePolicy('pkix.dane.test', 25, deps);
  assert.equal(pkix.kind, 'encrypt');
  assert.equal(
    (await danePolicy('odd.dane.test', 25, deps)).kind,
    'encrypt',
    'a SHA-256 that is not 32 octets',
  );
  const none = await danePolicy('plain.dane.test', 25, deps);
  assert.equal(none.kind, 'none');
  assert.equal((await danePolicy('missing.dane.test', 25, deps)).kind, 'none');
  const literal = await danePolicy('192.0.2.1', 25, deps);
  assert.deepEqual(literal.kind, 'none');
  assert.equal(literal.tlsaName, undefined);
});

test('daneVerify: every selector and matching type, digest agility, expiry only for DANE-TA, CA issuers only', () => {
  const ca = issueCertificate(['DANE Test CA']);
  const leaf = issueCertificate([MX, '*.pool.dane.test'], ca);
  const chain = [new X509Certificate(leaf.cert), new X509Certificate(ca.cert)];
  for (const [selector, matchingType] of [
    [0, 0],
    [0, 1],
    [0, 2],
    [1, 0],
    [1, 1],
    [1, 2],
  ] as const) {
    const ee = daneVerify(chain, [tlsaFor(leaf.cert, 3, selector, matchingType)], 'anything.example');
    assert.equal(ee.ok, true, `3 ${selector} ${matchingType}`);
    const ta = daneVerify(chain, [tlsaFor(ca.cert, 2, selector, matchingType)], MX);
    assert.equal(ta.ok, true, `2 ${selector} ${matchingType}`);
  }
  // RFC 7671 §9: with SHA-512 present, SHA-256 records of the same usage and selector are ignored.
  const wrong256 = { ...tlsaFor(leaf.cert, 3, 1, 1), data: Buffer.alloc(32) };
  const wrong512 = { ...tlsaFor(leaf.cert, 3, 1, 2), data: Buffer.alloc(64) };
  assert.equal(daneVerify(chain, [wrong256, tlsaFor(leaf.cert, 3, 1, 2)], MX).ok, true);
  assert.equal(daneVerify(chain, [tlsaFor(leaf.cert, 3, 1, 1), wrong512], MX).ok, false);
  assert.equal(usableRecords([tlsaFor(leaf.cert, 3, 1, 1), wrong512]).length, 1);
  // Names: wildcard for one label only; another reference identifier may be given.
  const ta = [tlsaFor(ca.cert, 2, 0, 1)];
  assert.equal(daneVerify(chain, ta, 'a.pool.dane.test').ok, true);
  assert.equal(daneVerify(chain, ta, 'a.b.pool.dane.test').ok, false);
  assert.equal(daneVerify(chain, ta, 'mx.other.test', { names: [MX] }).ok, true);
  // Expiry: DANE-TA checks the chain below the anchor; DANE-EE ignores dates (RFC 7671 §5.1).
  const later = new Date(Date.now() + 3 * 86_400_000);
  const expired = daneVerify(chain, ta, MX, { now: later });
  assert.equal(!expired.ok && expired.error.code, DaneErrorCode.Expired);
  assert.equal(daneVerify(chain, [tlsaFor(leaf.cert, 3, 1, 1)], MX, { now: later }).ok, true);
  // A certificate that is not a CA is not an issuer, even when it signed the leaf.
  const notCa = issueCertificate(['not-a-ca.dane.test'], ca);
  const under = issueCertificate([MX], notCa);
  const bad = [
    new X509Certificate(under.cert),
    new X509Certificate(notCa.cert),
    new X509Certificate(ca.cert),
  ];
  const viaEe = daneVerify(bad, [tlsaFor(notCa.cert, 2, 0, 1)], MX);
  assert.equal(!viaEe.ok && viaEe.error.code, DaneErrorCode.NoMatch);
  assert.equal(daneVerify(bad, ta, MX).ok, false);
  // No certificate, no usable record.
  const none = daneVerify([], ta, MX);
  assert.equal(!none.ok && none.error.code, DaneErrorCode.NoCertificate);
  const pkixOnly = daneVerify(chain, [tlsaFor(leaf.cert, 1, 1, 1)], MX);
  assert.equal(!pkixOnly.ok && pkixOnly.error.code, DaneErrorCode.NoUsableRecords);
  // Pool keys do not depend on record order.
  const a = tlsaFor(leaf.cert, 3, 1, 1);
  const b = tlsaFor(ca.cert, 2, 0, 1);
  assert.equal(recordsKey([a, b]), recordsKey([b, a]));
  assert.notEqual(recordsKey([a]), recordsKey([b]));
});

test('peerChain returns the chain the server sent, leaf first', async (t) => {
  const ca = issueCertificate(['DANE Test CA']);
  const leaf = issueCertificate([MX], ca);
  const smtp = await smtpServer(t, [leaf, ca], leaf.key);
  let seen: string[] = [];
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port: smtp.port,
    servername: MX,
    localName: 'relay.petrel.test',
    tls: 'required',
    timeoutMs: 5_000,
    verifyPeer: (socket) => {
      seen = peerChain(socket).map((c) => c.fingerprint256);
      return undefined;
    },
  });
  await client.quit();
  assert.deepEqual(seen, [
    new X509Certificate(leaf.cert).fingerprint256,
    new X509Certificate(ca.cert).fingerprint256,
  ]);
});
