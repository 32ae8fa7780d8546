import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { tempDir, waitFor } from '@petrel/test-harness';
import {
  CertificateError,
  CertificateErrorCode,
  CertificateStore,
  type CertificateStoreOptions,
  type ConfigCertificate,
  configCertificates,
} from './certificates.ts';
import { createSelfSigned, type SelfSignedPair } from './self-signed.ts';

interface LogLine {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

function recordingLog(): CertificateStoreOptions['log'] & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, message });
    };
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

async function writePair(dir: string, source: string, pair: { cert: string; key: string }): Promise<void> {
  await mkdir(join(dir, source), { recursive: true });
  await writeFile(join(dir, source, 'tls.crt'), pair.cert);
  await writeFile(join(dir, source, 'tls.key'), pair.key);
}

async function open(
  t: TestContext,
  options: Partial<CertificateStoreOptions> & { dir: string },
): Promise<CertificateStore> {
  const store = await CertificateStore.open({
    hostname: 'a.test',
    selfSigned: false,
    log: recordingLog(),
    watch: false,
    ...options,
  });
  t.after(() => store.close());
  return store;
}

type ServerKind = 'tls.Server' | 'TLSSocket';
const serverKinds: readonly ServerKind[] = ['tls.Server', 'TLSSocket'];

