/**
 * DANE for outbound SMTP (RFC 7672) with TLSA records (RFC 6698, RFC 7671) from a trusted
 * validating resolver (`TlsaResolver` of @petrel/dns): per MX host, `danePolicy()` says whether
 * DANE applies, and `daneVerify()` / `daneVerifier()` judge the server's certificate chain after
 * the TLS handshake (through the SMTP client's `verifyPeer`).
 *
 * Left out, on purpose:
 * - The MX RRset's and the MX host's address records' own DNSSEC status. RFC 7672 §2.2.1 lets a
 *   client use DANE with MX hosts from an insecure MX RRset, which is what happens here. The TLSA
 *   base domain is always the MX host name as given (RFC 7672 §2.2.2 would also allow the
 *   CNAME-expanded name when the address records are secure); no CNAME expansion.
 * - DANE-TA(2) matching the leaf certificate itself: trust anchors are issuers (depth ≥ 1).
 * - PKIX-TA(0)/PKIX-EE(1) records: unusable for SMTP (RFC 7672 §3.1.3).
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  canonicalName,
  DnsError,
  DnsErrorCode,
  type TlsaAnswer,
  type TlsaRecord,
  tlsaName,
} from '@petrel/dns';

/** Certificate usages (RFC 6698 §2.1.1, acronyms of RFC 7218 §2.1). */
export const TlsaUsage = { PkixTa: 0, PkixEe: 1, DaneTa: 2, DaneEe: 3 } as const;
/** Selectors (RFC 6698 §2.1.2). */
export const TlsaSelector = { Certificate: 0, SubjectPublicKeyInfo: 1 } as const;
/** Matching types (RFC 6698 §2.1.3). */
export const TlsaMatchingType = { Full: 0, Sha256: 1, Sha512: 2 } as const;

const DIGEST: Record<number, { algorithm: string; length: number }> = {
  [TlsaMatchingType.Sha256]: { algorithm: 'sha256', length: 32 },
  [TlsaMatchingType.Sha512]: { algorithm: 'sha512', length: 64 },
};
/** Digest strength for RFC 7671 §9 agility: higher wins for the same usage and selector. */
const DIGEST_RANK: Record<number, number> = { [TlsaMatchingType.Sha256]: 1, [TlsaMatchingType.Sha512]: 2 };
/** Longest issuer path we follow from the leaf to a DANE-TA trust anchor. */
const MAX_DEPTH = 10;

/** Stable codes of DANE authentication failures. */
export const DaneErrorCode = {
  /** The server presented no certificate. */
  NoCertificate: 'PETREL_ERR_DANE_NO_CERTIFICATE',
  /** No usable TLSA record matches the server's chain (RFC 7672 §3.1). */
  NoMatch: 'PETREL_ERR_DANE_NO_MATCH',
  /** A DANE-TA(2) record matched, but the certificate is not for the MX host (RFC 7672 §3.2.2). */
  NameMismatch: 'PETREL_ERR_DANE_NAME_MISMATCH',
  /** A DANE-TA(2) record matched, but a certificate below the trust anchor is outside its validity period. */
  Expired: 'PETREL_ERR_DANE_EXPIRED',
  /** verify was called without usable records (a policy of kind 'dane' always has some). */
  NoUsableRecords: 'PETREL_ERR_DANE_NO_USABLE_RECORDS',
} as const;
export type DaneErrorCode = (typeof DaneErrorCode)[keyof typeof DaneErrorCode];

export class DaneError extends Error {
  readonly code: DaneErrorCode;
  constructor(code: DaneErrorCode, message: string) {
    super(message);
    this.name = 'DaneError';
    this.code = code;
  }
}

export interface DaneDeps {
  /**
   * The TLSA RRset at a name with the resolver's AD flag, e.g. `tlsaResolver.tlsa.bind(tlsaResolver)`
   * with a `TlsaResolver` whose servers are trusted validating resolvers (RFC 7672 §2.2,
   * RFC 4035 §4.9.3). Throws DnsError when there is no answer.
   */
  readonly tlsa: (name: string) => Promise<TlsaAnswer>;
}

