// The operator's own certificate authority: one ECDSA P-256 CA per installation, which issues the
// relay's server certificates (SMTP STARTTLS, MTA-STS policy host) without an external issuer.
// tsyringe (inside @peculiar/x509) needs the Reflect metadata API before the library loads.
import 'reflect-metadata';
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { normaliseCertificateName } from '../dns/names.ts';
import { PkiError, PkiErrorCode } from './errors.ts';
import { parseCertificate, parsePrivateKey, pemText } from './pem.ts';

/** ECDSA P-256 with SHA-256 (RFC 5480 §2.1.1.1, RFC 5758 §3.2): small keys, every TLS stack has it. */
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const PKI_DEFAULTS = {
  caValidityDays: 3650,
  serverValidityDays: 90,
  /** Renew a server certificate with 30 of its 90 days left (a third, as ACME clients do). */
  renewBeforeMs: 30 * 24 * 60 * 60 * 1000,
  /** notBefore is this far in the past, so that a peer whose clock is a little behind accepts it. */
  backdateMs: 5 * 60 * 1000,
} as const;

/** RFC 5280 Appendix A.1 ub-common-name. */
const MAX_COMMON_NAME = 64;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Beyond this, Date arithmetic and GeneralizedTime both stop making sense for us. */
const MAX_VALIDITY_DAYS = 100 * 365;

// The library's types name the DOM's Crypto; node's webcrypto is the same API.
const crypto = webcrypto as unknown as Parameters<typeof x509.X509CertificateGenerator.create>[1];

/** A CA certificate and its key, as stored in the operator's CA Secret. */
export interface CertificateAuthority {
  certPem: string;
  /** PKCS#8 PEM, unencrypted. */
  keyPem: string;
}

export interface CreateCaOptions {
  /** The subject CN, e.g. "Petrel CA petrel-system"; at most 64 characters. */
  commonName: string;
  now: Date;
  validityDays?: number;
}

export interface IssueServerCertificateOptions {
  ca: CertificateAuthority;
  /** subjectAltName dNSNames; the first is also the subject CN when it fits (64 characters). */
  dnsNames: readonly string[];
  now: Date;
  /** Capped at the CA's own notAfter. */
  validityDays?: number;
}

export interface IssuedCertificate {
  /** The leaf, then the CA certificate: what a TLS server sends (RFC 8446 §4.4.2). */
  certPem: string;
  /** The leaf's PKCS#8 PEM key, unencrypted. */
  keyPem: string;
  notAfter: Date;
}

/** A self-signed CA: BasicConstraints cA (critical, no intermediates), keyCertSign + cRLSign, SKI. */
export async function createCa(options: CreateCaOptions): Promise<CertificateAuthority> {
  const commonName = options.commonName.trim();
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME || /\p{Cc}/u.test(commonName)) {
    throw new PkiError(
      PkiErrorCode.InvalidOptions,
      `CA common name must be 1-${MAX_COMMON_NAME} printable characters`,
    );
  }
  const { notBefore, notAfter } = validity(options.now, options.validityDays ?? PKI_DEFAULTS.caValidityDays);
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serialNumber(),
      name: [{ CN: [commonName] }],
      keys,
      signingAlgorithm: EC_P256,
      notBefore,
      notAfter,
      extensions: [
        // RFC 5280 §4.2.1.9: critical in CA certificates; pathLen 0 because this CA issues leaves only.
        new x509.BasicConstraintsExtension(true, 0, true),
        // RFC 5280 §4.2.1.3: keyCertSign for certificates, cRLSign for revocation lists.
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        // RFC 5280 §4.2.1.2: MUST in CA certificates; leaves name it in their AKI.
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return { certPem: pemText(cert.toString('pem')), keyPem: exportKey(keys.privateKey) };
}