/** Implicit TLS (tls.createServer, port 465) or a TLSSocket over a plain socket, as STARTTLS does. */
async function listen(t: TestContext, store: CertificateStore, kind: ServerKind): Promise<number> {
  let server: net.Server;
  if (kind === 'tls.Server') {
    const tlsServer = tls.createServer(store.tlsOptions(), (socket) => socket.end());
    t.after(store.attach(tlsServer));
    tlsServer.on('tlsClientError', () => {});
    server = tlsServer;
  } else {
    server = net.createServer((raw) => {
      const socket = new tls.TLSSocket(raw, { isServer: true, ...store.tlsOptions() });
      socket.on('secure', () => socket.end());
      socket.on('error', () => raw.destroy());
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

interface Handshake {
  fingerprint: string;
  protocol: string | null;
}

/** One TLS handshake; verifies the certificate (chain and name) when `ca` is given. */
function handshake(
  port: number,
  options: { servername?: string; ca?: string } & Pick<
    tls.ConnectionOptions,
    'minVersion' | 'maxVersion' | 'ciphers'
  > = {},
): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const { ca, ...rest } = options;
    const socket = tls.connect(
      { host: '127.0.0.1', port, rejectUnauthorized: ca !== undefined, ca, ...rest },
      () => {
        const peer = socket.getPeerX509Certificate();
        resolve({ fingerprint: peer?.fingerprint256 ?? '', protocol: socket.getProtocol() });
        socket.destroy();
      },
    );
    socket.on('error', reject);
  });
}

const certs = {
  wild: await createSelfSigned({ hostname: 'b.test', names: ['*.b.test'] }),
  exact: await createSelfSigned({ hostname: 'x.b.test' }),
  a: await createSelfSigned({ hostname: 'a.test' }),
};

test('SNI picks the certificate by exact name, then by wildcard; unknown or absent SNI gets the hostname certificate', async (t) => {
  const dir = await tempDir('tls-sni');
  await writePair(dir, '1-wild', certs.wild);
  await writePair(dir, '2-exact', certs.exact);
  // A chain in tls.crt: the leaf first, then an (unrelated here) issuer certificate.
  await writePair(dir, '3-a', { cert: certs.a.cert + certs.exact.cert, key: certs.a.key });
  const store = await open(t, { dir, hostname: 'A.test.' });
  assert.deepEqual(store.names, ['*.b.test', 'a.test', 'b.test', 'x.b.test']);

  for (const kind of serverKinds) {
    const port = await listen(t, store, kind);
    const verified = async (servername: string, pair: SelfSignedPair): Promise<void> => {
      const result = await handshake(port, { servername, ca: pair.cert });
      assert.equal(result.fingerprint, fingerprint(pair.cert), `${kind}: ${servername}`);
    };
    await verified('b.test', certs.wild);
    await verified('foo.b.test', certs.wild);
    await verified('FOO.B.Test', certs.wild);
    await verified('x.b.test', certs.exact); // exact beats the wildcard
    await verified('a.test', certs.a);

    const a = fingerprint(certs.a.cert);
    assert.equal((await handshake(port, { servername: 'unknown.test' })).fingerprint, a, kind);
    // A wildcard covers exactly one label (RFC 6125 §6.4.3).
    assert.equal((await handshake(port, { servername: 'deep.x.b.test' })).fingerprint, a, kind);
    assert.equal((await handshake(port, {})).fingerprint, a, `${kind}: no SNI`);
  }
});

test('without a certificate for the hostname the default is the first by directory name', async (t) => {
  const dir = await tempDir('tls-default');
  await writePair(dir, 'z-a', certs.a);
  await writePair(dir, 'm-wild', certs.wild);
  const store = await open(t, { dir, hostname: 'nothing.test' });
  assert.equal(store.contextFor(undefined), store.contextFor('b.test'));
  assert.equal(store.contextFor('other.test'), store.contextFor('b.test'));
  assert.notEqual(store.contextFor('a.test'), store.contextFor('b.test'));
});

test('TLS 1.1 and older are refused on both listener kinds', async (t) => {
  const dir = await tempDir('tls-version');
  await writePair(dir, 'a', certs.a);
  const store = await open(t, { dir });
  // Control: the same client completes a TLS 1.1 handshake with a server that allows it, so the
  // refusal below comes from our policy and not from the client.
  const legacy = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
  const permissive = tls.createServer({ ...certs.a, ...legacy }, (socket) => socket.end());
  await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
  t.after(() => permissive.close());
  const control = await handshake((permissive.address() as net.AddressInfo).port, legacy);
  assert.equal(control.protocol, 'TLSv1.1');

  // Refused twice over: by minVersion, and by the OpenSSL 3 security level of Node's default
  // ciphers; this test fails only if both are loosened.
  for (const kind of serverKinds) {
    const port = await listen(t, store, kind);
    await assert.rejects(
      handshake(port, { servername: 'a.test', ...legacy }),
      /protocol version|alert/i,
      kind,
    );
    const modern = await handshake(port, { servername: 'a.test', ca: certs.a.cert, maxVersion: 'TLSv1.2' });
    assert.equal(modern.protocol, 'TLSv1.2', kind);
  }
});

test('a certificate swapped on disk the Kubernetes way is served to the next connection, with and without SNI', async (t) => {
  const dir = await tempDir('tls-swap');
  const mount = join(dir, 'mail');
  // A Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>; kubelet swaps ..data by rename.
  const version = async (name: string, pair: SelfSignedPair): Promise<void> => {
    await mkdir(join(mount, name), { recursive: true });
    await writeFile(join(mount, name, 'tls.crt'), pair.cert);
    await writeFile(join(mount, name, 'tls.key'), pair.key);
  };
  await version('..2026_01_01', certs.a);
  await symlink('..2026_01_01', join(mount, '..data'));
  await symlink('..data/tls.crt', join(mount, 'tls.crt'));
  await symlink('..data/tls.key', join(mount, 'tls.key'));
  const log = recordingLog();
  const store = await open(t, { dir, log, watch: true, reloadDelayMs: 20 });
  const ports = await Promise.all(serverKinds.map((kind) => listen(t, store, kind)));
  for (const port of ports) {
    assert.equal((await handshake(port, {})).fingerprint, fingerprint(certs.a.cert));
  }

  const renewed = await createSelfSigned({ hostname: 'a.test', names: ['smtp.a.test'] });
  await version('..2026_02_01', renewed);
  await symlink('..2026_02_01', join(mount, '..data_tmp'));
  await rename(join(mount, '..data_tmp'), join(mount, '..data'));
  await rm(join(mount, '..2026_01_01'), { recursive: true });

  for (const port of ports) {
    await waitFor(
      async () =>
        (await handshake(port, { servername: 'smtp.a.test', ca: renewed.cert })).fingerprint ===
        fingerprint(renewed.cert),
      { timeoutMs: 10_000, message: 'the renewed certificate by SNI' },
    );
    // Clients without SNI get the tls.Server's own default context, kept current by attach().
    assert.equal((await handshake(port, {})).fingerprint, fingerprint(renewed.cert));
  }
  assert.deepEqual(store.names, ['a.test', 'smtp.a.test']);
  assert.ok(log.lines.filter((l) => l.message === 'TLS certificates loaded').length >= 2);
});

test('a broken replacement keeps the previous certificate, and so does a directory left empty', async (t) => {
  const dir = await tempDir('tls-broken');
  await writePair(dir, 'a', certs.a);
  await writePair(dir, 'b', certs.wild);
  const log = recordingLog();
  // A longer debounce so the two rm() calls below usually make one reload (a loaded CI host can still split them).
  const store = await open(t, { dir, log, watch: true, reloadDelayMs: 500 });
  const port = await listen(t, store, 'TLSSocket');

  await writeFile(join(dir, 'a', '.tls.crt.new'), 'not a certificate\n');
  await rename(join(dir, 'a', '.tls.crt.new'), join(dir, 'a', 'tls.crt'));
  await waitFor(
    () =>
      log.lines.find(
        (l) =>
          l.level === 'warn' &&
          l.fields['source'] === 'a' &&
          l.fields['code'] === CertificateErrorCode.InvalidPair &&
          l.message === 'skipped TLS certificate; keeping the previous one',
      ),
    { timeoutMs: 10_000, message: 'the broken pair to be reported' },
  );
  const kept = await handshake(port, { servername: 'a.test', ca: certs.a.cert });
  assert.equal(kept.fingerprint, fingerprint(certs.a.cert));
  assert.deepEqual(store.names, ['*.b.test', 'a.test', 'b.test']);

  await rm(join(dir, 'a'), { recursive: true });
  await rm(join(dir, 'b'), { recursive: true });
  await waitFor(
    () =>
      log.lines.find((l) => l.level === 'error' && l.fields['code'] === CertificateErrorCode.NoCertificate),
    { timeoutMs: 10_000, message: 'the empty directory to be reported' },
  );
  assert.equal((await handshake(port, { servername: 'b.test' })).fingerprint, fingerprint(certs.wild.cert));
  // A reload may run between the two removals (b alone); the last set loaded is kept either way.
  assert.ok(
    ['*.b.test,a.test,b.test', '*.b.test,b.test'].includes(store.names.join(',')),
    store.names.join(','),
  );
});

test('reload() applies changes when the directory is not watched', async (t) => {
  const dir = await tempDir('tls-reload');
  await writePair(dir, 'a', certs.a);
  const store = await open(t, { dir, watch: false });
  const before = store.contextFor('b.test');
  await writePair(dir, 'b', certs.wild);
  assert.equal(store.contextFor('b.test'), before, 'unchanged until reload()');
  let reloads = 0;
  store.onReload(() => reloads++);
  await store.reload();
  assert.equal(reloads, 1);
  assert.deepEqual(store.names, ['*.b.test', 'a.test', 'b.test']);
  const port = await listen(t, store, 'TLSSocket');
  const served = await handshake(port, { servername: 'www.b.test', ca: certs.wild.cert });
  assert.equal(served.fingerprint, fingerprint(certs.wild.cert));
});

test('local mode generates a self-signed certificate with a 0600 key, reuses it, and regenerates it once expired', async (t) => {
  const dir = join(await tempDir('tls-self'), 'missing', 'tls');
  const log = recordingLog();
  const options = {
    dir,
    hostname: 'localhost',
    names: ['mail.localhost', '127.0.0.1'],
    selfSigned: true,
    log,
  };
  const store = await open(t, options);
  const certPath = join(dir, 'self-signed', 'tls.crt');
  const keyPath = join(dir, 'self-signed', 'tls.key');
  assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
  const generated = await readFile(certPath, 'utf8');
  assert.equal(
    new X509Certificate(generated).subjectAltName,
    'DNS:localhost, DNS:mail.localhost, IP Address:127.0.0.1',
  );
  assert.deepEqual(store.names, ['localhost', 'mail.localhost']);
  assert.ok(log.lines.some((l) => l.message === 'generated a self-signed certificate'));

  const port = await listen(t, store, 'tls.Server');
  for (const servername of ['localhost', 'mail.localhost']) {
    const served = await handshake(port, { servername, ca: generated });
    assert.equal(served.fingerprint, fingerprint(generated));
  }

  const again = await open(t, options);
  assert.equal(await readFile(certPath, 'utf8'), generated, 'a valid certificate is reused');
  again.close();

  const expired = await createSelfSigned({
    hostname: 'localhost',
    now: new Date('2020-01-01'),
    validityDays: 1,
  });
  await writePair(dir, 'self-signed', expired);
  await open(t, options);
  const regenerated = new X509Certificate(await readFile(certPath, 'utf8'));
  assert.notEqual(regenerated.fingerprint256, fingerprint(expired.cert));
  assert.ok(regenerated.validToDate.getTime() > Date.now());
  assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
});

test('local mode does not generate a certificate when the directory has one', async (t) => {
  const dir = await tempDir('tls-self-not-needed');
  await writePair(dir, 'a', certs.a);
  const store = await open(t, { dir, selfSigned: true, hostname: 'localhost' });
  assert.deepEqual(store.names, ['a.test']);
  await assert.rejects(stat(join(dir, 'self-signed')), { code: 'ENOENT' });
});

test('a key that does not match its certificate is skipped with a log line', async (t) => {
  const dir = await tempDir('tls-mismatch');
  await writePair(dir, 'a', certs.a);
  await writePair(dir, 'b', { cert: certs.wild.cert, key: certs.a.key });
  const log = recordingLog();
  const store = await open(t, { dir, log });
  assert.deepEqual(store.names, ['a.test']);
  const line = log.lines.find((l) => l.fields['code'] === CertificateErrorCode.KeyMismatch);
  assert.equal(line?.level, 'warn');
  assert.equal(line?.fields['source'], 'b');
  assert.doesNotMatch(JSON.stringify(log.lines), /PRIVATE KEY/, 'no key material in the log');
  const port = await listen(t, store, 'TLSSocket');
  assert.equal((await handshake(port, { servername: 'b.test' })).fingerprint, fingerprint(certs.a.cert));
});

test('subjectAltNames are served, and the CN only when a certificate has none', async (t) => {
  const dir = await tempDir('tls-cn');
  const openssl = async (source: string, ...args: string[]): Promise<void> => {
    await mkdir(join(dir, source));
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-keyout',
      join(dir, source, 'tls.key'),
      '-out',
      join(dir, source, 'tls.crt'),
      ...args,
    ]);
  };
  await openssl('cn-only', '-subj', '/CN=cn.test');
  await openssl('san', '-subj', '/CN=ignored.test', '-addext', 'subjectAltName=DNS:san.test,IP:127.0.0.1');
  const store = await open(t, { dir });
  assert.deepEqual(store.names, ['cn.test', 'san.test']);
});

