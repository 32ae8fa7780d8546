import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { waitFor } from '@petrel/test-harness';
import { failure } from '../test/failure.ts';
import { startWireDnsServer, zoneHandler } from '../test/server.ts';
import { DnsError, DnsErrorCode } from './errors.ts';
import {
  decodeMessage,
  decodeName,
  encodeMessage,
  encodeName,
  HeaderFlag,
  negativeTtl,
  query,
  Rcode,
  RecordType,
  recordSet,
} from './wire.ts';

test('messages round-trip: A, AAAA, MX, CNAME, TLSA, SOA, unknown types, OPT with DO and extended RCODE', () => {
  const wire = encodeMessage({
    id: 0xbeef,
    flags: HeaderFlag.QR | HeaderFlag.RD | HeaderFlag.RA | HeaderFlag.AD,
    rcode: Rcode.BadVers,
    questions: [{ name: 'Example.TEST.', type: RecordType.MX, class: 1 }],
    answers: [
      { name: 'example.test', ttl: 60, data: { type: 'MX', preference: 10, exchange: 'mx.example.test' } },
      { name: 'mx.example.test', ttl: 61, data: { type: 'A', address: '192.0.2.1' } },
      { name: 'mx.example.test', ttl: 62, data: { type: 'AAAA', address: '2001:db8::1' } },
      { name: 'mx.example.test', ttl: 62, data: { type: 'AAAA', address: '::ffff:192.0.2.1' } },
      { name: 'www.example.test', ttl: 63, data: { type: 'CNAME', target: 'mx.example.test' } },
      {
        name: '_25._tcp.mx.example.test',
        ttl: 64,
        data: { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) },
      },
      { name: 'example.test', ttl: 65, data: { type: 'OTHER', code: 99, data: Buffer.from('x') } },
    ],
    authority: [
      {
        name: 'example.test',
        ttl: 300,
        data: {
          type: 'SOA',
          mname: 'ns.example.test',
          rname: 'hostmaster.example.test',
          serial: 7,
          refresh: 1,
          retry: 2,
          expire: 3,
          minimum: 42,
        },
      },
    ],
    edns: { udpPayloadSize: 1232, version: 0, dnssecOk: true },
  });
  const m = decodeMessage(wire);
  assert.equal(m.id, 0xbeef);
  assert.equal(m.rcode, Rcode.BadVers, '16 = upper bits in OPT + 0 in the header');
  assert.ok((m.flags & HeaderFlag.AD) !== 0);
  assert.deepEqual(m.edns, { udpPayloadSize: 1232, version: 0, dnssecOk: true });
  assert.deepEqual(m.questions, [{ name: 'Example.TEST', type: RecordType.MX, class: 1 }]);
  assert.deepEqual(
    m.answers.map((r) => r.data),
    [
      { type: 'MX', preference: 10, exchange: 'mx.example.test' },
      { type: 'A', address: '192.0.2.1' },
      { type: 'AAAA', address: '2001:db8::1' },
      { type: 'AAAA', address: '::ffff:c000:201' },
      { type: 'CNAME', target: 'mx.example.test' },
      { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32, 7) },
      { type: 'OTHER', code: 99, data: Buffer.from('x') },
    ],
  );
  assert.deepEqual(
    m.answers.map((r) => r.ttl),
    [60, 61, 62, 62, 63, 64, 65],
  );
  assert.equal(negativeTtl(m), 42, 'RFC 2308 §5: min(SOA TTL, MINIMUM)');
  assert.equal(m.additional.length, 0, 'the OPT record is edns, not a record');
});

test('compressed names are read; loops, forward pointers and over-long names are malformed', () => {
  // Header, then "a.example.test" at 12, then a name "mx" + pointer to 14 ("example.test").
  const first = encodeName('a.example.test');
  const second = Buffer.concat([Buffer.from([2]), Buffer.from('mx'), Buffer.from([0xc0, 14])]);
  const message = Buffer.concat([Buffer.alloc(12), first, second]);
  assert.deepEqual(decodeName(message, 12), { name: 'a.example.test', next: 12 + first.length });
  assert.deepEqual(decodeName(message, 12 + first.length), {
    name: 'mx.example.test',
    next: 12 + first.length + 5,
  });
  const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
  assert.throws(
    () => decodeName(loop, 12),
    (e: unknown) => e instanceof DnsError && e.code === 'EBADRESP',
  );
  const forward = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 20]), Buffer.alloc(10)]);
  assert.throws(() => decodeName(forward, 12), /forward compression pointer/);
  assert.throws(() => decodeName(Buffer.from([5, 0x61]), 0), /past the end/);
  assert.throws(
    () => encodeName(`${'a'.repeat(64)}.test`),
    (e: unknown) => e instanceof DnsError && e.code === 'EBADNAME',
  );
  assert.throws(() => encodeName(Array(130).fill('ab').join('.')), /over 255 octets/);
  assert.throws(() => encodeName('a..test'), /empty label/);
  assert.equal(
    decodeName(Buffer.concat([Buffer.from([3]), Buffer.from('a.b'), Buffer.from([0])]), 0).name,
    'a\\.b',
  );
  assert.throws(() => decodeMessage(Buffer.alloc(5)), /shorter than a header/);
});

