import type { MxRecord, TlsaRecord } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { type Attributes, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import { TtlCache } from './cache.ts';
import { copyError, DnsError, DnsErrorCode, fromResolverError } from './errors.ts';
import { ipv6Hex } from './ip.ts';
import { parseServer } from './servers.ts';

/** The record types this resolver answers. */
export const RrType = {
  /** RFC 1035 §3.4.1 */
  A: 'A',
  /** RFC 3596 §2.1 */
  AAAA: 'AAAA',
  /** RFC 1035 §3.3.9, used as in RFC 5321 §5.1 */
  MX: 'MX',
  /** RFC 1035 §3.3.14 (SPF RFC 7208 §3, DKIM RFC 6376 §3.6.2, DMARC RFC 9989 §4.7) */
  TXT: 'TXT',
  /** RFC 1035 §3.3.12 */
  PTR: 'PTR',
  /** RFC 1035 §3.3.1 */
  CNAME: 'CNAME',
  /** RFC 6698 §2. node does not show the DNSSEC AD bit, so this alone is not DANE (RFC 7672 §2.2). */
  TLSA: 'TLSA',
} as const;
export type RrType = (typeof RrType)[keyof typeof RrType];

/** Answer shapes, the same as node:dns returns them (mailauth expects exactly these). */
export interface DnsAnswers {
  A: string[];
  AAAA: string[];
  MX: MxRecord[];
  TXT: string[][];
  PTR: string[];
  CNAME: string[];
  TLSA: TlsaRecord[];
}
export type DnsAnswer = DnsAnswers[RrType];

/**
 * What the lookup methods return: the cached answer itself, frozen (the array and its records), one
 * object for every caller until the answer expires. Copy it to change it. TLSA answers are the
 * exception: their `data` bytes cannot be frozen, so every call gets its own copy.
 */
export interface ReadonlyDnsAnswers {
  A: readonly string[];
  AAAA: readonly string[];
  MX: readonly Readonly<MxRecord>[];
  TXT: readonly (readonly string[])[];
  PTR: readonly string[];
  CNAME: readonly string[];
  TLSA: readonly Readonly<TlsaRecord>[];
}
export type ReadonlyDnsAnswer = ReadonlyDnsAnswers[RrType];

/** The resolver function mailauth accepts as its `resolver` option: node:dns shapes and codes. */
export type MailauthResolver = (name: string, rrtype: string) => Promise<DnsAnswer>;

export interface DnsResolverOptions {
  /** `ip`, `ip:port` or `[ipv6]:port`; empty or absent: the system's resolvers (/etc/resolv.conf). */
  servers?: readonly string[];
  /** Per attempt (c-ares); default 2000. */
  timeoutMs?: number;
  /** Attempts per server; default 2. */
  tries?: number;
  /** Cache time for answers without a TTL from node (all but A/AAAA); default 300. */
  defaultTtlSeconds?: number;
  /** Upper bound for any cached answer; default 3600. */
  maxTtlSeconds?: number;
  /**
   * Cache time for NXDOMAIN/NODATA. RFC 2308 §5 takes it from the SOA, which node does not show,
   * so a short fixed time; default 30.
   */
  negativeTtlSeconds?: number;
  /** Cache size bound (answers and negative answers); default 10,000. */
  maxEntries?: number;
  /** Clock in ms, for tests; default Date.now. */
  now?: () => number;
  /** Default: the 'petrel-dns' tracer of the global provider (a no-op without an SDK). */
  tracer?: Pick<Tracer, 'startSpan'>;
}

export const DNS_DEFAULTS = {
  timeoutMs: 2000,
  tries: 2,
  defaultTtlSeconds: 300,
  maxTtlSeconds: 3600,
  negativeTtlSeconds: 30,
  maxEntries: 10_000,
} as const;

/** A cached or fresh result; `value` is frozen, `error` is never thrown itself (callers get copies). */
type Outcome = { ok: true; value: ReadonlyDnsAnswer; ttlSeconds: number } | { ok: false; error: DnsError };

const NEGATIVE = new Set<DnsErrorCode>([DnsErrorCode.NotFound, DnsErrorCode.NoData]);

function checkNumber(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new DnsError(DnsErrorCode.InvalidOptions, `DNS resolver option ${name} must be a number >= ${min}`);
  }
  return value;
}