/** A server certificate for `dnsNames` with a fresh P-256 key, signed by `ca`. */
export async function issueServerCertificate(
  options: IssueServerCertificateOptions,
): Promise<IssuedCertificate> {
  const names = certificateNames(options.dnsNames);
  const caNode = parseCertificate(options.ca.certPem);
  const caKey = parsePrivateKey(options.ca.keyPem);
  if (!caNode.ca) throw new PkiError(PkiErrorCode.NotCa, `${caNode.subject} is not a CA certificate`);
  if (caKey.asymmetricKeyType !== 'ec' || caKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PkiError(PkiErrorCode.UnsupportedKey, 'the CA key is not an ECDSA P-256 key');
  }
  if (!caNode.checkPrivateKey(caKey)) {
    throw new PkiError(PkiErrorCode.KeyMismatch, 'the CA key does not belong to the CA certificate');
  }
  const caNotBefore = caNode.validFromDate;
  const caNotAfter = caNode.validToDate;
  if (options.now < caNotBefore || options.now >= caNotAfter) {
    throw new PkiError(
      PkiErrorCode.CaNotValid,
      `the CA is valid from ${caNotBefore.toISOString()} to ${caNotAfter.toISOString()}, not at ${options.now.toISOString()}`,
    );
  }
  const caCert = new x509.X509Certificate(caNode.raw);
  const usage = caCert.getExtension(x509.KeyUsagesExtension);
  if (usage !== null && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new PkiError(PkiErrorCode.NotCa, `${caNode.subject} may not sign certificates (no keyCertSign)`);
  }

  const wanted = validity(options.now, options.validityDays ?? PKI_DEFAULTS.serverValidityDays);
  // A leaf outlives its CA in no path validation; inside the CA's lifetime it is usable throughout.
  const notBefore = new Date(Math.max(wanted.notBefore.getTime(), caNotBefore.getTime()));
  const notAfter = new Date(Math.min(wanted.notAfter.getTime(), caNotAfter.getTime()));

  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const signingKey = caKey.toCryptoKey(EC_P256, false, ['sign']);
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const [first] = names;
  // RFC 5280 §4.2.1.6: clients match the SAN; with an empty subject the SAN must be critical.
  const emptySubject = first === undefined || first.length > MAX_COMMON_NAME;
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: emptySubject ? [] : [{ CN: [first] }],
      // The CA's own encoding of its name, so that name chaining compares equal octets.
      issuer: caCert.subjectName,
      publicKey: keys.publicKey,
      signingKey: signingKey as unknown as typeof keys.privateKey,
      signingAlgorithm: EC_P256,
      notBefore,
      notAfter,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        // RFC 5280 §4.2.1.3 / RFC 8446 §4.4.2.4: ECDHE suites need digitalSignature only.
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // RFC 5280 §4.2.1.12: a TLS server certificate only.
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(
          names.map((value) => ({ type: 'dns' as const, value })),
          emptySubject,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        // RFC 5280 §4.2.1.1: the CA's SKI when it has one, otherwise the same SHA-1 of its key.
        caKeyId === undefined
          ? await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, crypto)
          : new x509.AuthorityKeyIdentifierExtension(caKeyId),
      ],
    },
    crypto,
  );
  return {
    certPem: pemText(leaf.toString('pem')) + pemText(caNode.toString()),
    keyPem: exportKey(keys.privateKey),
    notAfter,
  };
}

/** Lower-case, de-duplicated, in the order given; at least one. */
function certificateNames(dnsNames: readonly string[]): string[] {
  const names: string[] = [];
  for (const name of dnsNames) {
    const normalised = normaliseCertificateName(name);
    if (normalised === undefined) {
      throw new PkiError(PkiErrorCode.InvalidDnsName, `${JSON.stringify(name)} is not a DNS name`);
    }
    if (!names.includes(normalised)) names.push(normalised);
  }
  if (names.length === 0) throw new PkiError(PkiErrorCode.InvalidDnsName, 'a certificate needs a DNS name');
  return names;
}

function validity(now: Date, days: number): { notBefore: Date; notAfter: Date } {
  const at = now.getTime();
  if (!Number.isFinite(at)) throw new PkiError(PkiErrorCode.InvalidOptions, 'now is not a valid date');
  if (!Number.isFinite(days) || days <= 0 || days > MAX_VALIDITY_DAYS) {
    throw new PkiError(
      PkiErrorCode.InvalidOptions,
      `validityDays must be above 0 and at most ${MAX_VALIDITY_DAYS}`,
    );
  }
  // Whole seconds: X.509 times carry no fractions (RFC 5280 §4.1.2.5.1), so the Date we report
  // is exactly what the certificate says.
  const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  return { notBefore: second(at - PKI_DEFAULTS.backdateMs), notAfter: second(at + days * DAY_MS) };
}

/**
 * RFC 5280 §4.1.2.2: unique per CA, positive, at most 20 octets; CA/B Forum BR §7.1 asks for 64
 * random bits. 126 random bits here: the top bit clear keeps the INTEGER positive, the next one set
 * keeps it 16 octets long (no leading zero octet to strip).
 */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

function exportKey(key: webcrypto.CryptoKey): string {
  return pemText(KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString());
}