test('without a usable certificate open() fails with PETREL_ERR_TLS_NO_CERTIFICATE naming the directory', async () => {
  const empty = await tempDir('tls-empty');
  const mismatched = await tempDir('tls-only-mismatch');
  await writePair(mismatched, 'b', { cert: certs.wild.cert, key: certs.a.key });
  for (const dir of [empty, join(empty, 'absent'), mismatched]) {
    await assert.rejects(
      CertificateStore.open({ dir, hostname: 'a.test', selfSigned: false, log: recordingLog() }),
      (error: unknown) => {
        assert.ok(error instanceof CertificateError);
        assert.equal(error.code, CertificateErrorCode.NoCertificate);
        assert.ok(error.message.includes(dir), error.message);
        return true;
      },
    );
  }
});

const domainCerts = {
  mx: await createSelfSigned({ hostname: 'mx.c.test', names: ['smtp.c.test'] }),
  mx2: await createSelfSigned({ hostname: 'mx.c.test', names: ['smtp.c.test'] }),
  wildD: await createSelfSigned({ hostname: 'd.test', names: ['*.d.test'] }),
  /** A tenant's certificate that also names the relay's own host and another tenant's. */
  greedy: await createSelfSigned({ hostname: 'mx.e.test', names: ['a.test', 'mx.c.test'] }),
};

