import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DnsResolver } from '@petrel/dns';
import { type DnsRecord, type DnsServer, startDnsServer } from '@petrel/test-harness';
import { dkimSign, sealMessage } from 'mailauth';
import { InboundChecks, InboundChecksErrorCode, type InboundMessage } from './checks.ts';
import type { InboundCheckFlags } from './flags.ts';

const HOST = 'mx.petrel.test';
const ALL: InboundCheckFlags = { spf: true, dkim: true, dmarc: true, arc: true, dmarcReject: true };
const NONE: InboundCheckFlags = { spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false };
const GOOD_IP = '192.0.2.1';
const BAD_IP = '192.0.2.99';

function rsaKey(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  };
}
const dkimKey = rsaKey();
const arcKey = rsaKey();

const RECORDS: DnsRecord[] = [
  { type: 'TXT', name: 'sender.test', value: `v=spf1 ip4:${GOOD_IP} -all` },
  { type: 'TXT', name: 'soft.test', value: `v=spf1 ip4:${GOOD_IP} ~all` },
  { type: 'TXT', name: 'mail.sender.test', value: `v=spf1 ip4:${GOOD_IP} -all` },
  // A 2048-bit key: the TXT record is over 255 octets, so several character-strings.
  { type: 'TXT', name: 'sel._domainkey.sender.test', value: `v=DKIM1; k=rsa; p=${dkimKey.publicKey}` },
  { type: 'TXT', name: '_dmarc.sender.test', value: 'v=DMARC1; p=reject' },
  { type: 'TXT', name: 'arc._domainkey.forwarder.test', value: `v=DKIM1; k=rsa; p=${arcKey.publicKey}` },
];

function message(body = 'Hello from the test.\r\n', from = 'alice@sender.test'): string {
  return [
    `From: ${from}`,
    'To: bob@managed.test',
    'Subject: inbound checks',
    'Message-ID: <1@sender.test>',
    'Date: Mon, 01 Jan 2024 00:00:00 +0000',
    '',
    body,
  ].join('\r\n');
}

async function signed(text: string): Promise<string> {
  const key = { signingDomain: 'sender.test', selector: 'sel', privateKey: dkimKey.privateKey };
  // mailauth signs what signatureData lists (its typings also want the top-level fields).
  const result = await dkimSign(text, { ...key, signatureData: [key] });
  assert.deepEqual(result.errors, []);
  assert.match(result.signatures, /^DKIM-Signature: /);
  return result.signatures + text;
}

function input(overrides: Partial<InboundMessage> & { text?: string }): InboundMessage {
  return {
    message: Buffer.from(overrides.text ?? message()),
    mailFrom: 'alice@sender.test',
    helo: 'mail.sender.test',
    clientIp: GOOD_IP,
    recipientDomains: [ALL],
    ...overrides,
  };
}

/** The method entries of the header (`spf=pass ...`), unfolded. */
function entries(header: string): string[] {
  const unfolded = header.replace(/\r\n(?=[ \t])/g, '');
  assert.ok(header.startsWith(`Authentication-Results: ${HOST};`));
  assert.ok(header.endsWith('\r\n') && !header.slice(0, -2).includes('\r\n\r\n'));
  for (const line of header.slice(0, -2).split('\r\n'))
    assert.ok(line.length <= 78 || !line.trim().includes(' '));
  return unfolded
    .slice(`Authentication-Results: ${HOST};`.length)
    .trim()
    .split(/;\s*/)
    .filter((e) => e !== '');
}

function methods(header: string): string[] {
  return entries(header).map((e) => e.split(' ')[0] ?? '');
}

