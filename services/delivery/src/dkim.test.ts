import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { DnsResolver } from '@petrel/dns';
import {
  type DkimpyResult,
  type DnsRecord,
  type DnsServer,
  startDnsServer,
  verifyWithDkimpy,
} from '@petrel/test-harness';
import { type DNSResolver, dkimSign, dkimVerify } from 'mailauth';

import {
  checkDkimKey,
  DkimAlgorithm,
  DkimError,
  DkimErrorCode,
  type DkimKey,
  dkimDnsRecord,
  dkimSignatureFields,
  type GeneratedDkimKey,
  generateDkimKey,
  signMessage,
} from './dkim.ts';

const DOMAIN = 'sender.test';
/** The injected signing clock: 2025-01-01T00:00:00Z. */
const T0 = Date.UTC(2025, 0, 1);
const now = (): number => T0;

function message(body = 'Hello from the test.\r\n', extraHeaders: readonly string[] = []): Buffer {
  return Buffer.from(
    [
      'From: Alice <alice@sender.test>',
      'To: bob@example.test',
      'Subject: DKIM test',
      'Date: Wed, 01 Jan 2025 00:00:00 +0000',
      'Message-ID: <1@sender.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      ...extraHeaders,
      '',
      body,
    ].join('\r\n'),
  );
}

/** The tags of each DKIM-Signature field at the top of a message, unfolded. */
function signatureTags(signed: Buffer): Map<string, string>[] {
  const text = signed.toString('latin1');
  const out: Map<string, string>[] = [];
  for (const m of text.matchAll(/^DKIM-Signature:((?:[^\r]|\r\n[ \t])*)\r\n/gm)) {
    const value = (m[1] ?? '').replace(/\r\n[ \t]/g, ' ');
    const tags = new Map<string, string>();
    for (const part of value.split(';')) {
      const eq = part.indexOf('=');
      if (eq === -1) continue;
      tags.set(part.slice(0, eq).trim(), part.slice(eq + 1).replace(/\s+/g, ''));
    }
    out.push(tags);
  }
  return out;
}

