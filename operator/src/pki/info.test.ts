import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  type CertificateAuthority,
  createCa,
  type IssuedCertificate,
  issueServerCertificate,
  PKI_DEFAULTS,
} from './ca.ts';
import { PkiError, PkiErrorCode } from './errors.ts';
import { certificateInfo, needsRenewal, RenewalCode } from './info.ts';

const run = promisify(execFile);
const DAY = 24 * 60 * 60 * 1000;
const T0 = new Date('2030-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const NAMES = ['mail.example.test', 'mta-sts.example.test', '*.relay.example.test'];

let ca: CertificateAuthority;
let issued: IssuedCertificate;

before(async () => {
  ca = await createCa({ commonName: 'Petrel CA', now: T0 });
  issued = await issueServerCertificate({ ca, dnsNames: NAMES, now: T0 });
});

describe('certificateInfo', () => {
  it('reads the leaf of a chain: validity, names, issuer and the SHA-256 fingerprint openssl prints', async () => {
    const info = certificateInfo(issued.certPem);
    assert.equal(info.notBefore.getTime(), T0.getTime() - PKI_DEFAULTS.backdateMs);
    assert.equal(info.notAfter.getTime(), issued.notAfter.getTime());
    assert.deepEqual(info.dnsNames, NAMES);
    assert.equal(info.issuer, 'CN=Petrel CA');
    assert.equal(info.certificate.subject, 'CN=mail.example.test');

    const child = run('openssl', ['x509', '-noout', '-fingerprint', '-sha256']);
    child.child.stdin?.end(issued.certPem);
    const { stdout } = await child;
    assert.equal(stdout.trim(), `sha256 Fingerprint=${info.fingerprint}`);
    assert.notEqual(info.fingerprint, new X509Certificate(ca.certPem).fingerprint256);
  });

  it('throws a PkiError for text without a certificate, or a damaged one', () => {
    for (const text of ['', 'hello', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']) {
      assert.throws(
        () => certificateInfo(text),
        (error: unknown) => error instanceof PkiError && error.code === PkiErrorCode.InvalidCertificate,
      );
    }
  });
});

describe('needsRenewal', () => {
  const options = (now: Date) => ({ now, renewBeforeMs: 30 * DAY, dnsNames: NAMES });

  it('keeps a fresh certificate, parsed or as PEM, whatever the order, case or trailing dots of the names', () => {
    assert.equal(needsRenewal(issued.certPem, options(T0)), undefined);
    assert.equal(needsRenewal(certificateInfo(issued.certPem), options(T0)), undefined);
    const shuffled = {
      ...options(T0),
      dnsNames: ['*.Relay.Example.Test', 'MTA-STS.example.test.', 'mail.example.test'],
    };
    assert.equal(needsRenewal(issued.certPem, shuffled), undefined);
  });

  it('renews renewBeforeMs before notAfter, and after it', () => {
    const renewAt = issued.notAfter.getTime() - 30 * DAY;
    assert.equal(needsRenewal(issued.certPem, options(new Date(renewAt - 1))), undefined);
    const due = needsRenewal(issued.certPem, options(new Date(renewAt)));
    assert.equal(due?.code, RenewalCode.Expiring);
    assert.match(due?.message ?? '', /^expires /);
    const expired = needsRenewal(issued.certPem, options(at(91 * DAY)));
    assert.equal(expired?.code, RenewalCode.Expiring);
    assert.match(expired?.message ?? '', /^expired /);
  });

  it('renews a certificate that is missing, unparsable, or not yet valid', () => {
    assert.equal(needsRenewal(undefined, options(T0))?.code, RenewalCode.Missing);
    assert.equal(needsRenewal('  \n', options(T0))?.code, RenewalCode.Missing);
    assert.equal(needsRenewal('garbage', options(T0))?.code, RenewalCode.Unparsable);
    assert.equal(needsRenewal(issued.certPem, options(at(-DAY)))?.code, RenewalCode.NotYetValid);
  });

  it('renews when the names change: one added, one removed, one replaced', () => {
    for (const dnsNames of [
      [...NAMES, 'smtp.example.test'],
      NAMES.slice(1),
      ['mail.example.test', 'mta-sts.example.test', '*.example.test'],
    ]) {
      const reason = needsRenewal(issued.certPem, { ...options(T0), dnsNames });
      assert.equal(reason?.code, RenewalCode.NamesChanged, JSON.stringify(dnsNames));
    }
  });

  it('renews when the key beside it is not its key, or the CA was replaced (even with the same name)', async () => {
    const other = await issueServerCertificate({ ca, dnsNames: NAMES, now: T0 });
    assert.equal(needsRenewal(issued.certPem, { ...options(T0), keyPem: issued.keyPem }), undefined);
    assert.equal(
      needsRenewal(issued.certPem, { ...options(T0), keyPem: other.keyPem })?.code,
      RenewalCode.KeyMismatch,
    );
    assert.equal(
      needsRenewal(issued.certPem, { ...options(T0), keyPem: 'nope' })?.code,
      RenewalCode.KeyMismatch,
    );

    assert.equal(needsRenewal(issued.certPem, { ...options(T0), caCertPem: ca.certPem }), undefined);
    const newCa = await createCa({ commonName: 'Petrel CA', now: T0 });
    const reason = needsRenewal(issued.certPem, { ...options(T0), caCertPem: newCa.certPem });
    assert.equal(reason?.code, RenewalCode.IssuerChanged);
  });
});
