// What a reconciler needs to know about a certificate it finds in a Secret, and whether to replace it.
import type { X509Certificate } from 'node:crypto';
import { normaliseCertificateName } from '../dns/names.ts';
import { PkiError } from './errors.ts';
import { parseCertificate, parsePrivateKey } from './pem.ts';

export interface CertificateInfo {
  notBefore: Date;
  notAfter: Date;
  /** subjectAltName dNSNames, lower case, in certificate order. */
  dnsNames: string[];
  /** The issuer's distinguished name as node prints it ("CN=Petrel CA"). */
  issuer: string;
  /** SHA-256 of the DER certificate, colon-separated upper-case hex (as openssl prints it). */
  fingerprint: string;
  /** The parsed leaf, for checks against a CA or a key. */
  certificate: X509Certificate;
}

/** Why a certificate must be issued again. */
export const RenewalCode = {
  /** No certificate at all. */
  Missing: 'Missing',
  /** The text holds no certificate node can parse. */
  Unparsable: 'Unparsable',
  /** The private key beside it is not the certificate's key (or cannot be parsed). */
  KeyMismatch: 'KeyMismatch',
  /** Not issued by the current CA (the CA was replaced). */
  IssuerChanged: 'IssuerChanged',
  /** Its dNSNames are not the wanted ones. */
  NamesChanged: 'NamesChanged',
  /** notBefore is in the future: made with a wrong clock, peers refuse it now. */
  NotYetValid: 'NotYetValid',
  /** notAfter is within renewBeforeMs of now, or past. */
  Expiring: 'Expiring',
} as const;
export type RenewalCode = (typeof RenewalCode)[keyof typeof RenewalCode];

export interface RenewalReason {
  code: RenewalCode;
  message: string;
}

export interface RenewalOptions {
  now: Date;
  /** Renew when less than this is left, e.g. a third of the lifetime (PKI_DEFAULTS.renewBeforeMs). */
  renewBeforeMs: number;
  /** The names the certificate must carry, in any order and case. */
  dnsNames: readonly string[];
  /** The current CA certificate: a certificate it did not issue is replaced (PkiError if unparsable). */
  caCertPem?: string;
  /** The private key stored beside the certificate: a key of another certificate is replaced. */
  keyPem?: string;
}

const SAN_ENTRY = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;

/** Facts about the first certificate of PEM text (the leaf of a chain); throws PkiError if none parses. */
export function certificateInfo(pem: string): CertificateInfo {
  const certificate = parseCertificate(pem);
  return {
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
    dnsNames: sanDnsNames(certificate.subjectAltName),
    issuer: certificate.issuer,
    fingerprint: certificate.fingerprint256,
    certificate,
  };
}

/**
 * The first reason to issue the certificate again, or undefined when it may stay. A PEM string
 * is parsed here (an unparsable one is a reason, not an error); undefined means there is none.
 */
export function needsRenewal(
  input: CertificateInfo | string | undefined,
  options: RenewalOptions,
): RenewalReason | undefined {
  if (input === undefined || (typeof input === 'string' && input.trim() === '')) {
    return { code: RenewalCode.Missing, message: 'there is no certificate' };
  }
  let info: CertificateInfo;
  if (typeof input === 'string') {
    try {
      info = certificateInfo(input);
    } catch (error) {
      if (!(error instanceof PkiError)) throw error;
      return { code: RenewalCode.Unparsable, message: error.message };
    }
  } else {
    info = input;
  }

  if (options.keyPem !== undefined) {
    let matches = false;
    try {
      matches = info.certificate.checkPrivateKey(parsePrivateKey(options.keyPem));
    } catch {
      // an unreadable key, or one of another type: no match
    }
    if (!matches)
      return { code: RenewalCode.KeyMismatch, message: 'the private key is not the certificate key' };
  }

  if (options.caCertPem !== undefined) {
    const ca = parseCertificate(options.caCertPem);
    if (!info.certificate.checkIssued(ca) || !info.certificate.verify(ca.publicKey)) {
      return {
        code: RenewalCode.IssuerChanged,
        message: `issued by ${info.issuer}, not by the current CA ${ca.subject}`,
      };
    }
  }

  const wanted = nameSet(options.dnsNames);
  const have = nameSet(info.dnsNames);
  if (wanted.size !== have.size || [...wanted].some((name) => !have.has(name))) {
    return {
      code: RenewalCode.NamesChanged,
      message: `names ${[...have].sort().join(', ')}; wanted ${[...wanted].sort().join(', ')}`,
    };
  }

  const now = options.now.getTime();
  if (info.notBefore.getTime() > now) {
    return { code: RenewalCode.NotYetValid, message: `not valid before ${info.notBefore.toISOString()}` };
  }
  if (info.notAfter.getTime() - now <= options.renewBeforeMs) {
    const verb = info.notAfter.getTime() <= now ? 'expired' : 'expires';
    return { code: RenewalCode.Expiring, message: `${verb} ${info.notAfter.toISOString()}` };
  }
  return undefined;
}

/**
 * dNSNames from node's subjectAltName text ("DNS:a, DNS:b, IP Address:..."). Node quotes a value
 * as a JSON string when it holds a comma, quote or the like (since 17.3.1), so those are unquoted.
 */
function sanDnsNames(text: string | undefined): string[] {
  const names: string[] = [];
  for (const match of (text ?? '').matchAll(SAN_ENTRY)) {
    if (match[1] !== 'DNS') continue;
    const raw = match[2] ?? '';
    names.push((raw.startsWith('"') ? (JSON.parse(raw) as string) : raw).toLowerCase());
  }
  return names;
}

/** Names compared as DNS compares them: case and a trailing dot do not count (RFC 4343 §3). */
function nameSet(names: readonly string[]): Set<string> {
  return new Set(names.map((name) => normaliseCertificateName(name) ?? name.toLowerCase()));
}
