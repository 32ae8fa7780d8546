import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { Attributes, Span, SpanContext, SpanOptions, SpanStatus } from '@opentelemetry/api';
import { type DnsRecord, type DnsServer, startDnsServer } from '@petrel/test-harness';
import { failure } from '../test/failure.ts';
import { DnsErrorCode } from './errors.ts';
import { DnsResolver, reverseName } from './resolver.ts';
import { parseServers } from './servers.ts';

const RECORDS: DnsRecord[] = [
  { type: 'A', name: 'mx.example.test', address: '192.0.2.10' },
  { type: 'A', name: 'short.example.test', address: '192.0.2.11', ttl: 5 },
  { type: 'AAAA', name: 'mx.example.test', address: '2001:db8::10' },
  { type: 'MX', name: 'example.test', exchange: 'mx.example.test', priority: 10 },
  { type: 'MX', name: 'example.test', exchange: 'mx2.example.test', priority: 20 },
  { type: 'TXT', name: 'example.test', value: 'v=spf1 -all' },
  { type: 'PTR', name: reverseName('192.0.2.10'), target: 'ptr.example.test' },
  { type: 'CNAME', name: 'www.example.test', target: 'mx.example.test' },
  {
    type: 'TLSA',
    name: '_25._tcp.mx.example.test',
    usage: 3,
    selector: 1,
    matchingType: 1,
    data: '0a'.repeat(32),
  },
];

async function server(t: TestContext, records = RECORDS): Promise<DnsServer> {
  return await startDnsServer({ after: t.after.bind(t), records, ttlSeconds: 120 });
}

/** How many times the server was asked `type name`. */
async function asked(dns: DnsServer, type: string, name: string): Promise<number> {
  return (await dns.queries()).filter((q) => q.type === type && q.name === name).length;
}

class RecordedSpan implements Span {
  readonly name: string;
  attributes: Attributes;
  status: SpanStatus = { code: 0 };
  ended = false;
  constructor(name: string, options: SpanOptions | undefined) {
    this.name = name;
    this.attributes = { ...options?.attributes };
  }
  spanContext(): SpanContext {
    return { traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 };
  }
  setAttribute(key: string, value: Attributes[string]): this {
    this.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    Object.assign(this.attributes, attributes);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(): this {
    return this;
  }
  addLinks(): this {
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.status = status;
    return this;
  }
  updateName(): this {
    return this;
  }
  end(): void {
    this.ended = true;
  }
  isRecording(): boolean {
    return true;
  }
  recordException(): void {}
}

describe('DnsResolver against dnsmasq', () => {
  it('answers every supported type in the shapes of node:dns', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    assert.deepEqual(await r.a('mx.example.test'), ['192.0.2.10']);
    assert.deepEqual(await r.aaaa('mx.example.test'), ['2001:db8::10']);
    const mx = await r.mx('example.test');
    assert.deepEqual(mx.map((m) => [m.priority, m.exchange]).sort(), [
      [10, 'mx.example.test'],
      [20, 'mx2.example.test'],
    ]);
    assert.deepEqual(await r.txt('example.test'), [['v=spf1 -all']]);
    assert.deepEqual(await r.ptr(reverseName('192.0.2.10')), ['ptr.example.test']);
    assert.deepEqual(await r.cname('www.example.test'), ['mx.example.test']);
    const [tlsa] = await r.tlsa('_25._tcp.mx.example.test');
    assert.equal(tlsa?.certUsage, 3);
    assert.equal(Buffer.from(tlsa?.data ?? new ArrayBuffer(0)).toString('hex'), '0a'.repeat(32));
    assert.equal((await failure(r.txt('nope.example.test'))).code, DnsErrorCode.NotFound);
    assert.equal((await failure(r.a('example.test'))).code, DnsErrorCode.NoData);
  });

  it('settled: answers and negative answers as outcomes, nothing thrown, the negative one cached', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    assert.deepEqual(await r.settled('mx.example.test', 'AAAA'), { ok: true, value: ['2001:db8::10'] });
    for (let i = 0; i < 3; i++) {
      const nodata = await r.settled('example.test', 'A');
      assert.equal(nodata.ok, false);
      assert.equal(nodata.ok ? undefined : nodata.error.code, DnsErrorCode.NoData);
    }
    const nx = await r.settled('nope.example.test', 'A');
    assert.equal(nx.ok ? undefined : nx.error.code, DnsErrorCode.NotFound);
    assert.equal(await asked(dns, 'A', 'example.test'), 1, 'the NODATA came from the cache after the first');
    // The throwing form agrees.
    assert.equal((await failure(r.a('example.test'))).code, DnsErrorCode.NoData);
  });

