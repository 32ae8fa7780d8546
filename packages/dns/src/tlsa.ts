/**
 * Lookups that report DNSSEC status, for DANE (RFC 6698, RFC 7671, RFC 7672): TLSA records with
 * the AD flag of a trusted validating resolver, their TTLs, and a TTL cache. A/AAAA/MX/CNAME
 * work the same way through `lookup()`.
 */

import { isIP } from 'node:net';
import { type Attributes, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { TtlCache } from './cache.ts';
import { DnsError, DnsErrorCode } from './errors.ts';
import {
  canonicalName,
  negativeTtl,
  type QueryOptions,
  query,
  Rcode,
  type RecordData,
  RecordType,
  recordSet,
} from './wire.ts';

/** The types `lookup()` returns parsed. */
export type SecureType = 'A' | 'AAAA' | 'CNAME' | 'MX' | 'TLSA';

/** A definite answer (NOERROR or NXDOMAIN) and whether the resolver validated it. */
export interface SecureAnswer<R> {
  /** The name asked for (lower case, no trailing dot). */
  readonly name: string;
  /** Where the records are: `name`, or the end of the CNAME chain the resolver followed. */
  readonly owner: string;
  /** Empty for NXDOMAIN and NODATA. */
  readonly records: R[];
  /**
   * The AD flag (RFC 4035 §3.2.3): "secure" in RFC 4033 terms when the resolver validates and is
   * trusted. False: insecure, or a resolver that does not validate.
   */
  readonly authenticated: boolean;
  readonly rcode: 'NOERROR' | 'NXDOMAIN';
  /**
   * How long the answer may be kept: the smallest TTL of the records and CNAMEs; for NXDOMAIN and
   * NODATA the SOA's (RFC 2308 §5). Undefined when the answer carries none.
   */
  readonly ttlSeconds: number | undefined;
  /** The server that answered. */
  readonly server: string;
  readonly transport: 'udp' | 'tcp';
}

/** One TLSA record (RFC 6698 §2.1). */
export interface TlsaRecord {
  /** Certificate usage (RFC 6698 §2.1.1, RFC 7218): 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE. */
  readonly usage: number;
  /** 0 the full certificate, 1 its SubjectPublicKeyInfo (RFC 6698 §2.1.2). */
  readonly selector: number;
  /** 0 exact, 1 SHA-256, 2 SHA-512 (RFC 6698 §2.1.3). */
  readonly matchingType: number;
  readonly data: Buffer;
}

export type TlsaAnswer = SecureAnswer<TlsaRecord>;

type DataOf<T extends SecureType> = Extract<RecordData, { type: T }>;

/**
 * The TLSA owner name of a service (RFC 6698 §3): `_<port>._tcp.<host>`, e.g. `_25._tcp.mx.example.com`
 * for SMTP (RFC 7672 §2.2.3). The host is used as given: no CNAME expansion of the host's address
 * records (RFC 7672 §2.2.2 allows it when they are secure; we do not).
 */
export function tlsaName(host: string, port: number, protocol: 'tcp' | 'udp' | 'sctp' = 'tcp'): string {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new DnsError(DnsErrorCode.BadName, `TLSA: port ${port} out of range`, { rrtype: 'TLSA' });
  }
  if (isIP(host) !== 0) {
    throw new DnsError(DnsErrorCode.BadName, `TLSA: ${host} is an address, not a name`, {
      hostname: host,
      rrtype: 'TLSA',
    });
  }
  return `_${port}._${protocol}.${canonicalName(host)}`;
}

/**
 * Asks for `name`/`type` with the DO bit and returns the records (after CNAMEs), the AD flag and
 * the TTL. NXDOMAIN and NODATA are answers with no records; every other failure is a DnsError
 * (SERVFAIL — which is how a validating resolver reports "bogus" (RFC 4035 §5.5) — REFUSED,
 * timeouts: temporary).
 */
export async function lookup<T extends SecureType>(
  name: string,
  type: T,
  options: QueryOptions = {},
): Promise<SecureAnswer<DataOf<T>>> {
  const code = RecordType[type];
  const response = await query(name, code, options);
  const { message } = response;
  const set = recordSet(message, name, code);
  const found = message.rcode === Rcode.NoError && set.records.length > 0;
  return {
    name: canonicalName(name),
    owner: set.owner,
    records: found ? set.records.map((r) => r.data as DataOf<T>) : [],
    authenticated: response.authenticated,
    rcode: message.rcode === Rcode.NxDomain ? 'NXDOMAIN' : 'NOERROR',
    ttlSeconds: found ? set.ttlSeconds : negativeTtl(message),
    server: response.server,
    transport: response.transport,
  };
}