export type DanePolicy =
  /** No DANE: no TLSA records, or not DNSSEC-secure (RFC 7672 §2.2): opportunistic TLS as usual. */
  | { readonly kind: 'none'; readonly tlsaName: string | undefined; readonly reason: string }
  /** Secure, usable TLSA records (DANE-TA, DANE-EE): TLS required and the chain must match one (RFC 7672 §2.2, §3). */
  | { readonly kind: 'dane'; readonly tlsaName: string; readonly records: readonly TlsaRecord[] }
  /**
   * Secure TLSA records, none usable (RFC 7672 §2.2, §3.1.3): TLS is still required, without
   * authentication; never plaintext.
   */
  | { readonly kind: 'encrypt'; readonly tlsaName: string; readonly reason: string }
  /**
   * The lookup failed (SERVFAIL — how a validating resolver reports bogus data — timeouts,
   * unreachable resolver): this MX host must not be used; other hosts may be, else defer (RFC 7672 §2.2).
   */
  | { readonly kind: 'defer'; readonly tlsaName: string; readonly reason: string; readonly error: unknown };

function describe(r: TlsaRecord): string {
  return `${r.usage} ${r.selector} ${r.matchingType} ${r.data.toString('hex')}`;
}

/**
 * The records DANE can use for SMTP: DANE-TA(2) and DANE-EE(3) (RFC 7672 §3.1.3), selector 0 or 1,
 * matching type 0, 1 or 2 with a digest of the right length (others are unusable, RFC 6698 §4.1);
 * for the same usage and selector only the strongest digest present (RFC 7671 §9).
 */
export function usableRecords(records: readonly TlsaRecord[]): TlsaRecord[] {
  const supported = records.filter((r) => {
    if (r.usage !== TlsaUsage.DaneTa && r.usage !== TlsaUsage.DaneEe) return false;
    if (r.selector !== TlsaSelector.Certificate && r.selector !== TlsaSelector.SubjectPublicKeyInfo)
      return false;
    if (r.matchingType === TlsaMatchingType.Full) return r.data.length > 0;
    const digest = DIGEST[r.matchingType];
    return digest !== undefined && r.data.length === digest.length;
  });
  const strongest = new Map<string, number>();
  for (const r of supported) {
    const key = `${r.usage} ${r.selector}`;
    strongest.set(key, Math.max(strongest.get(key) ?? 0, DIGEST_RANK[r.matchingType] ?? 0));
  }
  return supported.filter(
    (r) =>
      r.matchingType === TlsaMatchingType.Full ||
      (DIGEST_RANK[r.matchingType] ?? 0) === strongest.get(`${r.usage} ${r.selector}`),
  );
}

/**
 * What DANE demands for an MX host reached on `port` (RFC 7672 §2.2): the TLSA RRset at
 * `_<port>._tcp.<mxHost>` (RFC 7672 §2.2.3; the port is the one connected to). Never throws.
 */
export async function danePolicy(mxHost: string, port: number, deps: DaneDeps): Promise<DanePolicy> {
  if (isIP(mxHost.replace(/^\[|\]$/g, '')) !== 0) {
    return { kind: 'none', tlsaName: undefined, reason: `${mxHost} is an address: no TLSA base domain` };
  }
  let name: string;
  try {
    name = tlsaName(mxHost, port);
  } catch (error) {
    return {
      kind: 'none',
      tlsaName: undefined,
      reason: error instanceof Error ? error.message : String(error),
    };
  }
  let answer: TlsaAnswer;
  try {
    answer = await deps.tlsa(name);
  } catch (error) {
    // A name that cannot be asked for cannot have TLSA records; every other failure may hide them.
    if (error instanceof DnsError && error.code === DnsErrorCode.BadName) {
      return { kind: 'none', tlsaName: name, reason: error.message };
    }
    const why = error instanceof Error ? error.message : String(error);
    return { kind: 'defer', tlsaName: name, reason: `TLSA lookup for ${name} failed: ${why}`, error };
  }
  if (!answer.authenticated) {
    return {
      kind: 'none',
      tlsaName: name,
      reason:
        answer.records.length > 0
          ? `TLSA records at ${name} are not DNSSEC-validated (no AD): ignored`
          : `no TLSA records at ${name} (insecure)`,
    };
  }
  if (answer.records.length === 0) {
    return { kind: 'none', tlsaName: name, reason: `no TLSA records at ${name} (${answer.rcode}, secure)` };
  }
  const records = usableRecords(answer.records);
  if (records.length === 0) {
    return {
      kind: 'encrypt',
      tlsaName: name,
      reason: `TLSA records at ${name} are all unusable for SMTP (${answer.records.map(describe).join(', ')}): TLS without authentication`,
    };
  }
  return { kind: 'dane', tlsaName: name, records };
}