  it('caches answers for their TTL (A/AAAA from the answer, others the default) and then asks again', async (t) => {
    const dns = await server(t);
    let now = 1_000_000;
    const r = new DnsResolver({ servers: [dns.address], now: () => now, defaultTtlSeconds: 300 });
    await r.a('short.example.test'); // TTL 5 in its host-record
    await r.txt('example.test');
    const mx = await r.mx('example.test');
    await r.a('short.example.test');
    assert.equal(await r.mx('example.test'), mx, 'a hit is the cached answer itself');
    assert.equal(await asked(dns, 'A', 'short.example.test'), 1);
    assert.equal(await asked(dns, 'MX', 'example.test'), 1);

    now += 6_000; // past the A record's 5 s, within the 300 s default
    await r.a('short.example.test');
    await r.txt('example.test');
    assert.equal(await asked(dns, 'A', 'short.example.test'), 2);
    assert.equal(await asked(dns, 'TXT', 'example.test'), 1);

    now += 300_000;
    await r.txt('EXAMPLE.test.'); // case and the root dot name the same entry
    assert.equal(await asked(dns, 'TXT', 'example.test'), 2);
  });

  it('caches NXDOMAIN for the negative TTL, and throws a fresh error every time', async (t) => {
    const dns = await server(t);
    let now = 0;
    const r = new DnsResolver({ servers: [dns.address], now: () => now, negativeTtlSeconds: 10 });
    const first = await failure(r.txt('nope.example.test'));
    Object.assign(first, { spfResult: { error: 'permerror' } }); // as mailauth does
    const second = await failure(r.txt('nope.example.test'));
    assert.notEqual(second, first);
    assert.equal(second.code, 'ENOTFOUND');
    assert.equal('spfResult' in second, false);
    // The same error as the first, but without a stack trace (the costly part of a cache hit).
    assert.equal(second.message, first.message);
    assert.deepEqual(
      [second.name, second.hostname, second.rrtype, second.temporary, second.cause],
      [first.name, first.hostname, first.rrtype, first.temporary, first.cause],
    );
    assert.equal(second.stack, `DnsError: ${second.message}`);
    assert.equal(await asked(dns, 'TXT', 'nope.example.test'), 1);
    now += 11_000;
    await failure(r.txt('nope.example.test'));
    assert.equal(await asked(dns, 'TXT', 'nope.example.test'), 2);
  });

