import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import * as tls from 'node:tls';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { createCa, issueServerCertificate, PKI_DEFAULTS } from './ca.ts';
import { PkiError, PkiErrorCode } from './errors.ts';

const run = promisify(execFile);
const DAY = 24 * 60 * 60 * 1000;
/** A fixed clock for everything that does not go through a peer's own clock. */
const T0 = new Date('2030-03-01T12:00:00.000Z');
const NAMES = ['mail.example.test', 'MTA-STS.Example.Test', '*.relay.example.test'];

function certificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map(
    (block) => new X509Certificate(block),
  );
}

function leafOf(pem: string): X509Certificate {
  const [leaf] = certificates(pem);
  assert.ok(leaf, 'a certificate');
  return leaf;
}

async function rejectsWith(promise: Promise<unknown>, code: PkiErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PkiError, `a PkiError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

describe('createCa', () => {
  it('makes a self-signed ECDSA P-256 CA with critical BasicConstraints, keyCertSign + cRLSign and an SKI', async () => {
    const ca = await createCa({ commonName: 'Petrel CA test', now: T0 });
    const cert = new X509Certificate(ca.certPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, 'CN=Petrel CA test');
    assert.equal(cert.issuer, cert.subject);
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8');
    assert.equal(cert.validFromDate.getTime(), T0.getTime() - PKI_DEFAULTS.backdateMs);
    assert.equal(cert.validToDate.getTime(), T0.getTime() + 3650 * DAY);

    const parsed = new x509.X509Certificate(ca.certPem);
    const basic = parsed.getExtension(x509.BasicConstraintsExtension);
    assert.ok(basic);
    assert.equal(basic.critical, true);
    assert.equal(basic.ca, true);
    assert.equal(basic.pathLength, 0);
    const usage = parsed.getExtension(x509.KeyUsagesExtension);
    assert.ok(usage);
    assert.equal(usage.critical, true);
    assert.equal(usage.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    assert.match(parsed.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? '', /^[0-9a-f]{40}$/);
  });

  it('takes the validity in days and refuses bad options', async () => {
    const ca = await createCa({ commonName: 'short', now: T0, validityDays: 7 });
    assert.equal(new X509Certificate(ca.certPem).validToDate.getTime(), T0.getTime() + 7 * DAY);
    await rejectsWith(createCa({ commonName: ' ', now: T0 }), PkiErrorCode.InvalidOptions);
    await rejectsWith(createCa({ commonName: 'x'.repeat(65), now: T0 }), PkiErrorCode.InvalidOptions);
    await rejectsWith(createCa({ commonName: 'ok', now: T0, validityDays: 0 }), PkiErrorCode.InvalidOptions);
    await rejectsWith(createCa({ commonName: 'ok', now: new Date(Number.NaN) }), PkiErrorCode.InvalidOptions);
  });
});

describe('issueServerCertificate', () => {
  it('issues a leaf node:crypto verifies against the CA, for exactly its names', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0 });
    const caCert = new X509Certificate(ca.certPem);
    const issued = await issueServerCertificate({ ca, dnsNames: NAMES, now: T0 });

    const chain = certificates(issued.certPem);
    assert.equal(chain.length, 2, 'leaf then CA');
    const [leaf, second] = chain;
    assert.ok(leaf && second);
    assert.equal(second.fingerprint256, caCert.fingerprint256);
    assert.ok(leaf.checkIssued(caCert));
    assert.ok(leaf.verify(caCert.publicKey));
    assert.equal(leaf.ca, false);
    assert.equal(leaf.subject, 'CN=mail.example.test');
    assert.equal(
      leaf.subjectAltName,
      'DNS:mail.example.test, DNS:mta-sts.example.test, DNS:*.relay.example.test',
    );
    assert.equal(leaf.checkHost('mail.example.test'), 'mail.example.test');
    assert.equal(leaf.checkHost('mta-sts.example.test'), 'mta-sts.example.test');
    assert.equal(leaf.checkHost('smtp.relay.example.test'), '*.relay.example.test');
    assert.equal(leaf.checkHost('example.test'), undefined);
    assert.equal(leaf.checkHost('a.b.relay.example.test'), undefined, 'a wildcard covers one label');

    // The key is a fresh P-256 key that belongs to the leaf.
    const key = createPrivateKey(issued.keyPem);
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(leaf.checkPrivateKey(key));
    assert.ok(!caCert.checkPrivateKey(key));

    assert.equal(leaf.validFromDate.getTime(), T0.getTime() - PKI_DEFAULTS.backdateMs);
    assert.equal(leaf.validToDate.getTime(), T0.getTime() + 90 * DAY);
    assert.equal(issued.notAfter.getTime(), leaf.validToDate.getTime());
  });

  it('marks the leaf as a TLS server certificate whose AKI is the CA SKI', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0 });
    const issued = await issueServerCertificate({ ca, dnsNames: ['mail.example.test'], now: T0 });
    const leaf = new x509.X509Certificate(leafOf(issued.certPem).raw);
    const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
    assert.deepEqual([...(eku?.usages ?? [])], [x509.ExtendedKeyUsage.serverAuth]);
    const usage = leaf.getExtension(x509.KeyUsagesExtension);
    assert.equal(usage?.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(usage?.critical, true);
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    const caSki = new x509.X509Certificate(ca.certPem).getExtension(
      x509.SubjectKeyIdentifierExtension,
    )?.keyId;
    assert.ok(caSki);
    assert.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, caSki);
    assert.equal(leaf.getExtension(x509.SubjectAlternativeNameExtension)?.critical, false);
  });

  it('draws a new random serial every time', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0 });
    const serials = new Set<string>([new X509Certificate(ca.certPem).serialNumber]);
    for (let i = 0; i < 5; i++) {
      const issued = await issueServerCertificate({ ca, dnsNames: ['mail.example.test'], now: T0 });
      const serial = leafOf(issued.certPem).serialNumber;
      assert.match(serial, /^[4-7][0-9A-F]{31}$/, '16 octets, positive');
      serials.add(serial);
    }
    assert.equal(serials.size, 6);
  });

  it('leaves the subject empty and the SAN critical when the first name is too long for a CN', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0 });
    const long = `${'a'.repeat(60)}.example.test`;
    const issued = await issueServerCertificate({ ca, dnsNames: [long], now: T0 });
    const leaf = leafOf(issued.certPem);
    assert.equal(leaf.subject, undefined);
    assert.equal(leaf.checkHost(long), long);
    const san = new x509.X509Certificate(leaf.raw).getExtension(x509.SubjectAlternativeNameExtension);
    assert.equal(san?.critical, true);
  });

  it('ends the leaf with its CA when the CA expires first', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0, validityDays: 30 });
    const issued = await issueServerCertificate({ ca, dnsNames: ['mail.example.test'], now: T0 });
    const caEnd = new X509Certificate(ca.certPem).validToDate;
    assert.equal(issued.notAfter.getTime(), caEnd.getTime());
    assert.equal(leafOf(issued.certPem).validToDate.getTime(), caEnd.getTime());
  });

  it('refuses bad names, a CA that is not valid then, a leaf as CA, a foreign key', async () => {
    const ca = await createCa({ commonName: 'Petrel CA', now: T0, validityDays: 10 });
    const other = await createCa({ commonName: 'Petrel CA', now: T0 });
    const issue = (overrides: Partial<Parameters<typeof issueServerCertificate>[0]>) =>
      issueServerCertificate({ ca, dnsNames: ['mail.example.test'], now: T0, ...overrides });

    await rejectsWith(issue({ dnsNames: [] }), PkiErrorCode.InvalidDnsName);
    await rejectsWith(issue({ dnsNames: ['under_score.example.test'] }), PkiErrorCode.InvalidDnsName);
    await rejectsWith(issue({ dnsNames: ['a.*.example.test'] }), PkiErrorCode.InvalidDnsName);
    await rejectsWith(issue({ dnsNames: ['-bad.example.test'] }), PkiErrorCode.InvalidDnsName);
    await rejectsWith(issue({ now: new Date(T0.getTime() + 11 * DAY) }), PkiErrorCode.CaNotValid);
    await rejectsWith(issue({ now: new Date(T0.getTime() - DAY) }), PkiErrorCode.CaNotValid);
    await rejectsWith(issue({ validityDays: -1 }), PkiErrorCode.InvalidOptions);
    await rejectsWith(issue({ ca: { certPem: ca.certPem, keyPem: other.keyPem } }), PkiErrorCode.KeyMismatch);
    const leaf = await issue({});
    await rejectsWith(issue({ ca: { certPem: leaf.certPem, keyPem: leaf.keyPem } }), PkiErrorCode.NotCa);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    await rejectsWith(
      issue({ ca: { certPem: ca.certPem, keyPem: String(rsa) } }),
      PkiErrorCode.UnsupportedKey,
    );
    await rejectsWith(issue({ ca: { certPem: 'nope', keyPem: ca.keyPem } }), PkiErrorCode.InvalidCertificate);
    await rejectsWith(issue({ ca: { certPem: ca.certPem, keyPem: 'nope' } }), PkiErrorCode.InvalidKey);
  });
});

/** A TLS server with `issued` on loopback; resolves to its port. */
async function tlsServer(t: TestContext, issued: { certPem: string; keyPem: string }): Promise<number> {
  const server = tls.createServer({ cert: issued.certPem, key: issued.keyPem }, (socket) => {
    socket.end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as AddressInfo).port;
}

/** A handshake's outcome: the server's greeting, or the client's error code. */
function handshake(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: [ca] });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('end', () => resolve(`ok:${data}`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(`error:${error.code ?? error.message}`);
    });
  });
}

describe('issued certificates in real TLS and openssl', () => {
  // The peer checks validity against the real clock, so these certificates are made for it.
  it('serve a TLS handshake for their names only, to clients trusting the CA', async (t) => {
    const now = new Date();
    const ca = await createCa({ commonName: 'Petrel CA', now });
    const issued = await issueServerCertificate({ ca, dnsNames: NAMES, now });
    const port = await tlsServer(t, issued);

    assert.equal(await handshake(port, 'mail.example.test', ca.certPem), 'ok:hello');
    assert.equal(await handshake(port, 'smtp.relay.example.test', ca.certPem), 'ok:hello');
    assert.equal(
      await handshake(port, 'other.example.test', ca.certPem),
      'error:ERR_TLS_CERT_ALTNAME_INVALID',
    );
    const stranger = await createCa({ commonName: 'Petrel CA', now });
    assert.equal(
      await handshake(port, 'mail.example.test', stranger.certPem),
      // The server sends its chain, whose self-signed CA the client does not trust.
      'error:SELF_SIGNED_CERT_IN_CHAIN',
    );
  });

  it('pass openssl verify with the CA as the only trust anchor', async (t) => {
    const now = new Date();
    const dir = await mkdtemp(join(tmpdir(), 'petrel-pki-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const ca = await createCa({ commonName: 'Petrel CA', now });
    const stranger = await createCa({ commonName: 'Petrel CA', now });
    const issued = await issueServerCertificate({ ca, dnsNames: NAMES, now });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'stranger.pem'), stranger.certPem);
    await writeFile(join(dir, 'leaf.pem'), issued.certPem);

    const verify = async (caFile: string, ...extra: string[]): Promise<string> => {
      const args = [
        'verify',
        '-x509_strict',
        '-purpose',
        'sslserver',
        '-CAfile',
        join(dir, caFile),
        ...extra,
      ];
      try {
        const { stdout } = await run('openssl', [...args, join(dir, 'leaf.pem')]);
        return stdout.trim();
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: string; stderr?: string };
        return `failed: ${stdout ?? ''}${stderr ?? ''}`;
      }
    };
    assert.equal(await verify('ca.pem'), `${join(dir, 'leaf.pem')}: OK`);
    assert.equal(
      await verify('ca.pem', '-verify_hostname', 'mta-sts.example.test'),
      `${join(dir, 'leaf.pem')}: OK`,
    );
    assert.match(await verify('ca.pem', '-verify_hostname', 'other.test'), /^failed: .*hostname mismatch/s);
    assert.match(await verify('stranger.pem'), /^failed: .*unable to get local issuer certificate/s);
    const afterExpiry = Math.floor(issued.notAfter.getTime() / 1000) + 60;
    assert.match(
      await verify('ca.pem', '-attime', String(afterExpiry)),
      /^failed: .*certificate has expired/s,
    );
  });
});
