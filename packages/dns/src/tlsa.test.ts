import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startDnsServer } from '@petrel/test-harness';
import { startWireDnsServer, type ZoneRecord, zoneHandler } from '../test/server.ts';
import { DnsError, DnsErrorCode } from './errors.ts';
import { lookup, queryTlsa, TlsaResolver, tlsaName } from './tlsa.ts';
import { Rcode, RecordType } from './wire.ts';

const HASH = Buffer.alloc(32, 0xab);
const tlsa = (name: string, ttl = 300, data = HASH): ZoneRecord => ({
  name,
  ttl,
  data: { type: 'TLSA', usage: 3, selector: 1, matchingType: 1, data },
});

test('tlsaName is _port._tcp.host (RFC 6698 §3); addresses and bad ports are refused', () => {
  assert.equal(tlsaName('MX.Example.com.', 25), '_25._tcp.mx.example.com');
  assert.equal(tlsaName('mx.example.com', 2525), '_2525._tcp.mx.example.com');
  assert.throws(
    () => tlsaName('192.0.2.1', 25),
    (e: unknown) => e instanceof DnsError && e.code === 'EBADNAME',
  );
  assert.throws(() => tlsaName('mx.example.com', 0), /port 0 out of range/);
});

test('queryTlsa returns the records, the AD flag, the TTL, and follows a CNAME', async (t) => {
  const dns = await startWireDnsServer(
    zoneHandler([
      tlsa('_25._tcp.mx.example.test', 120),
      { name: '_25._tcp.alias.example.test', ttl: 50, data: { type: 'CNAME', target: 'tlsa.provider.test' } },
      tlsa('tlsa.provider.test', 600),
      { name: 'mx.example.test', data: { type: 'A', address: '192.0.2.25' } },
    ]),
    { after: t.after.bind(t) },
  );
  const servers = [dns.address];
  const answer = await queryTlsa('_25._tcp.mx.example.test', { servers });
  assert.equal(answer.authenticated, true);
  assert.equal(answer.rcode, 'NOERROR');
  assert.equal(answer.ttlSeconds, 120);
  assert.deepEqual(answer.records, [{ usage: 3, selector: 1, matchingType: 1, data: HASH }]);
  assert.ok(Buffer.isBuffer(answer.records[0]?.data));
  const aliased = await queryTlsa('_25._tcp.alias.example.test', { servers });
  assert.equal(aliased.owner, 'tlsa.provider.test');
  assert.equal(aliased.records.length, 1);
  assert.equal(aliased.ttlSeconds, 50, 'the CNAME TTL bounds the answer');
  const nodata = await queryTlsa('mx.example.test', { servers });
  assert.deepEqual(nodata.records, []);
  assert.equal(nodata.rcode, 'NOERROR');
  assert.equal(nodata.ttlSeconds, 60, 'SOA negative TTL');
  const nx = await queryTlsa('_25._tcp.none.example.test', { servers });
  assert.equal(nx.rcode, 'NXDOMAIN');
  const a = await lookup('mx.example.test', 'A', { servers });
  assert.deepEqual(a.records, [{ type: 'A', address: '192.0.2.25' }]);
  assert.equal(a.authenticated, true);
  assert.deepEqual(
    dns.questions.map((q) => [q.type, q.dnssecOk]),
    [
      [RecordType.TLSA, true],
      [RecordType.TLSA, true],
      [RecordType.TLSA, true],
      [RecordType.TLSA, true],
      [RecordType.A, true],
    ],
  );
});

test('dnsmasq (no DNSSEC validation): TLSA records come without AD; a large RRset comes over TCP', async (t) => {
  const big = Array.from({ length: 12 }, (_, i) => ({
    type: 'TLSA' as const,
    name: '_25._tcp.big.example.test',
    usage: 3,
    selector: 1,
    matchingType: 2,
    data: Buffer.alloc(64, i).toString('hex'),
  }));
  const dns = await startDnsServer({
    after: t.after.bind(t),
    records: [
      {
        type: 'TLSA',
        name: '_25._tcp.mx.example.test',
        usage: 3,
        selector: 1,
        matchingType: 1,
        data: HASH.toString('hex'),
      },
      ...big,
    ],
  });
  const answer = await queryTlsa('_25._tcp.mx.example.test', { servers: [dns.address] });
  assert.equal(answer.authenticated, false, 'dnsmasq does not validate: insecure');
  assert.deepEqual(answer.records, [{ usage: 3, selector: 1, matchingType: 1, data: HASH }]);
  assert.equal(answer.transport, 'udp');
  // 12 × 79 octets of RDATA is more than the 512 octets announced: TC, then TCP.
  const large = await queryTlsa('_25._tcp.big.example.test', { servers: [dns.address], udpPayloadSize: 512 });
  assert.equal(large.transport, 'tcp');
  assert.equal(large.records.length, 12);
  assert.deepEqual(
    large.records.map((r) => r.data[0]).sort((a = 0, b = 0) => a - b),
    big.map((_, i) => i),
  );
});

test('TlsaResolver caches answers for their TTL, negative ones for the SOA TTL, failures not at all', async (t) => {
  let now = 1_000_000;
  let failing = false;
  const zone = zoneHandler([tlsa('_25._tcp.mx.example.test', 120)], { negativeTtl: 30 });
  const dns = await startWireDnsServer((q) => (failing ? { rcode: Rcode.ServFail } : zone(q)), {
    after: t.after.bind(t),
  });
  const resolver = new TlsaResolver({ servers: [dns.address], now: () => now });
  const asked = (name: string) => dns.questions.filter((q) => q.name === name).length;

  const [first, second] = await Promise.all([
    resolver.tlsa('_25._tcp.mx.example.test'),
    resolver.tlsa('_25._TCP.MX.example.test.'),
  ]);
  assert.equal(asked('_25._tcp.mx.example.test'), 1, 'one query for both callers');
  assert.deepEqual(first, second);
  first.records[0]?.data.fill(0);
  const again = await resolver.tlsa('_25._tcp.mx.example.test');
  assert.deepEqual(again.records[0]?.data, HASH, 'callers get copies');
  assert.equal(asked('_25._tcp.mx.example.test'), 1);
  now += 119_000;
  await resolver.tlsa('_25._tcp.mx.example.test');
  assert.equal(asked('_25._tcp.mx.example.test'), 1, 'within the TTL');
  now += 2_000;
  await resolver.tlsa('_25._tcp.mx.example.test');
  assert.equal(asked('_25._tcp.mx.example.test'), 2, 'after the TTL');

  const none = await resolver.tlsa('_25._tcp.other.example.test');
  assert.equal(none.rcode, 'NXDOMAIN');
  now += 29_000;
  await resolver.tlsa('_25._tcp.other.example.test');
  assert.equal(asked('_25._tcp.other.example.test'), 1);
  now += 2_000;
  await resolver.tlsa('_25._tcp.other.example.test');
  assert.equal(asked('_25._tcp.other.example.test'), 2, 'negative TTL from the SOA');

  failing = true;
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      resolver.tlsa('_25._tcp.fail.example.test'),
      (e: unknown) => e instanceof DnsError && e.code === DnsErrorCode.ServerFailure && e.temporary,
    );
  }
  assert.equal(asked('_25._tcp.fail.example.test'), 2, 'SERVFAIL is not cached');
  resolver.clearCache();
  await assert.rejects(resolver.tlsa('_25._tcp.mx.example.test'));
});