  it('sends concurrent identical lookups to the server once', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    const answers = await Promise.all(Array.from({ length: 20 }, () => r.txt('example.test')));
    assert.ok(answers.every((a) => a[0]?.[0] === 'v=spf1 -all'));
    assert.ok(
      answers.every((a) => a === answers[0]),
      'every caller gets the one frozen answer',
    );
    assert.equal(await asked(dns, 'TXT', 'example.test'), 1);
  });

  it('keeps node codes for an unreachable server, does not cache them, and recovers', async (t) => {
    const dns = await server(t);
    // 5 s: the lookup after restart() must not time out on a loaded host (a refusal comes at once anyway).
    const r = new DnsResolver({ servers: [dns.address], timeoutMs: 5_000, tries: 1 });
    await dns.stop();
    const error = await failure(r.txt('example.test'));
    assert.equal(error.code, 'ECONNREFUSED');
    assert.equal(error.temporary, true);
    await dns.restart();
    assert.deepEqual(await r.txt('example.test'), [['v=spf1 -all']]);
  });

  it('times out on a server that never answers', async (t) => {
    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => silent.close());
    const { port } = silent.address() as AddressInfo;
    const r = new DnsResolver({ servers: [`127.0.0.1:${port}`], timeoutMs: 200, tries: 1 });
    const started = performance.now(); // monotonic: immune to wall-clock steps
    const error = await failure(r.txt('example.test'));
    assert.equal(error.code, DnsErrorCode.Timeout);
    assert.equal(error.temporary, true);
    assert.ok(performance.now() - started < 5000);
  });

  it('gives mailauth a (name, rrtype) function; an aborted signal cancels waiting lookups', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    const lookup = r.mailauthResolver();
    assert.deepEqual(await lookup('example.test', 'TXT'), [['v=spf1 -all']]);
    assert.deepEqual(await lookup('mx.example.test', 'a'), ['192.0.2.10']);
    assert.equal((await failure(lookup('example.test', 'SRV'))).code, DnsErrorCode.UnsupportedType);
    assert.equal((await failure(lookup('nope.example.test', 'TXT'))).code, 'ENOTFOUND');

    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => silent.close());
    const slow = new DnsResolver({
      servers: [`127.0.0.1:${(silent.address() as AddressInfo).port}`],
      timeoutMs: 30_000,
      tries: 1,
    });
    t.after(() => slow.close());
    const controller = new AbortController();
    const pending = slow.mailauthResolver({ signal: controller.signal })('example.test', 'TXT');
    controller.abort();
    assert.equal((await failure(pending)).code, DnsErrorCode.Cancelled);
    const after = slow.mailauthResolver({ signal: controller.signal });
    assert.equal((await failure(after('example.test', 'MX'))).code, DnsErrorCode.Cancelled);
  });

  it('returns the cached answer itself on a hit, frozen, so that no caller can change it', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    for (const lookup of [
      () => r.a('mx.example.test'),
      () => r.aaaa('mx.example.test'),
      () => r.mx('example.test'),
      () => r.txt('example.test'),
      () => r.ptr(reverseName('192.0.2.10')),
      () => r.cname('www.example.test'),
    ]) {
      const first = await lookup();
      const again = await lookup();
      assert.equal(again, first, 'the same object on every hit');
      assert.ok(Object.isFrozen(first));
      for (const item of first) assert.ok(Object.isFrozen(item), `${JSON.stringify(item)} is frozen`);
      // ES modules are strict: writing to a frozen answer throws instead of changing the cache.
      assert.throws(() => (first as unknown[]).push('x'), TypeError);
      assert.throws(() => (first as unknown[]).splice(0, 1), TypeError);
      assert.deepEqual(await lookup(), again);
    }
    const [mx] = await r.mx('example.test');
    assert.throws(() => Object.assign(mx ?? {}, { priority: 0 }), TypeError);
    const [txt] = await r.txt('example.test');
    assert.throws(() => (txt as string[]).push('x'), TypeError);

    // TLSA bytes cannot be frozen, so every caller gets its own copy.
    const [tlsa] = await r.tlsa('_25._tcp.mx.example.test');
    new Uint8Array(tlsa?.data ?? new ArrayBuffer(0)).fill(0);
    const [again] = await r.tlsa('_25._tcp.mx.example.test');
    assert.equal(Buffer.from(again?.data ?? new ArrayBuffer(0)).toString('hex'), '0a'.repeat(32));

    // Negative answers keep their class and codes on every hit (NXDOMAIN and NODATA).
    for (let i = 0; i < 3; i++) {
      const nx = await failure(r.txt('nope.example.test'));
      assert.deepEqual([nx.code, nx.temporary, nx.rrtype], [DnsErrorCode.NotFound, false, 'TXT']);
      assert.equal(nx.message, 'DNS TXT nope.example.test: ENOTFOUND');
      const nodata = await failure(r.a('example.test'));
      assert.deepEqual([nodata.code, nodata.temporary], [DnsErrorCode.NoData, false]);
      assert.equal(nodata.message, 'DNS A example.test: ENODATA');
    }
    assert.equal(await asked(dns, 'TXT', 'nope.example.test'), 1);
    assert.equal(await asked(dns, 'A', 'example.test'), 1);
  });

  it('gives mailauth mutable copies of answers and fresh errors', async (t) => {
    const dns = await server(t);
    const r = new DnsResolver({ servers: [dns.address] });
    const lookup = r.mailauthResolver();
    const mx = (await lookup('example.test', 'MX')) as { exchange: string; priority: number }[];
    mx.sort((x, y) => y.priority - x.priority); // as mailauth does
    mx.push({ exchange: 'extra.example.test', priority: 1 });
    assert.equal((await r.mx('example.test')).length, 2, 'the cached answer is unchanged');
    assert.notEqual(await lookup('example.test', 'MX'), await lookup('example.test', 'MX'));
    const txt = (await lookup('example.test', 'TXT')) as string[][];
    txt[0]?.push('changed');
    assert.deepEqual(await r.txt('example.test'), [['v=spf1 -all']]);
    const error = await failure(lookup('nope.example.test', 'TXT'));
    Object.assign(error, { spfResult: { error: 'permerror' } });
    const again = await failure(lookup('nope.example.test', 'TXT'));
    assert.equal(again.code, DnsErrorCode.NotFound);
    assert.equal('spfResult' in again, false);
  });

  it('records one client span per network query, not per cache hit', async (t) => {
    const dns = await server(t);
    const spans: RecordedSpan[] = [];
    const tracer = {
      startSpan(name: string, options?: SpanOptions) {
        const span = new RecordedSpan(name, options);
        spans.push(span);
        return span;
      },
    };
    const r = new DnsResolver({ servers: [dns.address], tracer });
    await r.mx('example.test');
    await r.mx('example.test');
    await failure(r.txt('nope.example.test'));
    assert.deepEqual(
      spans.map((s) => [s.name, s.attributes['dns.question.name'], s.ended]),
      [
        ['DNS MX', 'example.test', true],
        ['DNS TXT', 'nope.example.test', true],
      ],
    );
    assert.equal(spans[0]?.attributes['dns.answer.count'], 2);
    assert.equal(spans[1]?.attributes['error.type'], 'ENOTFOUND');
    assert.equal(spans[1]?.status.code, 0, 'NXDOMAIN is an answer, not a span error');
  });
});