test('recordSet follows CNAMEs inside the answer and takes the smallest TTL', () => {
  const m = decodeMessage(
    encodeMessage({
      id: 1,
      flags: HeaderFlag.QR,
      questions: [{ name: '_25._tcp.mx.example.test', type: RecordType.TLSA, class: 1 }],
      answers: [
        { name: '_25._tcp.mx.example.test', ttl: 100, data: { type: 'CNAME', target: 'tlsa.provider.test' } },
        {
          name: 'TLSA.provider.test',
          ttl: 300,
          data: { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32) },
        },
        {
          name: 'unrelated.test',
          ttl: 5,
          data: { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data: Buffer.alloc(32) },
        },
      ],
    }),
  );
  const set = recordSet(m, '_25._tcp.MX.example.test.', RecordType.TLSA);
  assert.equal(set.owner, 'tlsa.provider.test');
  assert.deepEqual(set.aliases, ['tlsa.provider.test']);
  assert.equal(set.records.length, 1);
  assert.equal(set.ttlSeconds, 100);
});

test('query sets RD, AD and EDNS0 DO, and reports the AD flag of the answer', async (t) => {
  const records = [{ name: 'mx.example.test', data: { type: 'A' as const, address: '192.0.2.7' }, ttl: 77 }];
  const secure = await startWireDnsServer(zoneHandler(records), { after: t.after.bind(t) });
  const insecure = await startWireDnsServer(zoneHandler(records, { authenticated: false }), {
    after: t.after.bind(t),
  });
  const a = await query('mx.example.test', RecordType.A, { servers: [secure.address] });
  assert.equal(a.authenticated, true);
  assert.equal(a.transport, 'udp');
  assert.equal(a.server, secure.address);
  assert.deepEqual(a.message.answers[0]?.data, { type: 'A', address: '192.0.2.7' });
  assert.deepEqual(secure.questions, [
    { name: 'mx.example.test', type: RecordType.A, transport: 'udp', dnssecOk: true, udpPayloadSize: 1232 },
  ]);
  const b = await query('mx.example.test', RecordType.A, { servers: [insecure.address] });
  assert.equal(b.authenticated, false);
  const nx = await query('nope.example.test', RecordType.A, { servers: [secure.address] });
  assert.equal(nx.message.rcode, Rcode.NxDomain, 'NXDOMAIN is an answer');
  assert.equal(negativeTtl(nx.message), 60);
  await query('mx.example.test', RecordType.A, { servers: [secure.address], dnssec: false });
  assert.equal(secure.questions.at(-1)?.dnssecOk, false);
});

test('the test DNS server moves to another port when its UDP port is taken for TCP (regression)', async (t) => {
  // A port whose TCP side is taken and whose UDP side is free: the first attempt must fail over
  // TCP and be retried. events.once(tcp, 'listening') rejected on that error instead.
  const { createServer } = await import('node:net');
  let port = 0;
  const blocker = createServer();
  for (;;) {
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, r));
    port = (blocker.address() as { port: number }).port;
    const probe = createSocket('udp4');
    const free = await new Promise<boolean>((r) => {
      probe.once('error', () => r(false));
      probe.bind(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => (free ? probe.close(() => r()) : r()));
    if (free) break;
    await new Promise<void>((r) => blocker.close(() => r()));
  }
  t.after(() => new Promise<void>((r) => blocker.close(() => r())));
  const dns = await startWireDnsServer(
    zoneHandler([{ name: 'a.test', data: { type: 'A', address: '192.0.2.1' } }]),
    {
      after: t.after.bind(t),
      firstPort: port,
    },
  );
  assert.notEqual(dns.port, port);
  const r = await query('a.test', RecordType.A, { servers: [dns.address] });
  assert.deepEqual(r.message.answers[0]?.data, { type: 'A', address: '192.0.2.1' });
});

