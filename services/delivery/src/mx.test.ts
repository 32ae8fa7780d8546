import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DnsError, DnsErrorCode, DnsResolver } from '@petrel/dns';
import { type DnsRecord, type DnsServer, startDnsServer } from '@petrel/test-harness';
import {
  type MxHost,
  type Route,
  RouteErrorCode,
  type RouteResolver,
  RouteStatus,
  resolveRoute,
  SkipCode,
} from './mx.ts';

const a = (name: string, address: string): DnsRecord => ({ type: 'A', name, address });
const aaaa = (name: string, address: string): DnsRecord => ({ type: 'AAAA', name, address });
const mx = (name: string, exchange: string, priority: number): DnsRecord => ({
  type: 'MX',
  name,
  exchange,
  priority,
});

const SHUFFLED = ['a', 'b', 'c', 'd'].map((l) => `${l}.shuffle.test`);
const MANY = Array.from({ length: 12 }, (_, i) => `h${String(i + 1).padStart(2, '0')}.many.test`);

const RECORDS: DnsRecord[] = [
  // Preferences listed out of order.
  mx('order.test', 'c.order.test', 30),
  mx('order.test', 'a.order.test', 10),
  mx('order.test', 'b.order.test', 20),
  a('a.order.test', '192.0.2.11'),
  aaaa('a.order.test', '2001:db8::11'),
  a('b.order.test', '192.0.2.12'),
  aaaa('b.order.test', '2001:db8::12'),
  a('c.order.test', '192.0.2.13'),
  { type: 'CNAME', name: 'alias-domain.test', target: 'order.test' },

  mx('shuffle.test', 'first.shuffle.test', 5),
  ...SHUFFLED.map((h) => mx('shuffle.test', h, 10)),
  mx('shuffle.test', 'last.shuffle.test', 20),
  a('first.shuffle.test', '192.0.2.20'),
  ...SHUFFLED.map((h, i) => a(h, `192.0.2.2${i + 1}`)),
  a('last.shuffle.test', '192.0.2.29'),

  mx('nullmx.test', '.', 0),
  a('nullmx.test', '192.0.2.30'), // must never be used: no A fallback after a null MX
  mx('mixed-null.test', '.', 0),
  mx('mixed-null.test', 'a.order.test', 10),

  a('implicit.test', '192.0.2.40'),
  aaaa('implicit.test', '2001:db8::40'),
  aaaa('v6only.test', '2001:db8::41'),
  { type: 'TXT', name: 'txtonly.test', value: 'v=spf1 -all' },

  mx('broken.test', 'missing.broken.test', 10),
  mx('broken.test', 'good.broken.test', 20),
  mx('broken.test', '192.0.2.51', 30),
  a('good.broken.test', '192.0.2.50'),
  mx('allbroken.test', 'missing.allbroken.test', 10),
  mx('allbroken.test', '192.0.2.52', 20),
  mx('allbroken.test', 'txtonly.test', 30),
  mx('v6mx.test', 'v6only.test', 10),

  mx('cname.test', 'alias.cname.test', 10),
  { type: 'CNAME', name: 'alias.cname.test', target: 'real.cname.test' },
  a('real.cname.test', '192.0.2.60'),

  ...MANY.map((h, i) => mx('many.test', h, i + 1)),
  ...MANY.map((h, i) => a(h, `192.0.2.${100 + i}`)),
  mx('dup.test', 'mx.dup.test', 30),
  mx('dup.test', 'mx.dup.test', 10),
  mx('dup.test', 'mx.dup.test.', 20),
  mx('dup.test', 'other.dup.test', 15),
  a('mx.dup.test', '192.0.2.80'),
  a('other.dup.test', '192.0.2.81'),

  a('xn--bcher-kva.test', '192.0.2.70'),
];

/** mulberry32: a small seeded PRNG, so the shuffle is reproducible. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns the given values in turn, and fails the test if asked for more. */
function scripted(values: number[]): () => number {
  const queue = [...values];
  return () => {
    const v = queue.shift();
    assert.ok(v !== undefined, 'random source asked more often than expected');
    return v;
  };
}

function hostsOf(route: Route): MxHost[] {
  assert.equal(route.kind, 'hosts', `expected hosts, got ${JSON.stringify(route)}`);
  return route.kind === 'hosts' ? route.hosts : [];
}