function fromConfig(
  source: string,
  hostnames: string[],
  pair: { cert: string; key: string },
): ConfigCertificate {
  return { source, hostnames, certificatePem: pair.cert, privateKeyPem: pair.key };
}

test('runtime-config certificates are served by SNI for their domain’s host names; others get the default', async (t) => {
  const dir = await tempDir('tls-config');
  await writePair(dir, 'relay', certs.a);
  const store = await open(t, {
    dir,
    configCertificates: [
      fromConfig('mail/c', ['MX.c.test.', 'smtp.c.test'], domainCerts.mx),
      fromConfig('mail/d', ['in.d.test'], domainCerts.wildD),
    ],
  });
  assert.deepEqual(store.names, ['a.test', 'in.d.test', 'mx.c.test', 'smtp.c.test']);
  for (const kind of serverKinds) {
    const port = await listen(t, store, kind);
    const served = async (servername: string | undefined) =>
      (await handshake(port, servername === undefined ? {} : { servername })).fingerprint;
    const verified = await handshake(port, { servername: 'mx.c.test', ca: domainCerts.mx.cert });
    assert.equal(verified.fingerprint, fingerprint(domainCerts.mx.cert), `${kind}: verified`);
    assert.equal(await served('smtp.c.test'), fingerprint(domainCerts.mx.cert), kind);
    // Served for the listed host name its wildcard covers, not for every name under the wildcard.
    assert.equal(await served('in.d.test'), fingerprint(domainCerts.wildD.cert), kind);
    assert.equal(await served('other.d.test'), fingerprint(certs.a.cert), kind);
    assert.equal(await served('unknown.test'), fingerprint(certs.a.cert), kind);
    assert.equal(await served(undefined), fingerprint(certs.a.cert), `${kind}: no SNI`);
  }
});

