import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DnsRecordError, DnsRecordErrorCode } from './errors.ts';
import {
  type DesiredRecordsInput,
  desiredRecords,
  mtaStsId,
  mtaStsPolicy,
  presentation,
  txtStrings,
} from './records.ts';

const DKIM_RSA = `v=DKIM1; k=rsa; p=${'A'.repeat(392)}`;
const DKIM_ED = `v=DKIM1; k=ed25519; p=${'B'.repeat(43)}=`;

const input: DesiredRecordsInput = {
  domain: 'Example.TEST.',
  mxHost: 'MX.example.test.',
  dmarc: { policy: 'reject', rua: ['postmaster@example.test', 'mailto:dmarc@reports.test'] },
  mtaSts: { mode: 'enforce', maxAgeSeconds: 604_800 },
  dkim: [
    { selector: 'petrel-1-rsa', txt: DKIM_RSA },
    { selector: 'Petrel-1-ED25519', txt: DKIM_ED },
  ],
};

function throwsRecord(fn: () => unknown, code: DnsRecordErrorCode, what: string): void {
  assert.throws(fn, (error: unknown) => error instanceof DnsRecordError && error.code === code, what);
}

describe('desiredRecords', () => {
  it('lists MX, SPF, a DKIM record per key, DMARC and MTA-STS, under lower-case names', () => {
    const policy = mtaStsPolicy({ mode: 'enforce', maxAgeSeconds: 604_800, mxHosts: ['mx.example.test'] });
    assert.deepEqual(desiredRecords(input), [
      { purpose: 'MX', type: 'MX', name: 'example.test', value: '10 mx.example.test.' },
      { purpose: 'SPF', type: 'TXT', name: 'example.test', value: 'v=spf1 mx -all' },
      { purpose: 'DKIM', type: 'TXT', name: 'petrel-1-rsa._domainkey.example.test', value: DKIM_RSA },
      { purpose: 'DKIM', type: 'TXT', name: 'petrel-1-ed25519._domainkey.example.test', value: DKIM_ED },
      {
        purpose: 'DMARC',
        type: 'TXT',
        name: '_dmarc.example.test',
        value: 'v=DMARC1; p=reject; rua=mailto:postmaster@example.test,mailto:dmarc@reports.test',
      },
      {
        purpose: 'MTA-STS',
        type: 'TXT',
        name: '_mta-sts.example.test',
        value: `v=STSv1; id=${mtaStsId(policy)}`,
      },
    ]);
  });

  it('leaves DMARC, MTA-STS and DKIM out when not asked for, and takes a given SPF record', () => {
    const records = desiredRecords({
      domain: 'example.test',
      mxHost: 'mx.example.test',
      spf: '  v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all ',
    });
    assert.deepEqual(
      records.map((r) => [r.purpose, r.value]),
      [
        ['MX', '10 mx.example.test.'],
        ['SPF', 'v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all'],
      ],
    );
    assert.equal(
      desiredRecords({ ...input, dmarc: { policy: 'none' } }).find((r) => r.purpose === 'DMARC')?.value,
      'v=DMARC1; p=none',
    );
  });

  it('derives the MTA-STS id from the policy text: another policy, another id', () => {
    const idOf = (overrides: Partial<DesiredRecordsInput>) =>
      desiredRecords({ ...input, ...overrides }).find((r) => r.purpose === 'MTA-STS')?.value;
    const enforce = idOf({});
    assert.match(enforce ?? '', /^v=STSv1; id=[0-9a-f]{32}$/, 'RFC 8461 §3.1: 1-32 alphanumerics');
    assert.equal(idOf({}), enforce, 'stable');
    const ids = new Set([
      enforce,
      idOf({ mtaSts: { mode: 'testing', maxAgeSeconds: 604_800 } }),
      idOf({ mtaSts: { mode: 'none', maxAgeSeconds: 86_400 } }),
      idOf({ mtaSts: { mode: 'enforce', maxAgeSeconds: 86_400 } }),
      idOf({ mxHost: 'mx2.example.test' }),
    ]);
    assert.equal(ids.size, 5);
    // The policy as served can be given instead: the id is then that text's.
    const served = mtaStsPolicy({ mode: 'testing', maxAgeSeconds: 3600, mxHosts: ['mx.example.test'] });
    assert.equal(idOf({ mtaSts: { policy: served } }), `v=STSv1; id=${mtaStsId(served)}`);
    throwsRecord(
      () => idOf({ mtaSts: { policy: 'mode: enforce\r\n' } }),
      DnsRecordErrorCode.InvalidValue,
      'policy',
    );
  });

  it('refuses names DNS cannot carry and values that cannot be published', () => {
    const bad: [Partial<DesiredRecordsInput>, DnsRecordErrorCode][] = [
      [{ domain: 'localhost' }, DnsRecordErrorCode.InvalidName],
      [{ domain: 'bad_domain.test' }, DnsRecordErrorCode.InvalidName],
      [{ mxHost: 'mx..example.test' }, DnsRecordErrorCode.InvalidName],
      [{ dkim: [{ selector: 'sel_1', txt: DKIM_ED }] }, DnsRecordErrorCode.InvalidName],
      [
        {
          domain: `${'d'.repeat(60)}.${'e'.repeat(60)}.${'f'.repeat(60)}.test`,
          dkim: [{ selector: 's'.repeat(63), txt: DKIM_ED }],
        },
        DnsRecordErrorCode.InvalidName,
      ],
      [{ dkim: [{ selector: 'sel', txt: 'v=DKIM1;\n p=x' }] }, DnsRecordErrorCode.InvalidValue],
      [{ dkim: [{ selector: 'sel', txt: '' }] }, DnsRecordErrorCode.InvalidValue],
      [{ spf: 'spf1 mx -all' }, DnsRecordErrorCode.InvalidValue],
      [{ spf: 'v=spf10 mx' }, DnsRecordErrorCode.InvalidValue],
      [{ spf: 'v=spf1 a:é.test' }, DnsRecordErrorCode.InvalidValue],
      [{ dmarc: { policy: 'block' as 'none' } }, DnsRecordErrorCode.InvalidValue],
      [{ dmarc: { policy: 'none', rua: 'a@b.test,c@d.test' } }, DnsRecordErrorCode.InvalidValue],
      [{ dmarc: { policy: 'none', rua: 'https://reports.test/' } }, DnsRecordErrorCode.InvalidValue],
      [{ mtaSts: { mode: 'enforce', maxAgeSeconds: 31_557_601 } }, DnsRecordErrorCode.InvalidValue],
    ];
    for (const [overrides, code] of bad) {
      throwsRecord(() => desiredRecords({ ...input, ...overrides }), code, JSON.stringify(overrides));
    }
  });
});

