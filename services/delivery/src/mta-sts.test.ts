import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { DnsResolver } from '@petrel/dns';
import { issueCertificate, startDnsServer } from '@petrel/test-harness';
import { lookupVia, MtaSts, mxMatches, parsePolicy, parseStsRecord, stsTxtVia } from './mta-sts.ts';

test('STS records and policies parse after RFC 8461 §3; MX patterns match one label', () => {
  assert.equal(parseStsRecord([['v=STSv1; id=20261122T1'], ['v=spf1 -all']]), '20261122T1');
  assert.equal(parseStsRecord([['v=STSv1; ', 'id=abc']]), 'abc');
  assert.equal(parseStsRecord([['v=STSv1; id=a'], ['v=STSv1; id=b']]), undefined, 'two records: none');
  assert.equal(parseStsRecord([['v=STSv1; id=not-alnum!']]), undefined);
  assert.deepEqual(
    parsePolicy(
      'version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.Example.NET\r\nmax_age: 86400\r\n',
    ),
    {
      mode: 'enforce',
      mx: ['mx1.example.com', '*.example.net'],
      maxAgeSeconds: 86400,
    },
  );
  assert.equal(parsePolicy('version: STSv1\nmode: enforce\nmax_age: 10\n'), undefined, 'enforce without mx');
  assert.equal(parsePolicy('version: STSv2\nmode: none\nmax_age: 10\n'), undefined);
  assert.equal(parsePolicy('mode: testing\nmx: a\nmax_age: 10\n'), undefined, 'no version');
  assert.equal(mxMatches(['*.example.net'], 'mx.example.net.'), true);
  assert.equal(mxMatches(['*.example.net'], 'a.b.example.net'), false);
  assert.equal(mxMatches(['*.example.net'], 'example.net'), false);
  assert.equal(mxMatches(['mx1.example.com'], 'MX1.example.com'), true);
  assert.equal(mxMatches(['mx1.example.com'], 'mx2.example.com'), false);
});

test('the policy is fetched over validated HTTPS, cached by id, refreshed when the id changes', async (t) => {
  const host = 'mta-sts.sts.test';
  const { cert, key } = issueCertificate([host]);
  let policyText = 'version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 3600\r\n';
  let fetches = 0;
  const server = createServer({ cert, key }, (req, res) => {
    fetches++;
    if (req.url !== '/.well-known/mta-sts.txt') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(policyText);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const dns = await startDnsServer({
    after: (fn) => t.after(fn),
    ttlSeconds: 0,
    records: [
      { type: 'TXT', name: '_mta-sts.sts.test', value: 'v=STSv1; id=one' },
      { type: 'A', name: host, address: '127.0.0.1' },
    ],
  });
  const resolver = new DnsResolver({ servers: [dns.address], maxTtlSeconds: 0 });
  let now = 1_000_000;
  const sts = new MtaSts({
    txt: stsTxtVia(resolver),
    lookup: lookupVia((name) => resolver.a(name)),
    ca: cert,
    port,
    now: () => now,
  });
  t.after(() => sts.close());
  const first = await sts.policy('sts.test');
  assert.equal(first?.mode, 'enforce');
  assert.deepEqual(first?.mx, ['mx.sts.test']);
  assert.equal((await sts.policy('sts.test'))?.id, 'one');
  assert.equal(fetches, 1, 'same id: served from the cache');

  policyText = policyText.replace('mode: enforce', 'mode: testing');
  await dns.setRecords([
    { type: 'TXT', name: '_mta-sts.sts.test', value: 'v=STSv1; id=two' },
    { type: 'A', name: host, address: '127.0.0.1' },
  ]);
  assert.equal((await sts.policy('sts.test'))?.mode, 'testing');
  assert.equal(fetches, 2);

  // The policy host fails validation (untrusted certificate): no new policy; the cached one
  // (unexpired) stays in force, and after max_age nothing is left.
  const untrusting = new MtaSts({
    txt: (name) => resolver.txt(name),
    lookup: lookupVia((name) => resolver.a(name)),
    port,
    now: () => now,
  });
  t.after(() => untrusting.close());
  assert.equal(await untrusting.policy('sts.test'), undefined);
  server.close();
  await dns.setRecords([
    { type: 'TXT', name: '_mta-sts.sts.test', value: 'v=STSv1; id=three' },
    { type: 'A', name: host, address: '127.0.0.1' },
  ]);
  assert.equal((await sts.policy('sts.test'))?.id, 'two', 'refresh failed: cached policy kept');
  // The TXT record withdrawn (NXDOMAIN, an outcome of `settled`, not thrown): kept until max_age.
  await dns.setRecords([{ type: 'A', name: host, address: '127.0.0.1' }]);
  assert.equal((await sts.policy('sts.test'))?.id, 'two', 'no record: cached policy kept');
  now += 3_600_001;
  assert.equal(await sts.policy('sts.test'), undefined, 'expired and not refreshable');
  assert.equal(await sts.policy('no-policy.test'), undefined);
});