describe('DKIM signing, verified by dkimpy and mailauth against dnsmasq', () => {
  let dns: DnsServer;
  let resolver: DnsResolver;
  let rsa: GeneratedDkimKey;
  let ed: GeneratedDkimKey;
  let other: GeneratedDkimKey;
  let keys: DkimKey[];

  before(async () => {
    [rsa, ed, other] = await Promise.all([
      generateDkimKey(DkimAlgorithm.RsaSha256),
      generateDkimKey(DkimAlgorithm.Ed25519Sha256),
      generateDkimKey(DkimAlgorithm.RsaSha256),
    ]);
    keys = [
      { selector: 'rsa2025', algorithm: rsa.algorithm, privateKeyPem: rsa.privateKeyPem, domain: DOMAIN },
      { selector: 'ed2025', algorithm: ed.algorithm, privateKeyPem: ed.privateKeyPem, domain: DOMAIN },
    ];
    const records: DnsRecord[] = [
      // A 2048-bit RSA record is over 255 octets: several character-strings (the harness splits it).
      { type: 'TXT', name: `rsa2025._domainkey.${DOMAIN}`, value: rsa.txt },
      { type: 'TXT', name: `ed2025._domainkey.${DOMAIN}`, value: ed.txt },
      // A selector whose published key is not the one that signs.
      { type: 'TXT', name: `wrong._domainkey.${DOMAIN}`, value: other.txt },
    ];
    dns = await startDnsServer({ records });
    resolver = new DnsResolver({ servers: [dns.address] });
  });
  after(async () => {
    resolver?.close();
    await dns?.stop();
  });

  const dkimpy = async (signed: Buffer): Promise<DkimpyResult[]> => {
    const verification = await verifyWithDkimpy(signed, { host: dns.host, port: dns.port });
    for (const name of verification.queried) assert.match(name, /\._domainkey\.sender\.test\.?$/);
    return verification.results;
  };
  const mailauth = async (signed: Buffer, curTime = new Date(T0 + 60_000)) => {
    const result = await dkimVerify(signed, {
      resolver: resolver.mailauthResolver() as DNSResolver,
      strict: true,
      curTime,
    });
    return result.results.map((r) => ({
      result: r.status.result,
      comment: r.status.comment,
      algo: r.algo,
      selector: r.selector,
    }));
  };

  it('signs with RSA-2048 and Ed25519 together; both verifiers pass both signatures', async () => {
    const original = message();
    const signed = signMessage(original, keys, { now });
    assert.ok(
      signed.subarray(signed.length - original.length).equals(original),
      'the message follows unchanged',
    );
    const tags = signatureTags(signed);
    assert.equal(tags.length, 2);
    assert.deepEqual(
      tags.map((t) => [t.get('a'), t.get('s'), t.get('d'), t.get('c'), t.get('t'), t.get('x')]),
      [
        ['rsa-sha256', 'rsa2025', DOMAIN, 'relaxed/relaxed', String(T0 / 1000), undefined],
        ['ed25519-sha256', 'ed2025', DOMAIN, 'relaxed/relaxed', String(T0 / 1000), undefined],
      ],
    );
    // From oversigned; the single-instance fields present too; only fields that are there.
    assert.equal(
      tags[0]?.get('h'),
      'from:from:subject:subject:date:date:message-id:message-id:to:to:' +
        'mime-version:mime-version:content-type:content-type',
    );
    assert.equal(tags[0]?.get('bh'), tags[1]?.get('bh'), 'one body hash for both');
    for (const line of signed.toString('latin1').split('\r\n')) assert.ok(line.length <= 78, line);

    const py = await dkimpy(signed);
    assert.deepEqual(
      py.map((r) => [r.ok, r.error, r.algorithm, r.selector, r.domain]),
      [
        [true, null, 'rsa-sha256', 'rsa2025', DOMAIN],
        [true, null, 'ed25519-sha256', 'ed2025', DOMAIN],
      ],
    );
    assert.deepEqual(await mailauth(signed), [
      { result: 'pass', comment: undefined, algo: 'rsa-sha256', selector: 'rsa2025' },
      { result: 'pass', comment: undefined, algo: 'ed25519-sha256', selector: 'ed2025' },
    ]);
    // The keys came from our dnsmasq.
    const asked = (await dns.queries()).filter((q) => q.type === 'TXT').map((q) => q.name);
    assert.ok(asked.includes(`rsa2025._domainkey.${DOMAIN}`));
    assert.ok(asked.includes(`ed2025._domainkey.${DOMAIN}`));
  });

  it('a changed body fails both signatures in both verifiers', async () => {
    const signed = signMessage(message('Pay 100 EUR to the usual account.\r\n'), keys, { now });
    const text = signed.toString('latin1');
    const tampered = Buffer.from(text.replace('100 EUR', '900 EUR'), 'latin1');
    assert.notDeepEqual(tampered, signed);
    const py = await dkimpy(tampered);
    assert.deepEqual(
      py.map((r) => r.ok),
      [false, false],
    );
    for (const r of py) assert.match(r.error ?? '', /body hash mismatch/);
    assert.deepEqual(
      (await mailauth(tampered)).map((r) => r.result),
      ['fail', 'fail'],
    );
    // And an unchanged copy still passes, so the failure is the change.
    assert.deepEqual(
      (await dkimpy(signed)).map((r) => r.ok),
      [true, true],
    );
  });

  it('a changed signed header fails; an unsigned one may change', async () => {
    const signed = signMessage(message('Hi\r\n', ['X-Mailer: petrel']), keys, { now });
    const text = signed.toString('latin1');
    const subject = Buffer.from(text.replace('Subject: DKIM test', 'Subject: DKIM test!'), 'latin1');
    assert.deepEqual(
      (await dkimpy(subject)).map((r) => r.ok),
      [false, false],
    );
    assert.deepEqual(
      (await mailauth(subject)).map((r) => r.result),
      ['fail', 'fail'],
    );
    const mailer = Buffer.from(text.replace('X-Mailer: petrel', 'X-Mailer: other'), 'latin1');
    assert.deepEqual(
      (await dkimpy(mailer)).map((r) => r.ok),
      [true, true],
    );
  });

  it('an added From field fails (oversigning); without it mailauth would pass the forgery', async () => {
    const original = message();
    const forged = (signed: Buffer): Buffer =>
      Buffer.concat([Buffer.from('From: ceo@sender.test\r\n'), signed]);
    const ours = forged(signMessage(original, keys, { now }));
    assert.deepEqual(
      (await dkimpy(ours)).map((r) => r.ok),
      [false, false],
    );
    assert.deepEqual(
      (await mailauth(ours)).map((r) => r.result),
      ['fail', 'fail'],
    );

    // The control: mailauth's own signer lists From once, and its verifier takes the bottom-most
    // From, so the same forgery passes. This is what the second `from` in h= prevents.
    const key = { signingDomain: DOMAIN, selector: 'rsa2025', privateKey: rsa.privateKeyPem };
    const plain = await dkimSign(original, { ...key, signatureData: [key], signTime: new Date(T0) });
    assert.deepEqual(plain.errors, []);
    const control = forged(Buffer.concat([Buffer.from(plain.signatures), original]));
    assert.deepEqual(
      (await mailauth(control)).map((r) => r.result),
      ['pass'],
    );
  });

  it('the signature is checked against the key in DNS: a selector publishing another key fails', async () => {
    const wrong: DkimKey = { ...keys[0], selector: 'wrong' } as DkimKey;
    const signed = signMessage(message(), [wrong], { now });
    const py = await dkimpy(signed);
    assert.deepEqual(
      py.map((r) => [r.ok, r.selector]),
      [[false, 'wrong']],
    );
    assert.deepEqual(
      (await mailauth(signed)).map((r) => r.result),
      ['fail'],
    );
  });

  it('canonicalisation: folding, tabs, runs of spaces, trailing whitespace, blank lines, 8-bit text', async () => {
    const body = [
      '',
      'Grüße,  \t  tab\tand   spaces   ',
      '   leading spaces stay one space',
      ' \t ',
      '',
      'after blank lines',
      'trailing tab\t',
      '',
      '',
      ' ',
      '',
    ].join('\r\n');
    const headers = [
      'Cc: carol@example.test,\r\n\tdave@example.test,  \r\n   erin@example.test',
      'Reply-To:    Alice   <alice@sender.test>   ',
      'Subject: second Subject line, signed too',
      'References: <0@sender.test>\r\n <1@sender.test>',
      'X-Unsigned: not in h=',
    ];
    const text = Buffer.from(
      `From:\tAlice\r\n  <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: Übergröße  \t folded\r\n\tline\r\n${headers.join('\r\n')}\r\n\r\n${body}`,
      'utf8',
    );
    const signed = signMessage(text, keys, { now });
    const h = signatureTags(signed)[0]?.get('h');
    assert.equal(h, 'from:from:reply-to:reply-to:subject:subject:subject:to:to:cc:cc:references:references');
    assert.deepEqual(
      (await dkimpy(signed)).map((r) => [r.ok, r.error]),
      [
        [true, null],
        [true, null],
      ],
    );
    assert.deepEqual(
      (await mailauth(signed)).map((r) => r.result),
      ['pass', 'pass'],
    );
  });

  it('edge bodies: empty, header only, a last line without CRLF, only blank lines', async () => {
    const head = 'From: alice@sender.test\r\nTo: bob@example.test\r\nSubject: edge';
    const cases = [
      `${head}\r\n\r\n`,
      `${head}\r\n`,
      `${head}\r\n\r\nfirst\r\nlast line without CRLF`,
      `${head}\r\n\r\n\r\n\r\n\r\n`,
      `${head}\r\n\r\n \r\n\t\r\n`,
    ];
    const hashes: string[] = [];
    for (const text of cases) {
      const signed = signMessage(Buffer.from(text), keys, { now });
      hashes.push(signatureTags(signed)[0]?.get('bh') ?? '');
      assert.deepEqual(
        (await dkimpy(signed)).map((r) => [r.ok, r.error]),
        [
          [true, null],
          [true, null],
        ],
        JSON.stringify(text),
      );
      assert.deepEqual(
        (await mailauth(signed)).map((r) => r.result),
        ['pass', 'pass'],
        JSON.stringify(text),
      );
    }
    // RFC 6376 §3.4.4: an empty body and one of blank lines hash like the empty string.
    const empty = createHash('sha256').update('').digest('base64');
    assert.deepEqual([hashes[0], hashes[1], hashes[3], hashes[4]], [empty, empty, empty, empty]);
  });

  it('a large message (4 MiB) verifies; the body is hashed in place', async () => {
    const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n';
    const dirty = 'Some\ttabs  and  doubled  spaces   \r\n';
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < 4 * 1024 * 1024; i++) {
      const l = i % 97 === 0 ? dirty : i % 31 === 0 ? '\r\n' : line;
      parts.push(l);
      size += l.length;
    }
    const signed = signMessage(message(parts.join('')), keys, { now });
    assert.deepEqual(
      (await dkimpy(signed)).map((r) => r.ok),
      [true, true],
    );
    assert.deepEqual(
      (await mailauth(signed)).map((r) => r.result),
      ['pass', 'pass'],
    );
  });

  it('x= expiry from the options; verifiers refuse the signature after it', async () => {
    const signed = signMessage(message(), keys, { now, expireAfterSeconds: 3600 });
    const tags = signatureTags(signed);
    assert.deepEqual(
      tags.map((t) => t.get('x')),
      [String(T0 / 1000 + 3600), String(T0 / 1000 + 3600)],
    );
    assert.deepEqual(
      (await mailauth(signed, new Date(T0 + 3_599_000))).map((r) => r.result),
      ['pass', 'pass'],
    );
    const late = await mailauth(signed, new Date(T0 + 3_601_000));
    assert.deepEqual(
      late.map((r) => [r.result, r.comment]),
      [
        ['neutral', 'expired'],
        ['neutral', 'expired'],
      ],
    );
    // dkimpy uses the wall clock, which is long past 2025-01-01T01:00Z.
    const py = await dkimpy(signed);
    assert.deepEqual(
      py.map((r) => r.ok),
      [false, false],
    );
    for (const r of py) assert.match(r.error ?? '', /x= value is past/);
  });
});