describe('InboundChecks with mailauth against dnsmasq', () => {
  let dns: DnsServer;
  const checks = (timeoutMs?: number) =>
    new InboundChecks({ resolver: new DnsResolver({ servers: [dns.address] }), hostname: HOST, timeoutMs });

  before(async () => {
    dns = await startDnsServer({ records: RECORDS });
  });
  after(async () => {
    await dns.stop();
  });

  it('SPF: pass, fail and softfail for the MAIL FROM domain and client IP; HELO for the null sender', async () => {
    const spfOnly = [{ ...NONE, spf: true }];
    const c = checks();
    const pass = await c.check(input({ recipientDomains: spfOnly }));
    assert.deepEqual(methods(pass.header), ['spf=pass']);
    assert.equal(pass.results.spf, 'pass');
    assert.match(pass.header, /smtp\.mailfrom=/);

    const fail = await c.check(input({ clientIp: BAD_IP, recipientDomains: spfOnly }));
    assert.deepEqual(methods(fail.header), ['spf=fail']);

    const soft = await c.check(
      input({ mailFrom: 'alice@soft.test', clientIp: BAD_IP, recipientDomains: spfOnly }),
    );
    assert.deepEqual(methods(soft.header), ['spf=softfail']);

    const bounce = await c.check(input({ mailFrom: '', clientIp: BAD_IP, recipientDomains: spfOnly }));
    assert.deepEqual(methods(bounce.header), ['spf=fail'], 'null sender: the HELO domain is checked');
  });

  it('DKIM: pass for a signed message, fail when the body was altered after signing', async () => {
    const c = checks();
    const dkimOnly = [{ ...NONE, dkim: true }];
    const original = await signed(message());
    const pass = await c.check(input({ text: original, recipientDomains: dkimOnly }));
    assert.deepEqual(methods(pass.header), ['dkim=pass']);
    assert.match(pass.header, /header\.d=sender\.test/);

    const altered = original.replace('Hello from the test.', 'Hello from a forger.');
    const fail = await c.check(input({ text: altered, recipientDomains: dkimOnly }));
    assert.deepEqual(methods(fail.header), ['dkim=fail']);
    assert.deepEqual(fail.results.dkim, ['fail']);

    const unsigned = await c.check(input({ recipientDomains: dkimOnly }));
    assert.deepEqual(methods(unsigned.header), ['dkim=none']);
  });

  it('DMARC p=reject: a failing message gets 550 5.7.1; a passing one is accepted', async () => {
    const c = checks();
    const failing = await c.check(input({ clientIp: BAD_IP }));
    assert.deepEqual(methods(failing.header), ['spf=fail', 'dkim=none', 'dmarc=fail', 'arc=none']);
    assert.equal(failing.dmarcPolicy, 'reject');
    assert.equal(failing.reject?.code, 550);
    assert.equal(failing.reject?.enhanced, '5.7.1');
    assert.match(failing.reject?.lines.join(' ') ?? '', /DMARC policy of sender\.test/);

    // Forwarded: SPF fails, the aligned DKIM signature carries DMARC.
    const forwarded = await c.check(input({ text: await signed(message()), clientIp: BAD_IP }));
    assert.deepEqual(methods(forwarded.header), ['spf=fail', 'dkim=pass', 'dmarc=pass', 'arc=none']);
    assert.equal(forwarded.reject, undefined);
    assert.equal(forwarded.dmarcPolicy, undefined);
  });

  it('DMARC with dmarcReject off: accepted, and the header says dmarc=fail', async () => {
    const result = await checks().check(
      input({ clientIp: BAD_IP, recipientDomains: [{ ...ALL, dmarcReject: false }] }),
    );
    assert.equal(result.reject, undefined);
    assert.equal(result.dmarcPolicy, 'reject');
    assert.ok(methods(result.header).includes('dmarc=fail'));
  });

  it('several recipient domains: the union of checks runs; reject only if every domain wants it', async () => {
    const c = checks();
    const mixed = await c.check(
      input({ clientIp: BAD_IP, recipientDomains: [ALL, { ...ALL, dmarcReject: false }] }),
    );
    assert.equal(mixed.reject, undefined);
    const noDmarc = await c.check(
      input({ clientIp: BAD_IP, recipientDomains: [ALL, { ...ALL, dmarc: false }] }),
    );
    assert.equal(noDmarc.reject, undefined, 'a domain without DMARC checks does not want DMARC rejects');
    const both = await c.check(input({ clientIp: BAD_IP, recipientDomains: [ALL, ALL] }));
    assert.equal(both.reject?.code, 550);

    const union = await c.check(
      input({
        clientIp: BAD_IP,
        recipientDomains: [
          { ...NONE, spf: true },
          { ...NONE, dkim: true },
        ],
      }),
    );
    assert.deepEqual(methods(union.header), ['spf=fail', 'dkim=none']);
    assert.equal(union.reject, undefined);
    assert.deepEqual(union.results, { spf: 'fail', dkim: ['none'] });
  });

  it('disabled checks are absent from the header; with none enabled, no DNS query is made', async () => {
    const c = checks();
    const noSpf = await c.check(input({ clientIp: BAD_IP, recipientDomains: [{ ...ALL, spf: false }] }));
    assert.deepEqual(methods(noSpf.header), ['dkim=none', 'dmarc=fail', 'arc=none']);

    const before = (await dns.queries()).length;
    const none = await c.check(input({ recipientDomains: [NONE] }));
    assert.equal(none.header, `Authentication-Results: ${HOST}; none\r\n`);
    assert.deepEqual(none.results, {});
    assert.deepEqual((await dns.queries()).slice(before), []);
  });

  it('ARC: a chain sealed by a forwarder verifies as arc=pass', async () => {
    const text = await signed(message());
    const seal = await sealMessage(Buffer.from(text), {
      signingDomain: 'forwarder.test',
      selector: 'arc',
      privateKey: arcKey.privateKey,
      cv: 'none',
      authResults: 'forwarder.test; spf=pass smtp.mailfrom=sender.test',
    });
    const result = await checks().check(
      input({ text: seal.toString() + text, recipientDomains: [{ ...NONE, arc: true }] }),
    );
    assert.deepEqual(methods(result.header), ['arc=pass']);
    assert.equal(result.results.arc, 'pass');
  });

  it('DNS server down: temperror results, no reject, no crash, well within the timeout', async (t) => {
    const down = await startDnsServer({ after: t.after.bind(t), records: RECORDS });
    await down.stop();
    const c = new InboundChecks({
      resolver: new DnsResolver({ servers: [down.address], timeoutMs: 500, tries: 1 }),
      hostname: HOST,
      timeoutMs: 10_000,
    });
    const started = performance.now(); // monotonic: immune to wall-clock steps
    const result = await c.check(input({ text: await signed(message()), clientIp: BAD_IP }));
    assert.ok(performance.now() - started < 10_000);
    assert.equal(result.timedOut, false);
    assert.equal(result.results.spf, 'temperror');
    assert.deepEqual(result.results.dkim, ['temperror']);
    assert.equal(result.results.dmarc, 'temperror');
    assert.equal(result.reject, undefined);
    assert.deepEqual(methods(result.header), [
      'spf=temperror',
      'dkim=temperror',
      'dmarc=temperror',
      'arc=none',
    ]);
  });

  it('a DNS server that never answers: the overall timeout gives temperror for every check', async (t) => {
    const silent = createSocket('udp4');
    silent.bind(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => silent.close());
    const c = new InboundChecks({
      resolver: new DnsResolver({
        servers: [`127.0.0.1:${(silent.address() as AddressInfo).port}`],
        timeoutMs: 30_000,
        tries: 1,
      }),
      hostname: HOST,
      timeoutMs: 300,
    });
    const started = performance.now(); // monotonic: immune to wall-clock steps
    const result = await c.check(input({ clientIp: BAD_IP }));
    const elapsed = performance.now() - started;
    // Up to half the resolver's 30 s: generous on a loaded host, still far short of waiting for DNS.
    assert.ok(elapsed >= 290 && elapsed < 15_000, `took ${elapsed} ms`);
    assert.equal(result.timedOut, true);
    assert.equal(result.reject, undefined);
    assert.deepEqual(methods(result.header), [
      'spf=temperror',
      'dkim=temperror',
      'dmarc=temperror',
      'arc=temperror',
    ]);
  });
});

describe('InboundChecks options', () => {
  it('refuses a host name that cannot be an authserv-id, and a bad timeout', () => {
    const resolver = new DnsResolver();
    assert.throws(() => new InboundChecks({ resolver, hostname: 'mx petrel; dkim=pass' }), {
      code: InboundChecksErrorCode.InvalidHostname,
    });
    assert.throws(() => new InboundChecks({ resolver, hostname: HOST, timeoutMs: 0 }), {
      code: InboundChecksErrorCode.InvalidTimeout,
    });
  });
});