/** The selected content of a certificate (RFC 6698 §2.1.2). */
function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === TlsaSelector.Certificate
    ? cert.raw
    : cert.publicKey.export({ type: 'spki', format: 'der' });
}

/** The association data as a record of this matching type would hold it (RFC 6698 §2.1.3). */
function associated(content: Buffer, matchingType: number): Buffer {
  const digest = DIGEST[matchingType];
  return digest === undefined ? content : createHash(digest.algorithm).update(content).digest();
}

function matches(cert: X509Certificate, record: TlsaRecord): boolean {
  return associated(selected(cert, record.selector), record.matchingType).equals(record.data);
}

/** `cert` is signed by the key of a "2 1 0" record: a trust anchor the server need not send (RFC 7671 §5.2.2). */
function signedByKey(cert: X509Certificate, spki: Buffer): boolean {
  try {
    return cert.verify(createPublicKey({ key: spki, format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

export interface DaneVerifyOptions {
  /**
   * More reference identifiers for DANE-TA(2) besides the MX host name, e.g. the next-hop domain
   * (RFC 7672 §3.2.2).
   */
  readonly names?: readonly string[];
  /** For tests; default now. */
  readonly now?: Date;
}

export type DaneResult =
  | {
      readonly ok: true;
      readonly usage: 2 | 3;
      /** 0: the leaf (DANE-EE); the issuer depth of the trust anchor (DANE-TA). */
      readonly depth: number;
      readonly record: TlsaRecord;
      /** DANE-TA: the reference identifier the certificate matched. */
      readonly name: string | undefined;
    }
  | { readonly ok: false; readonly error: DaneError };

/** RFC 7672 §3.2.3: "*" only as the whole left-most label, matching one label; CN only without DNS SANs. */
const HOST_CHECK = {
  subject: 'default',
  wildcards: true,
  partialWildcards: false,
  multiLabelWildcards: false,
  singleLabelSubdomains: false,
} as const;

/**
 * Authenticates a server's chain (leaf first, as the server sent it; `peerChain()` gets it from a
 * TLS socket) against usable TLSA records (RFC 7672 §3):
 * - DANE-EE(3): the leaf matches; its names and validity dates do not matter (RFC 7672 §3.1.1,
 *   RFC 7671 §5.1).
 * - DANE-TA(2): an issuer (a CA) on the path from the leaf matches (or, for "2 1 0", its key
 *   signed the top of the chain); every certificate below it must be signed by the next, the
 *   intermediates CAs, all within their validity period, and the leaf must be for the MX host name (or one of
 *   `names`) — RFC 7672 §3.1.2, §3.2.2, §3.2.3, RFC 7671 §5.2.
 */
export function daneVerify(
  chain: readonly X509Certificate[],
  records: readonly TlsaRecord[],
  mxHost: string,
  options: DaneVerifyOptions = {},
): DaneResult {
  const fail = (code: DaneErrorCode, message: string): DaneResult => ({
    ok: false,
    error: new DaneError(code, message),
  });
  const leaf = chain[0];
  if (leaf === undefined) return fail(DaneErrorCode.NoCertificate, `${mxHost} presented no certificate`);
  const usable = usableRecords(records);
  if (usable.length === 0) return fail(DaneErrorCode.NoUsableRecords, `no usable TLSA records for ${mxHost}`);

  for (const record of usable) {
    if (record.usage === TlsaUsage.DaneEe && matches(leaf, record)) {
      return { ok: true, usage: TlsaUsage.DaneEe, depth: 0, record, name: undefined };
    }
  }

  const anchors = usable.filter((r) => r.usage === TlsaUsage.DaneTa);
  let anchor: { record: TlsaRecord; depth: number } | undefined;
  const below: X509Certificate[] = [leaf];
  const used = new Set<number>([0]);
  let current = leaf;
  for (let depth = 1; anchors.length > 0 && depth <= MAX_DEPTH; depth++) {
    const index = chain.findIndex(
      (c, i) => !used.has(i) && current.checkIssued(c) && current.verify(c.publicKey),
    );
    const issuer = chain[index];
    if (issuer === undefined) {
      const record = anchors.find(
        (r) =>
          r.selector === TlsaSelector.SubjectPublicKeyInfo &&
          r.matchingType === TlsaMatchingType.Full &&
          signedByKey(current, r.data),
      );
      if (record !== undefined) anchor = { record, depth };
      break;
    }
    used.add(index);
    // Only a CA issues certificates (RFC 5280 §4.2.1.9), the trust anchor included.
    if (!issuer.ca) break;
    const record = anchors.find((r) => matches(issuer, r));
    if (record !== undefined) {
      anchor = { record, depth };
      break;
    }
    below.push(issuer);
    current = issuer;
  }
  if (anchor === undefined) {
    return fail(
      DaneErrorCode.NoMatch,
      `no TLSA record for ${mxHost} matches its certificate chain (${chain.length} certificate(s), leaf ${leaf.fingerprint256})`,
    );
  }
  const now = options.now ?? new Date();
  for (const cert of below) {
    if (now < cert.validFromDate || now > cert.validToDate) {
      return fail(
        DaneErrorCode.Expired,
        `certificate ${cert.subject.replaceAll('\n', ', ')} of ${mxHost} is not valid now (${cert.validFrom} – ${cert.validTo})`,
      );
    }
  }
  const names = [mxHost, ...(options.names ?? [])].map(canonicalName);
  const name = names.find((n) => leaf.checkHost(n, HOST_CHECK) !== undefined);
  if (name === undefined) {
    return fail(
      DaneErrorCode.NameMismatch,
      `certificate of ${mxHost} (DANE-TA) is not for ${names.join(' or ')}: ${leaf.subjectAltName ?? leaf.subject}`,
    );
  }
  return { ok: true, usage: TlsaUsage.DaneTa, depth: anchor.depth, record: anchor.record, name };
}

/**
 * The server's chain from a TLS socket, leaf first, as Node ordered it (issuer by issuer from what
 * the server sent; a self-signed end is not repeated).
 */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current: { raw?: Buffer; issuerCertificate?: unknown } | undefined = socket.getPeerCertificate(true);
  while (current?.raw !== undefined && chain.length <= MAX_DEPTH) {
    const cert = new X509Certificate(current.raw);
    if (seen.has(cert.fingerprint256)) break;
    seen.add(cert.fingerprint256);
    chain.push(cert);
    current = current.issuerCertificate as typeof current;
  }
  return chain;
}

/**
 * A `verifyPeer` for SmtpClient options: DANE authentication of the TLS peer against `records`
 * (a policy of kind 'dane'). `observe` sees every result, for logs and events.
 */
export function daneVerifier(
  records: readonly TlsaRecord[],
  mxHost: string,
  options: DaneVerifyOptions & { readonly observe?: (result: DaneResult) => void } = {},
): (socket: TLSSocket) => Error | undefined {
  return (socket) => {
    const result = daneVerify(peerChain(socket), records, mxHost, options);
    options.observe?.(result);
    return result.ok ? undefined : result.error;
  };
}

/**
 * A short stable digest of a TLSA RRset, for connection pool keys: a connection verified against
 * one RRset is not reused for another.
 */
export function recordsKey(records: readonly TlsaRecord[]): string {
  const hash = createHash('sha256');
  for (const line of records.map(describe).sort()) hash.update(`${line}\n`);
  return hash.digest('hex').slice(0, 16);
}