describe('DKIM body canonicalisation against a reference', () => {
  /** RFC 6376 §3.4.4 the plain way (dkimpy's regular expressions), for bodies that end in CRLF. */
  function referenceBodyHash(body: string): string {
    let s = body.replace(/[\t ]+\r\n/g, '\r\n').replace(/[\t ]+/g, ' ');
    s = s.replace(/(\r\n)+$/, '\r\n');
    if (s === '\r\n') s = '';
    return createHash('sha256').update(s, 'latin1').digest('base64');
  }

  it('gives the reference body hash for 3,000 generated bodies', async () => {
    const ed = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    const key: DkimKey = {
      selector: 's',
      algorithm: ed.algorithm,
      privateKeyPem: ed.privateKeyPem,
      domain: DOMAIN,
    };
    // A small deterministic generator (mulberry32).
    let seed = 0x5eed;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const atoms = ['a', 'b', ' ', '  ', '\t', ' \t ', '\r\n', '\r\n', '\r\n\r\n', '\xe9'];
    for (let n = 0; n < 3000; n++) {
      let body = '';
      const length = Math.floor(random() * 40);
      for (let i = 0; i < length; i++) body += atoms[Math.floor(random() * atoms.length)];
      if (body !== '' && !body.endsWith('\r\n')) body += '\r\n';
      const text = Buffer.from(`From: a@sender.test\r\n\r\n${body}`, 'latin1');
      const fields = dkimSignatureFields(text, [key], { now });
      assert.equal(signatureTags(fields)[0]?.get('bh'), referenceBodyHash(body), JSON.stringify(body));
    }
  });
});

