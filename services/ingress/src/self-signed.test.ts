import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { createSelfSigned, SelfSignedDefaults } from './self-signed.ts';

test('a self-signed certificate is ECDSA P-256, names the host and the extra names, and matches its key', async () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const pair = await createSelfSigned({
    hostname: 'Mail.Example.Test',
    names: ['*.example.test', '127.0.0.1'],
    now,
  });
  const certificate = new X509Certificate(pair.cert);

  assert.equal(certificate.subject, 'CN=Mail.Example.Test');
  assert.equal(certificate.subjectAltName, 'DNS:mail.example.test, DNS:*.example.test, IP Address:127.0.0.1');
  assert.equal(certificate.publicKey.asymmetricKeyType, 'ec');
  assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(certificate.checkPrivateKey(createPrivateKey(pair.key)));
  assert.equal(certificate.issuer, certificate.subject);
  assert.ok(certificate.verify(certificate.publicKey), 'self-signed');
  assert.equal(certificate.ca, false);
  assert.deepEqual(certificate.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth only');
  assert.match(pair.key, /^-----BEGIN PRIVATE KEY-----\n/);

  assert.equal(certificate.validFromDate.getTime(), now.getTime() - SelfSignedDefaults.backdateMs);
  assert.equal(pair.notAfter.getTime(), now.getTime() + SelfSignedDefaults.validityDays * 86_400_000);
  assert.equal(certificate.validToDate.getTime(), pair.notAfter.getTime());
});

test('each certificate gets a fresh key and serial number', async () => {
  const [a, b] = await Promise.all([
    createSelfSigned({ hostname: 'localhost' }),
    createSelfSigned({ hostname: 'localhost' }),
  ]);
  assert.notEqual(a.key, b.key);
  assert.notEqual(new X509Certificate(a.cert).serialNumber, new X509Certificate(b.cert).serialNumber);
  assert.equal(new X509Certificate(a.cert).subjectAltName, 'DNS:localhost');
});