describe('mtaStsPolicy', () => {
  it('writes the RFC 8461 §3.2 policy file, CRLF-separated, one mx line per host', () => {
    assert.equal(
      mtaStsPolicy({
        mode: 'enforce',
        maxAgeSeconds: 604_800,
        mxHosts: ['MX.example.test.', '*.mx.example.net'],
      }),
      'version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmx: *.mx.example.net\r\nmax_age: 604800\r\n',
    );
  });

  it('keeps mode none a whole policy (RFC 8461 §8.3: how a domain withdraws MTA-STS)', () => {
    assert.equal(
      mtaStsPolicy({ mode: 'none', maxAgeSeconds: 86_400, mxHosts: ['mx.example.test', 'mx.example.test'] }),
      'version: STSv1\r\nmode: none\r\nmx: mx.example.test\r\nmax_age: 86400\r\n',
    );
  });

  it('refuses a max_age outside 0..31557600, an unknown mode, no or bad mx hosts', () => {
    const ok = { mode: 'testing' as const, maxAgeSeconds: 31_557_600, mxHosts: ['mx.example.test'] };
    assert.match(mtaStsPolicy(ok), /max_age: 31557600/);
    assert.match(mtaStsPolicy({ ...ok, maxAgeSeconds: 0 }), /max_age: 0\r\n/);
    for (const bad of [
      { ...ok, maxAgeSeconds: -1 },
      { ...ok, maxAgeSeconds: 1.5 },
      { ...ok, maxAgeSeconds: 31_557_601 },
      { ...ok, mode: 'strict' as 'none' },
      { ...ok, mxHosts: [] },
    ]) {
      throwsRecord(() => mtaStsPolicy(bad), DnsRecordErrorCode.InvalidValue, JSON.stringify(bad));
    }
    throwsRecord(() => mtaStsPolicy({ ...ok, mxHosts: ['mx.*.test'] }), DnsRecordErrorCode.InvalidName, 'mx');
  });
});

describe('txtStrings and presentation', () => {
  it('cuts TXT values into 255-octet character-strings that concatenate back to the value', () => {
    const value = 'x'.repeat(600);
    const strings = txtStrings(value);
    assert.deepEqual(
      strings.map((s) => s.length),
      [255, 255, 90],
    );
    assert.equal(strings.join(''), value);
    assert.deepEqual(txtStrings('v=spf1 -all'), ['v=spf1 -all']);
    assert.deepEqual(txtStrings(''), ['']);
  });

  it('writes zone-file lines, TXT quoted and split, quotes and backslashes escaped', () => {
    assert.equal(
      presentation({ purpose: 'MX', type: 'MX', name: 'example.test', value: '10 mx.example.test.' }),
      'example.test. IN MX 10 mx.example.test.',
    );
    const long = `v=DKIM1; k=rsa; p=${'C'.repeat(300)}`;
    assert.equal(
      presentation({ purpose: 'DKIM', type: 'TXT', name: 's._domainkey.example.test', value: long }),
      `s._domainkey.example.test. IN TXT "${long.slice(0, 255)}" "${long.slice(255)}"`,
    );
    assert.equal(
      presentation({ purpose: 'SPF', type: 'TXT', name: 'example.test', value: 'a "b" \\c' }),
      'example.test. IN TXT "a \\"b\\" \\\\c"',
    );
  });
});