test('a truncated UDP answer is asked again over TCP', async (t) => {
  const tlsa = Array.from({ length: 30 }, (_, i) => ({
    name: '_25._tcp.big.example.test',
    ttl: 300,
    data: { type: 'TLSA' as const, usage: 3, selector: 1, matchingType: 2, data: Buffer.alloc(64, i) },
  }));
  const dns = await startWireDnsServer(
    (q) => ({ authenticated: true, truncateUdp: true, answers: q.type === RecordType.TLSA ? tlsa : [] }),
    { after: t.after.bind(t) },
  );
  const r = await query('_25._tcp.big.example.test', RecordType.TLSA, { servers: [dns.address] });
  assert.equal(r.transport, 'tcp');
  assert.equal(r.authenticated, true);
  assert.equal(r.message.answers.length, 30);
  assert.deepEqual(
    dns.questions.map((q) => q.transport),
    ['udp', 'tcp'],
  );
});

test('SERVFAIL moves on to the next server; when all fail, a temporary DnsError with its code', async (t) => {
  const failing = await startWireDnsServer(() => ({ rcode: Rcode.ServFail }), { after: t.after.bind(t) });
  const refusing = await startWireDnsServer(() => ({ rcode: Rcode.Refused }), { after: t.after.bind(t) });
  const good = await startWireDnsServer(
    zoneHandler([{ name: 'a.test', data: { type: 'A', address: '192.0.2.1' } }]),
    { after: t.after.bind(t) },
  );
  const r = await query('a.test', RecordType.A, { servers: [failing.address, good.address] });
  assert.equal(r.server, good.address);
  assert.equal(failing.questions.length, 1, 'SERVFAIL is not asked again at the same server');
  const e = await failure(query('a.test', RecordType.A, { servers: [failing.address] }));
  assert.equal(e.code, DnsErrorCode.ServerFailure);
  assert.equal(e.temporary, true);
  assert.equal(e.hostname, 'a.test');
  assert.equal(e.rrtype, 'A');
  const refused = await failure(query('a.test', RecordType.A, { servers: [refusing.address] }));
  assert.equal(refused.code, DnsErrorCode.Refused);
});

test('a silent server times out after every try; a closed port is refused', async (t) => {
  const silent = await startWireDnsServer(() => ({ silent: true }), { after: t.after.bind(t) });
  const started = performance.now(); // monotonic: immune to wall-clock steps
  const e = await failure(
    query('a.test', RecordType.A, { servers: [silent.address], timeoutMs: 150, tries: 2 }),
  );
  assert.ok(performance.now() - started >= 290);
  assert.equal(e.code, DnsErrorCode.Timeout);
  // The second try's datagram may still be on its way to the server (same process) when it times out.
  await waitFor(() => silent.questions.length >= 2, { timeoutMs: 5_000, message: 'the second try' });
  assert.equal(silent.questions.length, 2);
  const gone = await startWireDnsServer(() => ({}));
  await gone.close();
  const refused = await failure(query('a.test', RecordType.A, { servers: [gone.address], timeoutMs: 2000 }));
  assert.equal(refused.code, DnsErrorCode.ConnectionRefused);
  const bad = await failure(query('a..test', RecordType.A, { servers: [silent.address] }));
  assert.equal(bad.code, DnsErrorCode.BadName);
  assert.equal(bad.temporary, false);
});

test('answers with another id or another question are ignored until the right one comes', async (t) => {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  t.after(() => socket.close());
  socket.on('message', (data, from) => {
    const q = decodeMessage(data);
    const reply = (id: number, name: string, address = '192.0.2.66') =>
      encodeMessage({
        id,
        flags: HeaderFlag.QR | HeaderFlag.AD,
        questions: [{ name, type: RecordType.A, class: 1 }],
        answers: [{ name, ttl: 1, data: { type: 'A', address } }],
      });
    socket.send(reply(q.id ^ 1, 'a.test'), from.port, from.address);
    socket.send(reply(q.id, 'spoof.test'), from.port, from.address);
    socket.send(Buffer.from('garbage'), from.port, from.address);
    setTimeout(() => socket.send(reply(q.id, 'A.TEST', '192.0.2.1'), from.port, from.address), 20);
  });
  const r = await query('a.test', RecordType.A, { servers: [`127.0.0.1:${socket.address().port}`] });
  assert.deepEqual(r.message.answers[0]?.data, { type: 'A', address: '192.0.2.1' });
});