describe('DKIM keys and errors', () => {
  it('generateDkimKey: PEM and TXT record for RSA (SPKI) and Ed25519 (raw 32 octets); dkimDnsRecord matches', async () => {
    const rsa = await generateDkimKey(DkimAlgorithm.RsaSha256);
    assert.match(rsa.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(rsa.txt, `v=DKIM1; k=rsa; p=${rsa.publicKeyBase64}`);
    const rsaPublic = createPublicKey({
      key: Buffer.from(rsa.publicKeyBase64, 'base64'),
      format: 'der',
      type: 'spki',
    });
    assert.equal(rsaPublic.asymmetricKeyDetails?.modulusLength, 2048);

    const ed = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    assert.equal(ed.txt, `v=DKIM1; k=ed25519; p=${ed.publicKeyBase64}`);
    assert.equal(Buffer.from(ed.publicKeyBase64, 'base64').length, 32);

    const key: DkimKey = {
      selector: 'a.b',
      algorithm: ed.algorithm,
      privateKeyPem: ed.privateKeyPem,
      domain: 'Sender.Test.',
    };
    assert.deepEqual(dkimDnsRecord(key), { name: 'a.b._domainkey.sender.test', value: ed.txt });
    assert.equal(
      dkimDnsRecord({
        selector: 'r',
        algorithm: rsa.algorithm,
        privateKeyPem: rsa.privateKeyPem,
        domain: DOMAIN,
      }).value,
      rsa.txt,
    );
  });

  it('no keys: the message comes back as it is', () => {
    const text = message();
    assert.equal(signMessage(text, []), text);
    assert.equal(dkimSignatureFields(text, []).length, 0);
  });

  it('typed errors with stable codes for bad keys, messages and options', async () => {
    const ed = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    const rsa = await generateDkimKey(DkimAlgorithm.RsaSha256);
    const good: DkimKey = {
      selector: 's1',
      algorithm: ed.algorithm,
      privateKeyPem: ed.privateKeyPem,
      domain: DOMAIN,
    };
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (error) {
        assert.ok(error instanceof DkimError, String(error));
        return error.code;
      }
      return 'no error';
    };
    const sign = (key: Partial<DkimKey>, text = message(), options = {}) =>
      code(() => signMessage(text, [{ ...good, ...key } as DkimKey], { now, ...options }));

    assert.equal(sign({}), 'no error');
    assert.equal(sign({ privateKeyPem: 'not a key' }), DkimErrorCode.InvalidKey);
    assert.equal(
      sign({ privateKeyPem: ed.privateKeyPem.replace(/\n[^\n]+\n-----END/, '\nAAAA\n-----END') }),
      DkimErrorCode.InvalidKey,
    );
    const publicPem = createPublicKey(ed.privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    assert.equal(sign({ privateKeyPem: publicPem }), DkimErrorCode.InvalidKey);
    assert.equal(sign({ algorithm: DkimAlgorithm.RsaSha256 }), DkimErrorCode.KeyTypeMismatch);
    assert.equal(
      sign({ algorithm: DkimAlgorithm.Ed25519Sha256, privateKeyPem: rsa.privateKeyPem }),
      DkimErrorCode.KeyTypeMismatch,
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    assert.equal(sign({ privateKeyPem: ec.toString() }), DkimErrorCode.KeyTypeMismatch);
    const short = generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    assert.equal(
      sign({ algorithm: DkimAlgorithm.RsaSha256, privateKeyPem: short.toString() }),
      DkimErrorCode.KeySize,
    );
    assert.equal(sign({ algorithm: 'rsa-sha1' as DkimAlgorithm }), DkimErrorCode.UnsupportedAlgorithm);
    assert.equal(sign({ selector: 'bad selector' }), DkimErrorCode.InvalidSelector);
    assert.equal(sign({ selector: 'x;s=evil' }), DkimErrorCode.InvalidSelector);
    assert.equal(sign({ domain: 'localhost' }), DkimErrorCode.InvalidDomain);
    assert.equal(sign({ domain: 'a..test' }), DkimErrorCode.InvalidDomain);

    const noFrom = Buffer.from('To: bob@example.test\r\nSubject: x\r\n\r\nbody\r\n');
    assert.equal(sign({}, noFrom), DkimErrorCode.NoFrom);
    assert.equal(
      sign({}, Buffer.from('From: a@sender.test\nTo: b@x.test\r\n\r\nx\r\n')),
      DkimErrorCode.MalformedMessage,
    );
    assert.equal(
      sign({}, Buffer.from('From: a@sender.test\r\n\r\nbare\nLF\r\n')),
      DkimErrorCode.MalformedMessage,
    );
    assert.equal(
      sign({}, Buffer.from('From: a@sender.test\r\n\r\nbare\rCR\r\n')),
      DkimErrorCode.MalformedMessage,
    );
    assert.equal(
      sign({}, Buffer.from('From: a@sender.test\r\nno colon here\r\n\r\nx\r\n')),
      DkimErrorCode.MalformedMessage,
    );
    assert.equal(sign({}, Buffer.from(' From: a@sender.test\r\n\r\nx\r\n')), DkimErrorCode.MalformedMessage);
    assert.equal(sign({}, message(), { expireAfterSeconds: 0 }), DkimErrorCode.InvalidOptions);
    assert.equal(sign({}, message(), { expireAfterSeconds: 1.5 }), DkimErrorCode.InvalidOptions);
    assert.equal(sign({}, message(), { headers: ['to', 'bad name'] }), DkimErrorCode.InvalidOptions);

    // checkDkimKey reports the same, for config loading; the error names the key.
    assert.doesNotThrow(() => checkDkimKey(Object.freeze({ ...good })));
    assert.throws(
      () => checkDkimKey({ ...good, privateKeyPem: rsa.privateKeyPem }),
      (error: unknown) =>
        error instanceof DkimError &&
        error.code === DkimErrorCode.KeyTypeMismatch &&
        error.selector === 's1' &&
        error.domain === DOMAIN,
    );
  });

  it('From is signed and oversigned even when the options leave it out', () => {
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const key: DkimKey = {
      selector: 's',
      algorithm: DkimAlgorithm.Ed25519Sha256,
      privateKeyPem: ed,
      domain: DOMAIN,
    };
    const fields = dkimSignatureFields(message(), [key], { now, headers: ['subject'], oversign: [] });
    assert.equal(signatureTags(fields)[0]?.get('h'), 'from:from:subject');
  });
});