test('every runtime-config reload replaces the served certificates, on both listener kinds', async (t) => {
  const dir = await tempDir('tls-config-reload');
  await writePair(dir, 'relay', certs.a);
  const log = recordingLog();
  const store = await open(t, { dir, log });
  const ports = await Promise.all(serverKinds.map((kind) => listen(t, store, kind)));
  const served = async (servername: string) =>
    Promise.all(ports.map(async (port) => (await handshake(port, { servername })).fingerprint));
  let reloads = 0;
  store.onReload(() => reloads++);

  store.setConfigCertificates([fromConfig('mail/c', ['mx.c.test'], domainCerts.mx)]);
  assert.deepEqual(
    await served('mx.c.test'),
    ports.map(() => fingerprint(domainCerts.mx.cert)),
  );
  // The same again: nothing swapped.
  store.setConfigCertificates([fromConfig('mail/c', ['mx.c.test'], domainCerts.mx)]);
  assert.equal(reloads, 1);
  // Renewed.
  store.setConfigCertificates([fromConfig('mail/c', ['mx.c.test'], domainCerts.mx2)]);
  assert.deepEqual(
    await served('mx.c.test'),
    ports.map(() => fingerprint(domainCerts.mx2.cert)),
  );
  // A broken renewal keeps the previous certificate.
  store.setConfigCertificates([
    fromConfig('mail/c', ['mx.c.test'], { cert: domainCerts.mx.cert, key: certs.a.key }),
  ]);
  assert.deepEqual(
    await served('mx.c.test'),
    ports.map(() => fingerprint(domainCerts.mx2.cert)),
  );
  assert.ok(
    log.lines.some((l) => l.fields['code'] === CertificateErrorCode.KeyMismatch && l.level === 'warn'),
  );
  // The domain is gone: its names get the default.
  store.setConfigCertificates([]);
  assert.deepEqual(
    await served('mx.c.test'),
    ports.map(() => fingerprint(certs.a.cert)),
  );
  assert.equal(reloads, 3);
});

