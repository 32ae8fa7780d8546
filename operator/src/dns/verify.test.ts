import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import { DnsResolver } from '@petrel/dns';
import { type DnsRecord, startDnsServer } from '@petrel/test-harness';
import { DkimAlgorithm, generateDkimKey } from '../dkim/keys.ts';
import { type DesiredRecord, desiredRecords, mtaStsId, mtaStsPolicy } from './records.ts';
import { type Verification, VerifyCode, verifyRecords } from './verify.ts';

const DOMAIN = 'example.test';
const MX = 'mx.example.test';
const RUA = 'mailto:dmarc@example.test';

let rsaTxt: string;
let edTxt: string;
let otherRsaTxt: string;
let desired: DesiredRecord[];

before(async () => {
  const [rsa, ed, other] = await Promise.all([
    generateDkimKey(DkimAlgorithm.RsaSha256),
    generateDkimKey(DkimAlgorithm.Ed25519Sha256),
    generateDkimKey(DkimAlgorithm.RsaSha256),
  ]);
  rsaTxt = rsa.publicKeyDns;
  edTxt = ed.publicKeyDns;
  otherRsaTxt = other.publicKeyDns;
  desired = desiredRecords({
    domain: DOMAIN,
    mxHost: MX,
    dmarc: { policy: 'reject', rua: RUA },
    mtaSts: { mode: 'enforce', maxAgeSeconds: 604_800 },
    dkim: [
      { selector: 'petrel-1-rsa', txt: rsaTxt },
      { selector: 'petrel-1-ed25519', txt: edTxt },
    ],
  });
});

/**
 * A resolver that caches nothing, so that every check sees the server's current records. Roomy
 * timeout and a second try by default: a UDP answer delayed by a loaded host is not a failure.
 */
function resolverFor(address: string, { timeoutMs = 5_000, tries = 2 } = {}): DnsResolver {
  return new DnsResolver({
    servers: [address],
    timeoutMs,
    tries,
    defaultTtlSeconds: 0,
    negativeTtlSeconds: 0,
  });
}

/** `<purpose> <name>` → verified, or the reason's code. */
function outcome(verification: Verification): Record<string, string> {
  return Object.fromEntries(
    verification.records.map((r) => [
      `${r.purpose} ${r.name}`,
      r.verified ? 'verified' : (r.reason?.code ?? '?'),
    ]),
  );
}

/** Cuts text at the given offsets: how a zone editor might have split a long record. */
function cut(text: string, ...at: number[]): string[] {
  const bounds = [0, ...at, text.length];
  return bounds.slice(1).map((end, i) => text.slice(bounds[i], end));
}

