import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { describe, it } from 'node:test';
import { splitTxt, startDnsServer, waitFor } from '../src/index.ts';

function resolverFor(address: string): Resolver {
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([address]);
  return r;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

describe('startDnsServer (dnsmasq)', () => {
  it('serves A, AAAA, MX, TXT, PTR, CNAME and TLSA records; other names are NXDOMAIN', async (t) => {
    const dkim = `v=DKIM1; k=rsa; p=${'A'.repeat(600)}`;
    const dns = await startDnsServer({
      after: t.after.bind(t),
      ttlSeconds: 120,
      records: [
        { type: 'A', name: 'mx.example.test', address: '192.0.2.10' },
        { type: 'AAAA', name: 'mx.example.test', address: '2001:db8::10' },
        { type: 'MX', name: 'example.test', exchange: 'mx.example.test', priority: 10 },
        { type: 'MX', name: 'example.test', exchange: 'mx2.example.test', priority: 20 },
        { type: 'TXT', name: 'example.test', value: 'v=spf1 ip4:192.0.2.0/24 -all' },
        { type: 'TXT', name: 'sel._domainkey.example.test', value: dkim },
        { type: 'TXT', name: 'quoted.example.test', value: ['a "quoted", string', 'back\\slash; #hash'] },
        { type: 'PTR', name: '10.2.0.192.in-addr.arpa', target: 'ptr.example.test' },
        { type: 'CNAME', name: 'www.example.test', target: 'mx.example.test' },
        {
          type: 'TLSA',
          name: '_25._tcp.mx.example.test',
          usage: 3,
          selector: 1,
          matchingType: 1,
          data: 'ab'.repeat(32),
        },
      ],
    });
    assert.equal(dns.address, `127.0.0.1:${dns.port}`);
    const r = resolverFor(dns.address);

    assert.deepEqual(await r.resolve4('mx.example.test', { ttl: true }), [
      { address: '192.0.2.10', ttl: 120 },
    ]);
    assert.deepEqual(await r.resolve6('mx.example.test'), ['2001:db8::10']);
    const mx = (await r.resolveMx('example.test')).sort((a, b) => a.priority - b.priority);
    assert.deepEqual(
      mx.map((m) => [m.priority, m.exchange]),
      [
        [10, 'mx.example.test'],
        [20, 'mx2.example.test'],
      ],
    );
    assert.deepEqual(await r.resolveTxt('example.test'), [['v=spf1 ip4:192.0.2.0/24 -all']]);
    const [long] = await r.resolveTxt('sel._domainkey.example.test');
    assert.ok(long && long.length === 3, 'a 621-octet value is three character-strings');
    assert.ok(long.every((s) => s.length <= 255));
    assert.equal(long.join(''), dkim);
    assert.deepEqual(await r.resolveTxt('quoted.example.test'), [
      ['a "quoted", string', 'back\\slash; #hash'],
    ]);
    // The explicit PTR wins over the one dnsmasq derives from the A record.
    assert.deepEqual(await r.reverse('192.0.2.10'), ['ptr.example.test']);
    assert.deepEqual(await r.resolveCname('www.example.test'), ['mx.example.test']);
    assert.deepEqual(await r.resolve4('www.example.test'), ['192.0.2.10']);
    const [tlsa] = await r.resolveTlsa('_25._tcp.mx.example.test');
    assert.deepEqual(
      { usage: tlsa?.certUsage, selector: tlsa?.selector, match: tlsa?.match },
      { usage: 3, selector: 1, match: 1 },
    );
    assert.equal(Buffer.from(tlsa?.data ?? new ArrayBuffer(0)).toString('hex'), 'ab'.repeat(32));

    assert.equal(await codeOf(r.resolveTxt('missing.example.test')), 'ENOTFOUND');
    assert.equal(await codeOf(r.resolveTxt('gmail.com')), 'ENOTFOUND', 'nothing is forwarded upstream');
    assert.equal(await codeOf(r.resolve4('example.test')), 'ENODATA', 'a name with other types only');

    // Asked just before, so possibly not yet in dnsmasq's log file: queries() waits for it.
    const log = await dns.queries();
    assert.ok(log.some((q) => q.type === 'TXT' && q.name === 'gmail.com'));
    assert.deepEqual(await dns.queries(), log, 'its own end-of-log queries are left out');
  });

  it('replaces records on the same port, and refuses queries while stopped', async (t) => {
    const dns = await startDnsServer({
      after: t.after.bind(t),
      records: [{ type: 'TXT', name: 'example.test', value: 'one' }],
    });
    const r = resolverFor(dns.address);
    assert.deepEqual(await r.resolveTxt('example.test'), [['one']]);

    await dns.setRecords([{ type: 'TXT', name: 'example.test', value: 'two' }]);
    assert.deepEqual(await r.resolveTxt('example.test'), [['two']]);

    await dns.stop();
    assert.equal(await codeOf(r.resolveTxt('example.test')), 'ECONNREFUSED');
    await dns.restart();
    assert.deepEqual(await r.resolveTxt('example.test'), [['two']]);
    await waitFor(async () => (await dns.queries()).filter((q) => q.name === 'example.test').length >= 3, {
      timeoutMs: 5000,
      message: 'query log across restarts',
    });
  });

  it('refuses a record dnsmasq cannot express before touching the running server', async (t) => {
    const dns = await startDnsServer({
      after: t.after.bind(t),
      records: [{ type: 'A', name: 'a.test', address: '192.0.2.1' }],
    });
    await assert.rejects(dns.setRecords([{ type: 'A', name: 'a.test', address: 'not-an-ip' }]), /address/);
    await assert.rejects(dns.setRecords([{ type: 'TXT', name: 'bad,name', value: 'x' }]), /unsupported name/);
    assert.deepEqual(await resolverFor(dns.address).resolve4('a.test'), ['192.0.2.1']);
  });
});

describe('splitTxt', () => {
  it('cuts at 255 octets without splitting a UTF-8 character', () => {
    const text = `${'a'.repeat(254)}é${'b'.repeat(10)}`;
    const parts = splitTxt(text);
    assert.deepEqual(parts, ['a'.repeat(254), `é${'b'.repeat(10)}`]);
    assert.deepEqual(splitTxt('x'.repeat(510)), ['x'.repeat(255), 'x'.repeat(255)]);
    assert.deepEqual(splitTxt(''), ['']);
  });
});