const names = (route: Route) => hostsOf(route).map((h) => h.name);

/** A resolver that must not be asked anything. */
const NO_DNS: RouteResolver = {
  mx: () => assert.fail('no MX lookup expected'),
  a: () => assert.fail('no A lookup expected'),
  aaaa: () => assert.fail('no AAAA lookup expected'),
};

describe('resolveRoute against dnsmasq', () => {
  let dns: DnsServer;
  const resolver = () => new DnsResolver({ servers: [dns.address], timeoutMs: 1000, tries: 1 });

  before(async () => {
    dns = await startDnsServer({ records: RECORDS });
  });
  after(async () => {
    await dns.stop();
  });

  it('orders MX hosts by preference, IPv4 before IPv6 within a host by default', async () => {
    const route = await resolveRoute(resolver(), 'order.test');
    assert.deepEqual(hostsOf(route), [
      { name: 'a.order.test', preference: 10, addresses: ['192.0.2.11', '2001:db8::11'], implicit: false },
      { name: 'b.order.test', preference: 20, addresses: ['192.0.2.12', '2001:db8::12'], implicit: false },
      { name: 'c.order.test', preference: 30, addresses: ['192.0.2.13'], implicit: false },
    ]);
    assert.deepEqual(route.kind === 'hosts' && route.skipped, []);
    // A CNAME'd domain is processed as its target (RFC 5321 §5.1).
    assert.deepEqual(names(await resolveRoute(resolver(), 'Alias-Domain.TEST.')), [
      'a.order.test',
      'b.order.test',
      'c.order.test',
    ]);
  });

  it('honours preferFamily and families', async () => {
    const r = resolver();
    const v6first = hostsOf(await resolveRoute(r, 'order.test', { preferFamily: 6 }));
    assert.deepEqual(v6first[0]?.addresses, ['2001:db8::11', '192.0.2.11']);
    const only4 = hostsOf(await resolveRoute(r, 'order.test', { families: 4 }));
    assert.deepEqual(
      only4.map((h) => h.addresses),
      [['192.0.2.11'], ['192.0.2.12'], ['192.0.2.13']],
    );
    // c.order.test has no AAAA: left out, not an empty host.
    const only6 = await resolveRoute(r, 'order.test', { families: 6 });
    assert.deepEqual(
      hostsOf(only6).map((h) => [h.name, h.addresses]),
      [
        ['a.order.test', ['2001:db8::11']],
        ['b.order.test', ['2001:db8::12']],
      ],
    );
    assert.deepEqual(only6.kind === 'hosts' && only6.skipped.map((s) => [s.name, s.code]), [
      ['c.order.test', SkipCode.NoAddress],
    ]);
  });

  it('shuffles equal preferences with the injected random source only', async () => {
    const r = resolver();
    // Fisher-Yates over the sorted names a,b,c,d: 0.5 → swap(3,2), 0 → swap(2,0), 0.7 → keep.
    const route = await resolveRoute(r, 'shuffle.test', { random: scripted([0.5, 0, 0.7]) });
    assert.deepEqual(names(route), [
      'first.shuffle.test',
      'd.shuffle.test',
      'b.shuffle.test',
      'a.shuffle.test',
      'c.shuffle.test',
      'last.shuffle.test',
    ]);

    const seen = new Set<string>();
    for (let seed = 1; seed <= 400; seed++) {
      const order = names(await resolveRoute(r, 'shuffle.test', { random: seeded(seed) }));
      assert.equal(order[0], 'first.shuffle.test');
      assert.equal(order[5], 'last.shuffle.test');
      assert.deepEqual([...order.slice(1, 5)].sort(), SHUFFLED);
      seen.add(order.slice(1, 5).join(' '));
    }
    assert.equal(seen.size, 24, 'every order of the four equal-preference hosts occurs');

    // The same seed gives the same order whatever order the server answers in.
    const before = names(await resolveRoute(r, 'shuffle.test', { random: seeded(42) }));
    await dns.setRecords([...RECORDS].reverse());
    const again = names(await resolveRoute(resolver(), 'shuffle.test', { random: seeded(42) }));
    await dns.setRecords(RECORDS);
    assert.deepEqual(again, before);
  });

  it('returns nullMx for a lone "." exchange, without falling back to the A record', async () => {
    const route = await resolveRoute(resolver(), 'nullmx.test');
    assert.deepEqual(route, {
      kind: 'nullMx',
      status: '5.1.10',
      reason: 'nullmx.test accepts no mail (null MX)',
    });
    // "." next to real MX records is a misconfiguration (RFC 7505 §3): the real ones are used.
    const mixed = await resolveRoute(resolver(), 'mixed-null.test');
    assert.deepEqual(names(mixed), ['a.order.test']);
    assert.deepEqual(mixed.kind === 'hosts' && mixed.skipped.map((s) => [s.name, s.preference, s.code]), [
      ['.', 0, SkipCode.RootExchange],
    ]);
  });

  it('uses the domain A and AAAA as an implicit MX when there is no MX', async () => {
    const r = resolver();
    assert.deepEqual(hostsOf(await resolveRoute(r, 'implicit.test')), [
      { name: 'implicit.test', preference: 0, addresses: ['192.0.2.40', '2001:db8::40'], implicit: true },
    ]);
    assert.deepEqual(hostsOf(await resolveRoute(r, 'v6only.test')), [
      { name: 'v6only.test', preference: 0, addresses: ['2001:db8::41'], implicit: true },
    ]);
    assert.deepEqual(hostsOf(await resolveRoute(r, 'xn--bcher-kva.test')), [
      { name: 'xn--bcher-kva.test', preference: 0, addresses: ['192.0.2.70'], implicit: true },
    ]);
    // U-labels are looked up as A-labels (RFC 5890).
    assert.deepEqual(names(await resolveRoute(r, 'BÜCHER.test')), ['xn--bcher-kva.test']);
  });

  it('reads cached negative answers (no MX, no AAAA) without a thrown error per route', async () => {
    const r = resolver();
    // What throws: the resolver's per-type methods. `settled` hands back outcomes instead.
    const thrown: string[] = [];
    const noting =
      <T>(what: string, ask: (name: string) => Promise<T>) =>
      async (name: string): Promise<T> => {
        try {
          return await ask(name);
        } catch (error) {
          thrown.push(`${what} ${name}`);
          throw error;
        }
      };
    const counted: RouteResolver = {
      settled: r.settled.bind(r),
      mx: noting('MX', r.mx.bind(r)),
      a: noting('A', r.a.bind(r)),
      aaaa: noting('AAAA', r.aaaa.bind(r)),
    };
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(hostsOf(await resolveRoute(counted, 'v6only.test')), [
        { name: 'v6only.test', preference: 0, addresses: ['2001:db8::41'], implicit: true },
      ]);
    }
    assert.deepEqual(thrown, []);
    // The same resolver without `settled` goes through the throwing methods, with the same route.
    const { settled: _, ...throwing } = counted;
    assert.deepEqual(names(await resolveRoute(throwing, 'v6only.test')), ['v6only.test']);
    assert.deepEqual(thrown, ['MX v6only.test', 'A v6only.test']);
  });

  it('fails permanently (5.4.4) when the domain has neither MX nor address; temporarily if a family was skipped', async () => {
    const r = resolver();
    const none = await resolveRoute(r, 'txtonly.test');
    assert.deepEqual(
      [none.kind, 'code' in none && none.code, 'status' in none && none.status],
      ['permanent', RouteErrorCode.NoMailHost, RouteStatus.UnableToRoute],
    );
    // IPv6 was not asked, so "no address" is not definite.
    const v4 = await resolveRoute(r, 'v6only.test', { families: 4 });
    assert.deepEqual(
      [v4.kind, 'code' in v4 && v4.code, 'status' in v4 && v4.status],
      ['temporary', RouteErrorCode.NoMailHost, RouteStatus.UnableToRouteTemp],
    );
  });

  it('fails permanently with 5.1.2 for NXDOMAIN', async () => {
    const route = await resolveRoute(resolver(), 'nope.test');
    assert.deepEqual(route, {
      kind: 'permanent',
      code: RouteErrorCode.NoSuchDomain,
      status: RouteStatus.BadDestinationSystem,
      reason: 'no such domain: nope.test (NXDOMAIN)',
    });
  });

  it('skips MX hosts without addresses and address-literal exchanges, and uses the rest', async () => {
    const route = await resolveRoute(resolver(), 'broken.test');
    assert.deepEqual(hostsOf(route), [
      { name: 'good.broken.test', preference: 20, addresses: ['192.0.2.50'], implicit: false },
    ]);
    assert.deepEqual(
      route.kind === 'hosts' && route.skipped.map((s) => [s.name, s.preference, s.code]).sort(),
      [
        ['192.0.2.51', 30, SkipCode.AddressLiteral],
        ['missing.broken.test', 10, SkipCode.NoAddress],
      ],
    );
  });

  it('reports MX records with no usable host: 5.4.4, or 4.4.4 with deferIfNoMxAddress or one family', async () => {
    const r = resolver();
    const hard = await resolveRoute(r, 'allbroken.test');
    assert.equal(hard.kind, 'permanent');
    assert.equal('code' in hard && hard.code, RouteErrorCode.NoUsableMx);
    assert.equal('status' in hard && hard.status, '5.4.4');
    assert.match('reason' in hard ? hard.reason : '', /missing\.allbroken\.test \(noAddress\)/);
    assert.match('reason' in hard ? hard.reason : '', /192\.0\.2\.52 \(addressLiteral\)/);
    // The host with only a TXT record (NODATA) counts as without address too; no A fallback
    // for the domain itself (RFC 5321 §5.1: MX present → its address records are not used).
    assert.match('reason' in hard ? hard.reason : '', /txtonly\.test \(noAddress\)/);

    const soft = await resolveRoute(r, 'allbroken.test', { deferIfNoMxAddress: true });
    assert.deepEqual(
      [soft.kind, 'code' in soft && soft.code, 'status' in soft && soft.status],
      ['temporary', RouteErrorCode.NoUsableMx, '4.4.4'],
    );
    const v6host = await resolveRoute(r, 'v6mx.test', { families: 4 });
    assert.deepEqual(
      [v6host.kind, 'code' in v6host && v6host.code, 'status' in v6host && v6host.status],
      ['temporary', RouteErrorCode.NoUsableMx, '4.4.4'],
    );
    assert.deepEqual(names(await resolveRoute(r, 'v6mx.test')), ['v6only.test']);
  });

  it("follows a CNAME'd exchange to its addresses and keeps the MX name", async () => {
    assert.deepEqual(hostsOf(await resolveRoute(resolver(), 'cname.test')), [
      { name: 'alias.cname.test', preference: 10, addresses: ['192.0.2.60'], implicit: false },
    ]);
  });

  it('caps the host list (default 10) after removing duplicate names', async () => {
    const r = resolver();
    assert.deepEqual(names(await resolveRoute(r, 'many.test')), MANY.slice(0, 10));
    assert.deepEqual(names(await resolveRoute(r, 'many.test', { maxHosts: 3 })), MANY.slice(0, 3));
    // The server really answers with three records for the same exchange.
    assert.equal((await r.mx('dup.test')).filter((m) => m.exchange === 'mx.dup.test').length, 3);
    const dup = hostsOf(await resolveRoute(r, 'dup.test', { maxHosts: 2 }));
    assert.deepEqual(
      dup.map((h) => [h.name, h.preference]),
      [
        ['mx.dup.test', 10],
        ['other.dup.test', 15],
      ],
    );
    await assert.rejects(resolveRoute(r, 'dup.test', { maxHosts: 0 }), {
      code: 'PETREL_ERR_ROUTE_INVALID_OPTIONS',
    });
  });

  it('builds every route anew from the cached answers, which stay unchanged', async () => {
    const r = resolver();
    const first = await resolveRoute(r, 'order.test');
    const cachedA = await r.a('a.order.test');
    const hosts = hostsOf(first);
    assert.notEqual(hosts[0]?.addresses, cachedA, "a route's addresses are its own array");
    hosts[0]?.addresses.reverse();
    hosts.length = 0;
    // Served from the cache now, c.order.test's AAAA NODATA included: the same route as the first.
    const again = await resolveRoute(r, 'order.test');
    assert.deepEqual(names(again), ['a.order.test', 'b.order.test', 'c.order.test']);
    assert.deepEqual(hostsOf(again)[0]?.addresses, ['192.0.2.11', '2001:db8::11']);
    assert.deepEqual(hostsOf(again)[2]?.addresses, ['192.0.2.13']);
    assert.deepEqual(await r.a('a.order.test'), ['192.0.2.11']);
    const mx = await r.mx('order.test');
    assert.ok(Object.isFrozen(mx));
    assert.deepEqual(mx.map((m) => m.exchange).sort(), ['a.order.test', 'b.order.test', 'c.order.test']);
  });

  it('fails temporarily (4.4.3) when the DNS server cannot be reached', async (t) => {
    const down = await startDnsServer({ after: t.after.bind(t), records: RECORDS });
    const r = new DnsResolver({ servers: [down.address], timeoutMs: 500, tries: 1 });
    await down.stop();
    const route = await resolveRoute(r, 'order.test');
    assert.deepEqual(
      [route.kind, 'code' in route && route.code, 'status' in route && route.status],
      ['temporary', RouteErrorCode.DnsFailure, RouteStatus.DirectoryServerFailure],
    );
  });
});