/** The TLSA RRset at `name` (see `tlsaName`), with the AD flag. */
export async function queryTlsa(name: string, options: QueryOptions = {}): Promise<TlsaAnswer> {
  const answer = await lookup(name, 'TLSA', options);
  return {
    ...answer,
    records: answer.records.map((r) => ({
      usage: r.usage,
      selector: r.selector,
      matchingType: r.matchingType,
      data: r.data,
    })),
  };
}

export interface TlsaResolverOptions extends QueryOptions {
  /** Upper bound for any cached answer; default 3600. */
  readonly maxTtlSeconds?: number;
  /** Cache time of NXDOMAIN/NODATA without an SOA; default 30. */
  readonly negativeTtlSeconds?: number;
  /** Cache size bound; default 10,000. */
  readonly maxEntries?: number;
  /** Clock in ms, for tests; default Date.now. */
  readonly now?: () => number;
  /** Default: the 'petrel-dns' tracer of the global provider. */
  readonly tracer?: Pick<Tracer, 'startSpan'>;
}

export const TLSA_RESOLVER_DEFAULTS = {
  maxTtlSeconds: 3600,
  negativeTtlSeconds: 30,
  maxEntries: 10_000,
} as const;

function copy(answer: TlsaAnswer): TlsaAnswer {
  return { ...answer, records: answer.records.map((r) => ({ ...r, data: Buffer.from(r.data) })) };
}

function checkNumber(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new DnsError(
      DnsErrorCode.InvalidOptions,
      `TLSA resolver option ${name} must be a number >= ${min}`,
    );
  }
  return value;
}

/**
 * TLSA lookups through the configured (validating) resolvers, cached for the answer's TTL (capped
 * at maxTtlSeconds), negative answers for the SOA's negative TTL (RFC 2308 §5). Secure and insecure
 * answers are cached alike; failures (SERVFAIL, timeouts) are not, so the next delivery asks again.
 * Identical lookups in flight go to the network once.
 */
export class TlsaResolver {
  readonly #options: QueryOptions;
  readonly #cache: TtlCache<TlsaAnswer>;
  readonly #inflight = new Map<string, Promise<TlsaAnswer>>();
  readonly #maxTtl: number;
  readonly #negativeTtl: number;
  readonly #tracer: Pick<Tracer, 'startSpan'>;

  constructor(options: TlsaResolverOptions = {}) {
    const { maxTtlSeconds, negativeTtlSeconds, maxEntries, now, tracer, ...query } = options;
    this.#options = query;
    this.#maxTtl = checkNumber('maxTtlSeconds', maxTtlSeconds ?? TLSA_RESOLVER_DEFAULTS.maxTtlSeconds, 0);
    this.#negativeTtl = Math.min(
      checkNumber('negativeTtlSeconds', negativeTtlSeconds ?? TLSA_RESOLVER_DEFAULTS.negativeTtlSeconds, 0),
      this.#maxTtl,
    );
    const entries = checkNumber('maxEntries', maxEntries ?? TLSA_RESOLVER_DEFAULTS.maxEntries, 0);
    this.#cache = new TtlCache(entries, now ?? Date.now);
    this.#tracer = tracer ?? trace.getTracer('petrel-dns');
  }

  /** The TLSA RRset at `name` (e.g. `tlsaName(mxHost, 25)`); throws DnsError when there is no answer. */
  async tlsa(name: string): Promise<TlsaAnswer> {
    const key = canonicalName(name);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return copy(cached);
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#ask(key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return copy(await pending);
  }

  /** Forgets every cached answer. */
  clearCache(): void {
    this.#cache.clear();
  }

  async #ask(name: string): Promise<TlsaAnswer> {
    const attributes: Attributes = { 'dns.question.name': name, 'dns.question.type': 'TLSA' };
    const span = this.#tracer.startSpan('DNS TLSA', { kind: SpanKind.CLIENT, attributes });
    try {
      const answer = await queryTlsa(name, this.#options);
      const ttl =
        answer.records.length > 0 ? (answer.ttlSeconds ?? 0) : (answer.ttlSeconds ?? this.#negativeTtl);
      this.#cache.set(name, answer, Math.min(ttl, this.#maxTtl) * 1000);
      span.setAttributes({
        'dns.answer.count': answer.records.length,
        'petrel.dns.ttl': ttl,
        'petrel.dns.authenticated': answer.authenticated,
        'petrel.dns.transport': answer.transport,
      });
      return answer;
    } catch (error) {
      const code = error instanceof DnsError ? error.code : DnsErrorCode.Other;
      span.setAttribute('error.type', code);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
      throw error;
    } finally {
      span.end();
    }
  }
}
