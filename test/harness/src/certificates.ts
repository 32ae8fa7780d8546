import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A PEM certificate and its unencrypted key. */
export interface TestCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/**
 * A P-256 certificate for `names` (DNS subjectAltNames; the first is the CN) made with the
 * openssl CLI, valid for two days: self-signed and usable as a CA when no issuer is given,
 * otherwise signed by `issuer` (a certificate from this function).
 */
export function issueCertificate(names: readonly string[], issuer?: TestCertificate): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'petrel-cert-'));
  try {
    const keyFile = join(dir, 'key.pem');
    const certFile = join(dir, 'cert.pem');
    const san = `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`;
    const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile];
    const subject = ['-subj', `/CN=${names[0] ?? 'localhost'}`];
    const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    if (issuer === undefined) {
      run([
        'req',
        '-x509',
        ...key,
        '-days',
        '2',
        ...subject,
        '-addext',
        san,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-out',
        certFile,
      ]);
    } else {
      writeFileSync(join(dir, 'ca.pem'), issuer.cert);
      writeFileSync(join(dir, 'ca.key'), issuer.key);
      writeFileSync(join(dir, 'ext.cnf'), `${san}\n`);
      run(['req', '-new', ...key, ...subject, '-out', join(dir, 'req.csr')]);
      run([
        'x509',
        '-req',
        '-in',
        join(dir, 'req.csr'),
        '-CA',
        join(dir, 'ca.pem'),
        '-CAkey',
        join(dir, 'ca.key'),
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        join(dir, 'ext.cnf'),
        '-out',
        certFile,
      ]);
    }
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
