/**
 * DNS failure codes. The resolver codes are node's own (c-ares, `node:dns` constants) and are kept
 * as they are because SPF/DKIM/DMARC code (mailauth) branches on them: ENOTFOUND and ENODATA mean
 * "no record", everything else is a temporary error (RFC 7208 §5, RFC 6376 §6.1.2, RFC 9989 §4.10).
 */
export const DnsErrorCode = {
  /** NXDOMAIN, RCODE 3 (RFC 1035 §4.1.1): the name does not exist. */
  NotFound: 'ENOTFOUND',
  /** NOERROR with an empty answer (RFC 2308 §2.2): the name exists, not with this type. */
  NoData: 'ENODATA',
  /** SERVFAIL, RCODE 2 (RFC 1035 §4.1.1). */
  ServerFailure: 'ESERVFAIL',
  /** REFUSED, RCODE 5 (RFC 1035 §4.1.1). */
  Refused: 'EREFUSED',
  /** FORMERR, RCODE 1 (RFC 1035 §4.1.1): the server could not read the query. */
  FormatError: 'EFORMERR',
  /** NOTIMP, RCODE 4 (RFC 1035 §4.1.1). */
  NotImplemented: 'ENOTIMP',
  /** No answer within timeout × tries. */
  Timeout: 'ETIMEOUT',
  /** The server's port is closed (ICMP port unreachable, or TCP RST). */
  ConnectionRefused: 'ECONNREFUSED',
  /** A malformed answer. */
  BadResponse: 'EBADRESP',
  /** The name is not a valid DNS name (e.g. a label over 63 octets, RFC 1035 §2.3.4). */
  BadName: 'EBADNAME',
  /** The query was cancelled (resolver closed, or the caller's deadline passed). */
  Cancelled: 'ECANCELLED',
  /** Any other resolver failure (node's code is kept in `resolverCode`). */
  Other: 'PETREL_ERR_DNS_OTHER',
  /** A configured server is not `ip`, `ip:port` or `[ipv6]:port`. */
  InvalidServer: 'PETREL_ERR_DNS_INVALID_SERVER',
  /** A record type this resolver does not answer. */
  UnsupportedType: 'PETREL_ERR_DNS_UNSUPPORTED_TYPE',
  /** Resolver options out of range. */
  InvalidOptions: 'PETREL_ERR_DNS_INVALID_OPTIONS',
} as const;
export type DnsErrorCode = (typeof DnsErrorCode)[keyof typeof DnsErrorCode];

const KNOWN = new Set<string>(Object.values(DnsErrorCode));

/** Codes that say the answer is definite: there is no such record. Everything else may pass. */
const DEFINITE = new Set<DnsErrorCode>([
  DnsErrorCode.NotFound,
  DnsErrorCode.NoData,
  DnsErrorCode.BadName,
  DnsErrorCode.InvalidServer,
  DnsErrorCode.UnsupportedType,
  DnsErrorCode.InvalidOptions,
]);

export interface DnsErrorDetails {
  /** The queried name. */
  hostname?: string;
  /** The queried record type (A, MX, TXT...). */
  rrtype?: string;
  /** node's error code when it is not one of ours (e.g. EOF). */
  resolverCode?: string;
}

export class DnsError extends Error {
  readonly code: DnsErrorCode;
  readonly hostname: string | undefined;
  readonly rrtype: string | undefined;
  readonly resolverCode: string | undefined;
  /** True when asking again later may give an answer (timeouts, SERVFAIL, unreachable server). */
  readonly temporary: boolean;

  constructor(code: DnsErrorCode, message: string, details: DnsErrorDetails = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DnsError';
    this.code = code;
    this.hostname = details.hostname;
    this.rrtype = details.rrtype;
    this.resolverCode = details.resolverCode;
    this.temporary = !DEFINITE.has(code);
  }
}

/** Wraps an error thrown by node's resolver, keeping node's code. */
export function fromResolverError(error: unknown, hostname: string, rrtype: string): DnsError {
  if (error instanceof DnsError) return error;
  const nodeCode =
    typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
      ? error.code
      : undefined;
  const code =
    nodeCode !== undefined && KNOWN.has(nodeCode) ? (nodeCode as DnsErrorCode) : DnsErrorCode.Other;
  const reason = nodeCode ?? (error instanceof Error ? error.message : String(error));
  return new DnsError(
    code,
    `DNS ${rrtype} ${hostname}: ${reason}`,
    { hostname, rrtype, resolverCode: code === DnsErrorCode.Other ? nodeCode : undefined },
    { cause: error },
  );
}

/**
 * A fresh copy, so that callers that decorate errors (mailauth sets `spfResult`) never share one.
 * With `captureStack` false the copy gets no stack trace (its `stack` is the "DnsError: message"
 * line): capturing one is most of what an error costs, and a cached negative answer is thrown on
 * every cache hit. Class, code, message, details and cause are the same either way.
 */
export function copyError(error: DnsError, captureStack = true): DnsError {
  if (captureStack) return copy(error);
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return copy(error);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

function copy(error: DnsError): DnsError {
  return new DnsError(
    error.code,
    error.message,
    { hostname: error.hostname, rrtype: error.rrtype, resolverCode: error.resolverCode },
    { cause: error.cause },
  );
}