test('the directory wins over a domain’s certificate for the same name, a domain’s wins over the self-signed one', async (t) => {
  const dir = await tempDir('tls-config-precedence');
  await writePair(dir, 'relay', certs.exact); // x.b.test
  const log = recordingLog();
  const store = await open(t, {
    dir,
    hostname: 'x.b.test',
    log,
    configCertificates: [
      fromConfig('mail/b', ['x.b.test', 'y.b.test'], certs.wild),
      // Lists names its certificate is not valid for: never served for them.
      fromConfig('mail/e', ['mx.e.test', 'a.test', 'mx.f.test'], domainCerts.greedy),
    ],
  });
  assert.equal(store.contextFor('x.b.test'), store.contextFor(undefined));
  assert.notEqual(store.contextFor('y.b.test'), store.contextFor(undefined));
  assert.notEqual(store.contextFor('mx.e.test'), store.contextFor(undefined));
  // a.test is on the greedy certificate and listed, so it is served; mx.c.test is on it but not listed.
  assert.equal(store.contextFor('a.test'), store.contextFor('mx.e.test'));
  assert.equal(store.contextFor('mx.c.test'), store.contextFor(undefined));
  assert.equal(store.contextFor('mx.f.test'), store.contextFor(undefined));
  assert.ok(
    log.lines.some(
      (l) => l.fields['code'] === CertificateErrorCode.NameNotCovered && l.fields['hostname'] === 'mx.f.test',
    ),
  );

  // Local mode: the generated certificate names the domains, but a domain's own certificate wins.
  const local = await open(t, {
    dir: await tempDir('tls-config-local'),
    hostname: 'relay.test',
    selfSigned: true,
    names: ['mx.c.test'],
    configCertificates: [fromConfig('mail/c', ['mx.c.test'], domainCerts.mx)],
  });
  const port = await listen(t, local, 'TLSSocket');
  assert.equal(
    (await handshake(port, { servername: 'mx.c.test' })).fingerprint,
    fingerprint(domainCerts.mx.cert),
  );
  assert.notEqual((await handshake(port, {})).fingerprint, fingerprint(domainCerts.mx.cert));
});

test('with runtime-config certificates the directory may be absent; without either open() fails', async (t) => {
  const dir = join(await tempDir('tls-config-only'), 'missing');
  const store = await open(t, {
    dir,
    hostname: 'mx.c.test',
    configCertificates: [fromConfig('mail/c', ['mx.c.test'], domainCerts.mx)],
  });
  const port = await listen(t, store, 'tls.Server');
  assert.equal((await handshake(port, {})).fingerprint, fingerprint(domainCerts.mx.cert));
  await assert.rejects(
    CertificateStore.open({ dir, hostname: 'x', selfSigned: false, log: recordingLog(), watch: false }),
    (error: unknown) =>
      error instanceof CertificateError && error.code === CertificateErrorCode.NoCertificate,
  );
});

test('configCertificates takes each domain’s certificate and host names from the runtime config', () => {
  const config = runtimeConfigOf([
    runtimeDomain('c.test', {
      hostnames: ['mx.c.test'],
      tls: { certificatePem: domainCerts.mx.cert, privateKeyPem: domainCerts.mx.key },
    }),
    runtimeDomain('plain.test', { hostnames: ['mx.plain.test'] }),
    runtimeDomain('gone.test', {
      draining: true,
      hostnames: ['in.d.test'],
      tls: { certificatePem: domainCerts.wildD.cert, privateKeyPem: domainCerts.wildD.key },
    }),
  ]);
  assert.deepEqual(
    configCertificates(config).map((c) => [c.source, c.hostnames]),
    [
      ['mail/c.test', ['mx.c.test']],
      ['mail/gone.test', ['in.d.test']],
    ],
  );
});