describe('DNS helpers', () => {
  it('parses server lists and refuses names', () => {
    assert.deepEqual(parseServers(' 127.0.0.1:5353, [::1]:53 ,10.0.0.1,'), [
      '127.0.0.1:5353',
      '[::1]:53',
      '10.0.0.1',
    ]);
    assert.deepEqual(parseServers(''), []);
    for (const bad of ['dns.google', '127.0.0.1:0', '127.0.0.1:70000', '[nope]:53']) {
      assert.throws(() => parseServers(bad), { code: DnsErrorCode.InvalidServer }, bad);
    }
    assert.throws(() => new DnsResolver({ servers: ['localhost'] }), { code: DnsErrorCode.InvalidServer });
    assert.throws(() => new DnsResolver({ timeoutMs: 0 }), { code: DnsErrorCode.InvalidOptions });
  });

  it('builds reverse names for IPv4 and IPv6', () => {
    assert.equal(reverseName('192.0.2.10'), '10.2.0.192.in-addr.arpa');
    assert.equal(
      reverseName('2001:db8::1'),
      '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
    );
    assert.equal(reverseName('::ffff:192.0.2.1'), `1.0.2.0.0.0.0.c.f.f.f.f.${'0.'.repeat(20)}ip6.arpa`);
    assert.throws(() => reverseName('example.test'), { code: DnsErrorCode.BadName });
  });
});