describe('resolveRoute without DNS', () => {
  it('routes domain literals straight to the address', async () => {
    assert.deepEqual(await resolveRoute(NO_DNS, '[192.0.2.1]'), {
      kind: 'hosts',
      hosts: [{ name: '192.0.2.1', preference: 0, addresses: ['192.0.2.1'], implicit: true }],
      skipped: [],
    });
    assert.deepEqual(hostsOf(await resolveRoute(NO_DNS, '[IPv6:2001:DB8::1]')), [
      { name: '2001:db8::1', preference: 0, addresses: ['2001:db8::1'], implicit: true },
    ]);
    for (const bad of ['[192.0.2.300]', '[IPv6:192.0.2.1]', '[2001:db8::1]', '[x-tag:abc]', '[192.0.2.1']) {
      const route = await resolveRoute(NO_DNS, bad);
      assert.deepEqual(
        [route.kind, 'code' in route && route.code, 'status' in route && route.status],
        ['permanent', RouteErrorCode.InvalidDomain, RouteStatus.BadDestinationSyntax],
        bad,
      );
    }
    const v6off = await resolveRoute(NO_DNS, '[IPv6:2001:db8::1]', { families: 4 });
    assert.deepEqual(
      [v6off.kind, 'code' in v6off && v6off.code, 'status' in v6off && v6off.status],
      ['temporary', RouteErrorCode.AddressFamilyDisabled, '4.4.4'],
    );
  });

  const servfail = (name: string, rrtype: string) =>
    new DnsError(DnsErrorCode.ServerFailure, `DNS ${rrtype} ${name}: ESERVFAIL`, { hostname: name, rrtype });
  const nxdomain = (name: string, rrtype: string) =>
    new DnsError(DnsErrorCode.NotFound, `DNS ${rrtype} ${name}: ENOTFOUND`, { hostname: name, rrtype });

  it('shuffles equal preferences anew for every route from one frozen (cached) MX answer', async () => {
    const records = Object.freeze(
      [
        { exchange: 'B.example.test.', priority: 10 },
        { exchange: '192.0.2.9', priority: 5 },
        { exchange: 'a.example.test', priority: 10 },
        { exchange: 'c.example.test', priority: 20 },
        { exchange: 'b.example.test', priority: 30 },
      ].map((m) => Object.freeze(m)),
    );
    const v4 = Object.freeze(['192.0.2.1']);
    const r: RouteResolver = {
      mx: async () => records,
      a: async () => v4,
      aaaa: async (n) => {
        throw new DnsError(DnsErrorCode.NoData, `DNS AAAA ${n}: ENODATA`, { hostname: n, rrtype: 'AAAA' });
      },
    };
    const host = (name: string, preference: number): MxHost => ({
      name,
      preference,
      addresses: ['192.0.2.1'],
      implicit: false,
    });
    const skipped = [
      {
        name: '192.0.2.9',
        preference: 5,
        code: SkipCode.AddressLiteral,
        reason: 'MX exchange is an IP address, not a domain name (RFC 5321 §5.1)',
      },
    ];
    const expected = (first: string, second: string): Route => ({
      kind: 'hosts',
      hosts: [host(first, 10), host(second, 10), host('c.example.test', 20)],
      skipped,
    });
    // One draw per route (the group a, b): 0.9 keeps the sorted order, 0 swaps.
    const kept = await resolveRoute(r, 'example.test', { random: scripted([0.9]) });
    assert.deepEqual(kept, expected('a.example.test', 'b.example.test'));
    const swapped = await resolveRoute(r, 'example.test', { random: scripted([0]) });
    assert.deepEqual(swapped, expected('b.example.test', 'a.example.test'));
    // Routes are their own: changing one changes neither the answers nor the next route.
    if (kept.kind === 'hosts') {
      kept.hosts[0]?.addresses.push('192.0.2.99');
      kept.skipped.length = 0;
      kept.hosts.reverse();
    }
    assert.deepEqual(
      await resolveRoute(r, 'example.test', { random: scripted([0.9]) }),
      expected('a.example.test', 'b.example.test'),
    );
    // The whole group is still shuffled (one draw) when maxHosts cuts it.
    assert.deepEqual(await resolveRoute(r, 'example.test', { random: scripted([0]), maxHosts: 1 }), {
      kind: 'hosts',
      hosts: [host('b.example.test', 10)],
      skipped,
    });
    assert.deepEqual(v4, ['192.0.2.1']);
  });

  it('does not fall back to A/AAAA when the MX lookup fails temporarily', async () => {
    const asked: string[] = [];
    const r: RouteResolver = {
      mx: async (n) => {
        throw servfail(n, 'MX');
      },
      a: async (n) => {
        asked.push(`A ${n}`);
        return ['192.0.2.1'];
      },
      aaaa: async (n) => {
        asked.push(`AAAA ${n}`);
        return [];
      },
    };
    const route = await resolveRoute(r, 'example.test');
    assert.deepEqual(
      [route.kind, 'code' in route && route.code, 'status' in route && route.status],
      ['temporary', RouteErrorCode.DnsFailure, '4.4.3'],
    );
    assert.deepEqual(asked, []);
  });

  it('uses hosts that resolved when others failed temporarily; all failing is temporary, not permanent', async () => {
    const resolverWith = (failing: Set<string>): RouteResolver => ({
      mx: async () => [
        { exchange: 'one.example.test', priority: 10 },
        { exchange: 'two.example.test', priority: 20 },
        { exchange: 'gone.example.test', priority: 30 },
      ],
      a: async (n) => {
        if (failing.has(n)) throw servfail(n, 'A');
        if (n === 'gone.example.test') throw nxdomain(n, 'A');
        return ['192.0.2.2'];
      },
      aaaa: async (n) => {
        if (n === 'gone.example.test') throw nxdomain(n, 'AAAA');
        return [];
      },
    });
    const partial = await resolveRoute(resolverWith(new Set(['one.example.test'])), 'example.test');
    assert.deepEqual(names(partial), ['two.example.test']);
    assert.deepEqual(partial.kind === 'hosts' && partial.skipped.map((s) => [s.name, s.code]), [
      ['one.example.test', SkipCode.DnsFailure],
      ['gone.example.test', SkipCode.NoAddress],
    ]);
    const all = await resolveRoute(
      resolverWith(new Set(['one.example.test', 'two.example.test'])),
      'example.test',
    );
    assert.deepEqual(
      [all.kind, 'code' in all && all.code, 'status' in all && all.status],
      ['temporary', RouteErrorCode.DnsFailure, '4.4.3'],
    );
  });

  it('asks A and AAAA of every host in parallel, and dedupes names case-insensitively', async () => {
    const started: string[] = [];
    const release: (() => void)[] = [];
    const pending = (label: string, value: string[]) => {
      started.push(label);
      return new Promise<string[]>((resolve) => release.push(() => resolve(value)));
    };
    const r: RouteResolver = {
      mx: async () => [
        { exchange: 'MX1.Example.TEST.', priority: 10 },
        { exchange: 'mx1.example.test', priority: 5 },
        { exchange: 'mx2.example.test', priority: 20 },
      ],
      a: (n) => pending(`A ${n}`, ['192.0.2.3']),
      aaaa: (n) => pending(`AAAA ${n}`, ['2001:db8::3']),
    };
    const route = resolveRoute(r, 'example.test');
    // Let the MX answer through; then every address lookup must be in flight before any answers.
    for (let i = 0; i < 10 && started.length < 4; i++) await Promise.resolve();
    assert.deepEqual(started.sort(), [
      'A mx1.example.test',
      'A mx2.example.test',
      'AAAA mx1.example.test',
      'AAAA mx2.example.test',
    ]);
    for (const go of release) go();
    assert.deepEqual(
      hostsOf(await route).map((h) => [h.name, h.preference]),
      [
        ['mx1.example.test', 5],
        ['mx2.example.test', 20],
      ],
    );
  });
});