describe('verifyRecords against a DNS server', () => {
  it('verifies what DNS serves, as receivers read it, and sees changes and removals', async (t) => {
    const mtaStsValue = `v=STSv1; id=${mtaStsId(mtaStsPolicy({ mode: 'enforce', maxAgeSeconds: 604_800, mxHosts: [MX] }))}`;
    assert.equal(desired.find((r) => r.purpose === 'MTA-STS')?.value, mtaStsValue);
    assert.ok(rsaTxt.length > 400, 'a 2048-bit key record needs two or more character-strings');

    const first: DnsRecord[] = [
      // Case and preference do not matter for MX; another exchange beside it does no harm.
      { type: 'MX', name: DOMAIN, exchange: 'MX.Example.Test', priority: 20 },
      { type: 'MX', name: DOMAIN, exchange: 'backup.example.net', priority: 30 },
      { type: 'TXT', name: DOMAIN, value: 'v=spf1 mx -all' },
      { type: 'TXT', name: DOMAIN, value: 'site-verification=abc123' },
      // Three strings, cut mid-tag and mid-base64: they are read concatenated.
      { type: 'TXT', name: 'petrel-1-rsa._domainkey.example.test', value: cut(rsaTxt, 10, 200, 390) },
      // Another spacing of the same tags.
      { type: 'TXT', name: '_dmarc.example.test', value: `v=DMARC1;p=reject ;  rua = ${RUA};` },
    ];
    const dns = await startDnsServer({ after: t.after.bind(t), records: first });
    const resolver = resolverFor(dns.address);
    t.after(() => resolver.close());

    const served = await resolver.txt('petrel-1-rsa._domainkey.example.test');
    assert.equal(served[0]?.length, 4, 'DNS serves the record as four character-strings');

    const one = await verifyRecords(desired, { resolver });
    assert.deepEqual(outcome(one), {
      'MX example.test': 'verified',
      'SPF example.test': 'verified',
      'DKIM petrel-1-rsa._domainkey.example.test': 'verified',
      'DKIM petrel-1-ed25519._domainkey.example.test': 'Missing',
      'DMARC _dmarc.example.test': 'verified',
      'MTA-STS _mta-sts.example.test': 'Missing',
    });
    assert.deepEqual(one.summary, {
      total: 6,
      verified: 4,
      unverified: 2,
      allVerified: false,
      byPurpose: {
        MX: { total: 1, verified: 1 },
        SPF: { total: 1, verified: 1 },
        DKIM: { total: 2, verified: 1 },
        DMARC: { total: 1, verified: 1 },
        'MTA-STS': { total: 1, verified: 0 },
      },
    });
    const rsa = one.records.find((r) => r.name === 'petrel-1-rsa._domainkey.example.test');
    assert.deepEqual(rsa?.found, [rsaTxt]);
    assert.deepEqual([...(one.records.find((r) => r.purpose === 'SPF')?.found ?? [])].sort(), [
      'site-verification=abc123',
      'v=spf1 mx -all',
    ]);
    // One question per name and type, whatever the number of records at it.
    const queries = await dns.queries();
    assert.equal(queries.filter((q) => q.type === 'TXT' && q.name === DOMAIN).length, 1);
    assert.equal(queries.filter((q) => q.type === 'MX' && q.name === DOMAIN).length, 1);

    await dns.setRecords([
      { type: 'MX', name: DOMAIN, exchange: 'mx.elsewhere.test', priority: 10 },
      // Two SPF records: receivers return permerror (RFC 7208 §4.5), so it does not verify.
      { type: 'TXT', name: DOMAIN, value: 'v=spf1 mx -all' },
      { type: 'TXT', name: DOMAIN, value: 'v=spf1 a -all' },
      { type: 'TXT', name: 'petrel-1-rsa._domainkey.example.test', value: otherRsaTxt },
      // Whitespace folded into the base64 of p= does not count (RFC 6376 §3.6.1).
      {
        type: 'TXT',
        name: 'petrel-1-ed25519._domainkey.example.test',
        value: [edTxt.slice(0, 30), ` ${edTxt.slice(30, 40)} `, edTxt.slice(40)],
      },
      { type: 'TXT', name: '_mta-sts.example.test', value: mtaStsValue },
    ]);
    const two = await verifyRecords(desired, { resolver });
    assert.deepEqual(outcome(two), {
      'MX example.test': 'Mismatch',
      'SPF example.test': 'Conflict',
      'DKIM petrel-1-rsa._domainkey.example.test': 'Mismatch',
      'DKIM petrel-1-ed25519._domainkey.example.test': 'verified',
      'DMARC _dmarc.example.test': 'Missing',
      'MTA-STS _mta-sts.example.test': 'verified',
    });
    assert.deepEqual(two.records.find((r) => r.purpose === 'MX')?.found, ['10 mx.elsewhere.test']);

    // Records that look alike but are not what receivers accept.
    await dns.setRecords([
      { type: 'TXT', name: DOMAIN, value: 'v=spf1  mx   -all ' },
      { type: 'TXT', name: '_dmarc.example.test', value: `p=reject; v=DMARC1; rua=${RUA}` },
      { type: 'TXT', name: '_mta-sts.example.test', value: 'v=STSv1; id=20240101T000000' },
      { type: 'TXT', name: '_mta-sts.example.test', value: mtaStsValue },
      { type: 'TXT', name: 'petrel-1-ed25519._domainkey.example.test', value: `${edTxt}; k=rsa` },
    ]);
    const three = await verifyRecords(desired, { resolver });
    assert.deepEqual(outcome(three), {
      'MX example.test': 'Missing',
      // Runs of spaces separate SPF terms like one space does (RFC 7208 §4.6.1).
      'SPF example.test': 'verified',
      'DKIM petrel-1-rsa._domainkey.example.test': 'Missing',
      // A tag twice makes a key record invalid (RFC 6376 §3.2).
      'DKIM petrel-1-ed25519._domainkey.example.test': 'Mismatch',
      // Not starting with v=DMARC1, it is no DMARC record (RFC 7489 §6.6.3).
      'DMARC _dmarc.example.test': 'Missing',
      'MTA-STS _mta-sts.example.test': 'Conflict',
    });
  });

  it('reports an unreachable server as failed lookups, without throwing', async (t) => {
    const dns = await startDnsServer({ after: t.after.bind(t), records: [] });
    const resolver = resolverFor(dns.address);
    t.after(() => resolver.close());
    assert.equal(outcome(await verifyRecords(desired, { resolver }))['MX example.test'], 'Missing');
    await dns.stop();
    const result = await verifyRecords(desired, { resolver });
    assert.ok(result.records.every((r) => !r.verified && r.reason?.code === VerifyCode.LookupFailed));
    assert.match(result.records[0]?.reason?.message ?? '', /ECONNREFUSED/);
    assert.equal(result.summary.verified, 0);
  });

  it('reports a server that never answers as failed lookups once the resolver times out', async (t) => {
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    // Short on purpose: this server never answers, so every lookup waits the whole timeout.
    const resolver = resolverFor(`127.0.0.1:${(silent.address() as AddressInfo).port}`, {
      timeoutMs: 200,
      tries: 1,
    });
    t.after(() => resolver.close());
    const result = await verifyRecords(desired.slice(0, 2), { resolver });
    assert.deepEqual(
      result.records.map((r) => [r.verified, r.reason?.code]),
      [
        [false, VerifyCode.LookupFailed],
        [false, VerifyCode.LookupFailed],
      ],
    );
    assert.match(result.records[0]?.reason?.message ?? '', /ETIMEOUT/);
  });
});