/** Case and a trailing dot do not make a different DNS name (RFC 4343 §3). */
function normalise(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/** Freezes an answer and its records, so that the cached object itself can go to every caller. */
function freezeAnswer(value: DnsAnswer): ReadonlyDnsAnswer {
  for (const item of value) if (typeof item === 'object') Object.freeze(item);
  return Object.freeze(value);
}

function minTtl(records: readonly { ttl: number }[], fallback: number): number {
  let ttl = Number.POSITIVE_INFINITY;
  for (const r of records) ttl = Math.min(ttl, r.ttl);
  return Number.isFinite(ttl) ? ttl : fallback;
}

/** The in-addr.arpa / ip6.arpa name for an address (RFC 1035 §3.5, RFC 3596 §2.5). */
export function reverseName(ip: string): string {
  const family = isIP(ip);
  if (family === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (family === 6) return `${[...ipv6Hex(ip)].reverse().join('.')}.ip6.arpa`;
  throw new DnsError(DnsErrorCode.BadName, `not an IP address: ${JSON.stringify(ip)}`, { rrtype: 'PTR' });
}

/**
 * A caching DNS resolver over node's c-ares `Resolver`: one instance per process, shared by
 * SPF/DKIM/DMARC checks (through `mailauthResolver()`) and delivery (MX, A/AAAA, TLSA). Identical
 * lookups in flight at the same time go to the network once.
 *
 * A cache hit is cheap, because delivery asks the same questions for every message: the lookup
 * methods return the cached answer itself, frozen (`ReadonlyDnsAnswers`), and a cached NXDOMAIN or
 * NODATA is thrown as a fresh `DnsError` without a stack trace. Every failure is a fresh `DnsError`
 * (callers may decorate it), and `mailauthResolver()` hands out mutable copies of answers, because
 * mailauth mutates both (it sorts MX lists and writes `spfResult` onto errors).
 */
export class DnsResolver {
  readonly #resolver: Resolver;
  readonly #cache: TtlCache<Outcome>;
  readonly #inflight = new Map<string, Promise<Outcome>>();
  readonly #tracer: Pick<Tracer, 'startSpan'>;
  readonly #defaultTtl: number;
  readonly #maxTtl: number;
  readonly #negativeTtl: number;

  constructor(options: DnsResolverOptions = {}) {
    const timeout = checkNumber('timeoutMs', options.timeoutMs ?? DNS_DEFAULTS.timeoutMs, 1);
    const tries = checkNumber('tries', options.tries ?? DNS_DEFAULTS.tries, 1);
    this.#maxTtl = checkNumber('maxTtlSeconds', options.maxTtlSeconds ?? DNS_DEFAULTS.maxTtlSeconds, 0);
    this.#defaultTtl = Math.min(
      checkNumber('defaultTtlSeconds', options.defaultTtlSeconds ?? DNS_DEFAULTS.defaultTtlSeconds, 0),
      this.#maxTtl,
    );
    this.#negativeTtl = Math.min(
      checkNumber('negativeTtlSeconds', options.negativeTtlSeconds ?? DNS_DEFAULTS.negativeTtlSeconds, 0),
      this.#maxTtl,
    );
    const maxEntries = checkNumber('maxEntries', options.maxEntries ?? DNS_DEFAULTS.maxEntries, 0);
    this.#resolver = new Resolver({ timeout, tries });
    const servers = (options.servers ?? []).map(parseServer);
    if (servers.length > 0) this.#resolver.setServers(servers);
    this.#cache = new TtlCache(maxEntries, options.now ?? Date.now);
    this.#tracer = options.tracer ?? trace.getTracer('petrel-dns');
  }

  /** The servers queried, as node reports them. */
  get servers(): string[] {
    return this.#resolver.getServers();
  }

  a(name: string): Promise<readonly string[]> {
    return this.resolve(name, RrType.A);
  }

  aaaa(name: string): Promise<readonly string[]> {
    return this.resolve(name, RrType.AAAA);
  }

  mx(name: string): Promise<ReadonlyDnsAnswers['MX']> {
    return this.resolve(name, RrType.MX);
  }

  txt(name: string): Promise<ReadonlyDnsAnswers['TXT']> {
    return this.resolve(name, RrType.TXT);
  }

  /** PTR records of a reverse name (`reverseName(ip)` builds it from an address). */
  ptr(name: string): Promise<readonly string[]> {
    return this.resolve(name, RrType.PTR);
  }

  cname(name: string): Promise<readonly string[]> {
    return this.resolve(name, RrType.CNAME);
  }

  /** A fresh copy on every call (see `ReadonlyDnsAnswers`). */
  tlsa(name: string): Promise<ReadonlyDnsAnswers['TLSA']> {
    return this.resolve(name, RrType.TLSA);
  }

  /** The cached answer itself, frozen (TLSA: a copy); see `ReadonlyDnsAnswers`. */
  resolve<T extends RrType>(name: string, rrtype: T): Promise<ReadonlyDnsAnswers[T]> {
    return this.#answer(name, rrtype, rrtype === RrType.TLSA) as Promise<ReadonlyDnsAnswers[T]>;
  }

  /**
   * The `(name, rrtype)` function for mailauth's `resolver` option. With a signal, lookups made
   * after it fired, or still waiting when it fires, fail at once with ECANCELLED (a temporary
   * error to mailauth), so an abandoned check stops asking.
   */
  mailauthResolver(options: { signal?: AbortSignal } = {}): MailauthResolver {
    const { signal } = options;
    return async (name, rrtype) => {
      const type = rrtype.toUpperCase();
      if (!Object.hasOwn(RrType, type)) {
        throw new DnsError(DnsErrorCode.UnsupportedType, `DNS type ${rrtype} is not supported`, {
          hostname: name,
          rrtype,
        });
      }
      // Copies: mailauth sorts what it gets.
      const lookup = this.#answer(name, type as RrType, true) as Promise<DnsAnswer>;
      if (signal === undefined) return await lookup;
      return await untilAborted(lookup, signal, name, type);
    };
  }

  /** Forgets every cached answer. */
  clearCache(): void {
    this.#cache.clear();
  }

  /** Cancels lookups in flight (they fail with ECANCELLED) and empties the cache. */
  close(): void {
    this.#resolver.cancel();
    this.#cache.clear();
  }

  /**
   * The cached answer or failure, without throwing (both frozen, shared: only read them). For
   * lookups made for every message whose negative answers are expected, as an MX host's AAAA:
   * a thrown copy of a cached NODATA cost more than the rest of the route.
   */
  async settled<T extends RrType>(
    name: string,
    rrtype: T,
  ): Promise<{ ok: true; value: ReadonlyDnsAnswers[T] } | { ok: false; error: DnsError }> {
    const normalised = normalise(name);
    const key = `${rrtype} ${normalised}`;
    const outcome = await (this.#cache.get(key) ?? this.#lookup(key, normalised, rrtype));
    if (!outcome.ok) return { ok: false, error: outcome.error };
    return {
      ok: true,
      value: (rrtype === RrType.TLSA
        ? structuredClone(outcome.value)
        : outcome.value) as ReadonlyDnsAnswers[T],
    };
  }

  /** The answer, or a mutable copy of it; throws a fresh copy of a failure. */
  async #answer(name: string, rrtype: RrType, copy: boolean): Promise<ReadonlyDnsAnswer | DnsAnswer> {
    const normalised = normalise(name);
    const key = `${rrtype} ${normalised}`;
    const cached = this.#cache.get(key);
    // Awaited on a hit too: the caller's handler is then attached before a cached failure is
    // thrown, which spares node's bookkeeping of rejections that have no handler yet.
    const outcome = await (cached ?? this.#lookup(key, normalised, rrtype));
    // A cached NXDOMAIN/NODATA is thrown on every hit: without a stack trace, the costly part.
    if (!outcome.ok) throw copyError(outcome.error, cached === undefined);
    return copy ? (structuredClone(outcome.value) as DnsAnswer) : outcome.value;
  }

  /** Not cached: the query in flight for `key`, or a new one, whose outcome is then cached. */
  #lookup(key: string, name: string, rrtype: RrType): Promise<Outcome> {
    const pending = this.#inflight.get(key);
    if (pending !== undefined) return pending;
    const query = this.#query(name, rrtype).then((outcome) => {
      this.#inflight.delete(key);
      if (outcome.ok) this.#cache.set(key, outcome, Math.min(outcome.ttlSeconds, this.#maxTtl) * 1000);
      else if (NEGATIVE.has(outcome.error.code)) this.#cache.set(key, outcome, this.#negativeTtl * 1000);
      // Temporary failures are not cached: the next message asks again.
      return outcome;
    });
    this.#inflight.set(key, query);
    return query;
  }

  async #query(name: string, rrtype: RrType): Promise<Outcome> {
    const attributes: Attributes = { 'dns.question.name': name, 'dns.question.type': rrtype };
    const span = this.#tracer.startSpan(`DNS ${rrtype}`, { kind: SpanKind.CLIENT, attributes });
    try {
      const { value, ttlSeconds } = await this.#ask(name, rrtype);
      span.setAttributes({ 'dns.answer.count': value.length, 'petrel.dns.ttl': ttlSeconds });
      return { ok: true, value: freezeAnswer(value), ttlSeconds };
    } catch (caught) {
      const error = fromResolverError(caught, name, rrtype);
      span.setAttribute('error.type', error.code);
      // NXDOMAIN/NODATA are answers, not failures of the lookup.
      if (error.temporary) span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      return { ok: false, error };
    } finally {
      span.end();
    }
  }

  async #ask(name: string, rrtype: RrType): Promise<{ value: DnsAnswer; ttlSeconds: number }> {
    const r = this.#resolver;
    const fixed = (value: DnsAnswer) => ({ value, ttlSeconds: this.#defaultTtl });
    switch (rrtype) {
      case RrType.A: {
        // Only A/AAAA come with TTLs from node.
        const records = await r.resolve4(name, { ttl: true });
        return { value: records.map((x) => x.address), ttlSeconds: minTtl(records, this.#defaultTtl) };
      }
      case RrType.AAAA: {
        const records = await r.resolve6(name, { ttl: true });
        return { value: records.map((x) => x.address), ttlSeconds: minTtl(records, this.#defaultTtl) };
      }
      case RrType.MX:
        return fixed(await r.resolveMx(name));
      case RrType.TXT:
        return fixed(await r.resolveTxt(name));
      case RrType.PTR:
        return fixed(await r.resolvePtr(name));
      case RrType.CNAME:
        return fixed(await r.resolveCname(name));
      case RrType.TLSA:
        return fixed(await r.resolveTlsa(name));
    }
  }
}

function untilAborted<T>(lookup: Promise<T>, signal: AbortSignal, name: string, rrtype: string): Promise<T> {
  const cancelled = () =>
    new DnsError(DnsErrorCode.Cancelled, `DNS ${rrtype} ${name}: cancelled`, { hostname: name, rrtype });
  if (signal.aborted) {
    lookup.catch(() => undefined);
    return Promise.reject(cancelled());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    lookup.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
