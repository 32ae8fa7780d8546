// MX routing: from a recipient domain to the ordered list of hosts (and their addresses) that a
// delivery attempt tries, following RFC 5321 §5.1 and the null MX of RFC 7505.
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { DnsError, DnsErrorCode, type DnsResolver, RrType } from '@petrel/dns';

/** The lookups routing needs; a `DnsResolver` (which caches and coalesces them) is the one to pass. */
/** `settled`, when there, spares throwing for expected negative answers (see DnsResolver.settled). */
export type RouteResolver = Pick<DnsResolver, 'mx' | 'a' | 'aaaa'> & Partial<Pick<DnsResolver, 'settled'>>;

/** Which address families are looked up and returned. */
export type AddressFamilies = 4 | 6 | 'both';

export interface MxHost {
  /**
   * The MX exchange (lower case, no trailing dot); for an implicit MX the domain itself; for a domain
   * literal the bare address. A CNAME'd exchange keeps the name the MX record gives.
   */
  readonly name: string;
  /** MX preference; 0 for an implicit MX and a domain literal. */
  readonly preference: number;
  /** IPv4 and IPv6 literals, deduplicated, the preferred family first. Never empty. */
  readonly addresses: string[];
  /** True when no MX record names this host: implicit MX (RFC 5321 §5.1) or domain literal. */
  readonly implicit: boolean;
}

/** Why an MX record yielded no host in the list. */
export const SkipCode = {
  /** The exchange is an IP address: RFC 5321 §5.1 says the MX data MUST be a domain name. */
  AddressLiteral: 'addressLiteral',
  /** A "." exchange next to other MX records (RFC 7505 §3 forbids mixing them). */
  RootExchange: 'rootExchange',
  /** The exchange has no A/AAAA (NXDOMAIN or NODATA) in the families looked up. */
  NoAddress: 'noAddress',
  /** Its address lookups failed temporarily (SERVFAIL, timeout, unreachable server). */
  DnsFailure: 'dnsFailure',
} as const;
export type SkipCode = (typeof SkipCode)[keyof typeof SkipCode];

export interface SkippedHost {
  readonly name: string;
  readonly preference: number;
  readonly code: SkipCode;
  readonly reason: string;
}

/** Stable names of the routing failures. */
export const RouteErrorCode = {
  /** NXDOMAIN for the domain (RFC 5321 §5.1 "MUST be reported as an error"): permanent, 5.1.2. */
  NoSuchDomain: 'noSuchDomain',
  /** Not a usable domain or domain literal (bad IDN, EBADNAME, unknown literal tag): permanent, 5.1.3. */
  InvalidDomain: 'invalidDomain',
  /**
   * No MX and no A/AAAA for the domain: the implicit MX is unusable (RFC 5321 §5.1). Permanent 5.4.4
   * (RFC 3463 §3.5 gives "a DNS lookup returning only an SOA record" as the X.4.4 example);
   * temporary 4.4.4 when one family was not looked up.
   */
  NoMailHost: 'noMailHost',
  /**
   * MX records, but none usable: every exchange lacks addresses or is an address literal
   * (RFC 5321 §5.1). Permanent 5.4.4 by default, as Postfix (smtp_defer_if_no_mx_address_found = no);
   * temporary 4.4.4 with `deferIfNoMxAddress` or when one family was not looked up.
   */
  NoUsableMx: 'noUsableMx',
  /** A domain literal of a family this worker does not use: our configuration, so temporary 4.4.4. */
  AddressFamilyDisabled: 'addressFamilyDisabled',
  /** SERVFAIL, timeout, refused, unreachable DNS server: temporary 4.4.3 (RFC 5321 §5.1, §4.5.4.1). */
  DnsFailure: 'dnsFailure',
} as const;
export type RouteErrorCode = (typeof RouteErrorCode)[keyof typeof RouteErrorCode];

/** Enhanced status codes (RFC 3463) of routing outcomes, for the DSN and the logs. */
export const RouteStatus = {
  /** X.1.10 "Recipient address has null MX", registered by RFC 7505; sent with 556 (RFC 7504 §3). */
  NullMx: '5.1.10',
  /** X.1.2 bad destination system address (RFC 3463 §3.2). */
  BadDestinationSystem: '5.1.2',
  /** X.1.3 bad destination mailbox address syntax (RFC 3463 §3.2). */
  BadDestinationSyntax: '5.1.3',
  /** X.4.3 directory server failure, transient only (RFC 3463 §3.5). */
  DirectoryServerFailure: '4.4.3',
  /** X.4.4 unable to route (RFC 3463 §3.5), permanent form. */
  UnableToRoute: '5.4.4',
  /** X.4.4 unable to route, persistent transient form. */
  UnableToRouteTemp: '4.4.4',
} as const;
export type RouteStatus = (typeof RouteStatus)[keyof typeof RouteStatus];

export interface RouteFailure {
  /** temporary: requeue and retry later; permanent: bounce. */
  readonly kind: 'temporary' | 'permanent';
  readonly code: RouteErrorCode;
  readonly status: RouteStatus;
  readonly reason: string;
}

export type Route =
  /** Try the hosts in order, each host's addresses in order. */
  | { readonly kind: 'hosts'; readonly hosts: MxHost[]; readonly skipped: SkippedHost[] }
  /** RFC 7505: the domain accepts no mail; bounce with 556 5.1.10, do not try A/AAAA. */
  | { readonly kind: 'nullMx'; readonly status: typeof RouteStatus.NullMx; readonly reason: string }
  | RouteFailure;

export interface RouteOptions {
  /** Families looked up; default 'both' (A and AAAA in parallel). */
  families?: AddressFamilies;
  /**
   * Which family comes first within one host; default 4, because most test and many cluster hosts
   * have no IPv6 route, and a v6 attempt there costs a connect error per host before v4 is tried.
   */
  preferFamily?: 4 | 6;
  /**
   * MX hosts kept after sorting and dedupe, before address lookups (RFC 5321 §5.1 allows a
   * configurable limit and asks for at least two addresses to be tried); default 10.
   */
  maxHosts?: number;
  /** Shuffles equal preferences (RFC 5321 §5.1 "MUST randomize them"); [0, 1) like Math.random. */
  random?: () => number;
  /** Treat MX records without any usable address as temporary (4.4.4) instead of permanent (5.4.4). */
  deferIfNoMxAddress?: boolean;
}

export const ROUTE_DEFAULTS = {
  families: 'both',
  preferFamily: 4,
  maxHosts: 10,
  deferIfNoMxAddress: false,
} as const;

export const RouteOptionsErrorCode = 'PETREL_ERR_ROUTE_INVALID_OPTIONS';

/** Thrown for options out of range: a programming error, not a routing outcome. */
export class RouteOptionsError extends Error {
  readonly code = RouteOptionsErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'RouteOptionsError';
  }
}

/**
 * Resolves where mail for `domain` goes. Never throws for DNS outcomes: every one is a `Route`.
 *
 * - `[192.0.2.1]` / `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3): that address, no DNS.
 * - MX records (RFC 5321 §5.1): sorted by preference, equal preferences shuffled, identical names
 *   kept once at their lowest preference, capped at `maxHosts`, then every host's A/AAAA looked up
 *   in parallel. Hosts without addresses are left out (listed in `skipped`); a host whose lookups
 *   failed temporarily is left out too, so lower-preference hosts are still tried.
 * - A lone "." exchange: null MX (RFC 7505 §3), with no fallback to A/AAAA.
 * - No MX (NODATA, or an empty answer at the end of a CNAME chain): the domain's own A/AAAA as an
 *   implicit MX of preference 0. The recursive resolver follows a CNAME'd domain for us (RFC 5321
 *   §5.1 "processed as if it were the initial name"); the host keeps the name asked for.
 * - An exchange that is a CNAME: RFC 5321 §5.1 puts it outside the standard and RFC 2181 §10.3
 *   forbids it, but Postfix and Exim deliver to it, and so do we: the resolver returns the target's
 *   addresses for an A/AAAA query on the alias.
 * - An exchange that is an IP address ("MX 10 192.0.2.1"): not a domain name, so not usable (RFC 5321
 *   §5.1: the MX data MUST be a domain name); skipped, as Exim does unless allow_mx_to_ip is set.
 */
export async function resolveRoute(
  resolver: RouteResolver,
  domain: string,
  options: RouteOptions = {},
): Promise<Route> {
  const opts = checkOptions(options);
  const trimmed = domain.trim();
  if (trimmed.startsWith('[')) return domainLiteral(trimmed, opts);

  const name = toLookupName(trimmed);
  if (name === undefined) {
    return failure('permanent', RouteErrorCode.InvalidDomain, `invalid domain ${JSON.stringify(domain)}`);
  }

  // The resolver's cached answer itself (frozen): only read.
  let records: readonly { readonly exchange: string; readonly priority: number }[];
  const mx = await lookupMx(resolver, name);
  if (mx.ok) records = mx.value;
  else {
    const dns = mx.error;
    if (dns.code === DnsErrorCode.NoData) records = [];
    else if (dns.code === DnsErrorCode.NotFound) {
      return failure('permanent', RouteErrorCode.NoSuchDomain, `no such domain: ${name} (NXDOMAIN)`);
    } else if (dns.code === DnsErrorCode.BadName) {
      return failure('permanent', RouteErrorCode.InvalidDomain, `invalid domain ${name}: ${dns.code}`);
    } else {
      // RFC 5321 §5.1: a temporary error → queue and retry; never fall back to A/AAAA here.
      return failure('temporary', RouteErrorCode.DnsFailure, `MX lookup for ${name} failed: ${dns.code}`);
    }
  }

  if (records.length === 0) return await implicitMx(resolver, name, opts);
  const [only] = records;
  if (records.length === 1 && only !== undefined && isRoot(only.exchange)) {
    // RFC 7505 §3 specifies preference 0; a lone root exchange cannot mean anything else anyway.
    return { kind: 'nullMx', status: RouteStatus.NullMx, reason: `${name} accepts no mail (null MX)` };
  }
  return await explicitMx(resolver, name, records, opts);
}

/**
 * The MX records, or the failure. Through `settled` where the resolver has it: a domain without MX
 * records (NODATA, mail to its A/AAAA) is common, and a thrown copy of the cached answer for every
 * message cost more than the rest of the route.
 */
async function lookupMx(
  resolver: RouteResolver,
  name: string,
): Promise<
  | { ok: true; value: readonly { readonly exchange: string; readonly priority: number }[] }
  | { ok: false; error: DnsError }
> {
  if (resolver.settled !== undefined) return await resolver.settled(name, RrType.MX);
  try {
    return { ok: true, value: await resolver.mx(name) };
  } catch (error) {
    return { ok: false, error: asDnsError(error) };
  }
}

interface Options {
  families: AddressFamilies;
  preferFamily: 4 | 6;
  maxHosts: number;
  random: () => number;
  deferIfNoMxAddress: boolean;
}

function checkOptions(options: RouteOptions): Options {
  const maxHosts = options.maxHosts ?? ROUTE_DEFAULTS.maxHosts;
  if (!Number.isInteger(maxHosts) || maxHosts < 1) {
    throw new RouteOptionsError(`maxHosts must be an integer >= 1, got ${maxHosts}`);
  }
  const families = options.families ?? ROUTE_DEFAULTS.families;
  if (families !== 4 && families !== 6 && families !== 'both') {
    throw new RouteOptionsError(`families must be 4, 6 or 'both', got ${String(families)}`);
  }
  const preferFamily = options.preferFamily ?? ROUTE_DEFAULTS.preferFamily;
  if (preferFamily !== 4 && preferFamily !== 6) {
    throw new RouteOptionsError(`preferFamily must be 4 or 6, got ${String(preferFamily)}`);
  }
  return {
    families,
    preferFamily,
    maxHosts,
    random: options.random ?? Math.random,
    deferIfNoMxAddress: options.deferIfNoMxAddress ?? ROUTE_DEFAULTS.deferIfNoMxAddress,
  };
}

function failure(kind: RouteFailure['kind'], code: RouteErrorCode, reason: string): RouteFailure {
  return { kind, code, status: STATUS[code][kind], reason };
}

const STATUS: Record<RouteErrorCode, Record<RouteFailure['kind'], RouteStatus>> = {
  noSuchDomain: { permanent: RouteStatus.BadDestinationSystem, temporary: RouteStatus.UnableToRouteTemp },
  invalidDomain: { permanent: RouteStatus.BadDestinationSyntax, temporary: RouteStatus.UnableToRouteTemp },
  noMailHost: { permanent: RouteStatus.UnableToRoute, temporary: RouteStatus.UnableToRouteTemp },
  noUsableMx: { permanent: RouteStatus.UnableToRoute, temporary: RouteStatus.UnableToRouteTemp },
  addressFamilyDisabled: { permanent: RouteStatus.UnableToRoute, temporary: RouteStatus.UnableToRouteTemp },
  dnsFailure: { permanent: RouteStatus.UnableToRoute, temporary: RouteStatus.DirectoryServerFailure },
};

/** Our resolver only throws DnsError; anything else is a bug and is not turned into a route. */
function asDnsError(error: unknown): DnsError {
  if (error instanceof DnsError) return error;
  throw error;
}

/** "No such record" answers; anything else may change when asked again. */
function definite(error: DnsError): boolean {
  return (
    error.code === DnsErrorCode.NotFound ||
    error.code === DnsErrorCode.NoData ||
    error.code === DnsErrorCode.BadName
  );
}

/** Lower case, one trailing dot dropped (RFC 4343 §3); U-labels to A-labels (RFC 5890 §2.3.2.1). */
function toLookupName(domain: string): string | undefined {
  let name = domain.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  // domainToASCII only for non-ASCII: it would also turn a numeric name like "127.1" into an IPv4.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  if (/[^\x00-\x7f]/.test(name)) name = domainToASCII(name);
  if (name === '' || name.startsWith('.') || name.includes('..')) return undefined;
  return name;
}

function normaliseExchange(exchange: string): string {
  const lower = exchange.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** c-ares gives the root exchange as "", a zone file writes it "." (RFC 7505 §3). */
function isRoot(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

const IPV6_TAG = /^ipv6:/i;

/** RFC 5321 §4.1.3 address literals; General-address-literal tags other than IPv6 are unknown. */
function domainLiteral(literal: string, opts: Options): Route {
  const invalid = () =>
    failure('permanent', RouteErrorCode.InvalidDomain, `invalid address literal ${JSON.stringify(literal)}`);
  if (!literal.endsWith(']')) return invalid();
  const inner = literal.slice(1, -1);
  let address: string;
  let family: 4 | 6;
  if (IPV6_TAG.test(inner)) {
    address = inner.slice(5).toLowerCase();
    family = 6;
    if (!isIPv6(address)) return invalid();
  } else {
    address = inner;
    family = 4;
    if (!isIPv4(address)) return invalid();
  }
  if (opts.families !== 'both' && opts.families !== family) {
    return failure(
      'temporary',
      RouteErrorCode.AddressFamilyDisabled,
      `${literal}: IPv${family} is not enabled for delivery`,
    );
  }
  return {
    kind: 'hosts',
    hosts: [{ name: address, preference: 0, addresses: [address], implicit: true }],
    skipped: [],
  };
}

interface Addresses {
  addresses: string[];
  /** The first temporary failure, when some lookup had one. */
  temporary: DnsError | undefined;
}

interface Settled {
  readonly addresses: readonly string[];
  readonly temporary: DnsError | undefined;
}

const NOT_ASKED: Settled = { addresses: [], temporary: undefined };

/** A and AAAA (as enabled) in parallel; definite "no record" answers count as empty. */
async function lookupAddresses(resolver: RouteResolver, name: string, opts: Options): Promise<Addresses> {
  const want4 = opts.families !== 6;
  const want6 = opts.families !== 4;
  const settle = async (rrtype: typeof RrType.A | typeof RrType.AAAA): Promise<Settled> => {
    if (resolver.settled !== undefined) {
      const outcome = await resolver.settled(name, rrtype);
      if (outcome.ok) return { addresses: outcome.value, temporary: undefined };
      return { addresses: [], temporary: definite(outcome.error) ? undefined : outcome.error };
    }
    try {
      return {
        addresses: await (rrtype === RrType.A ? resolver.a(name) : resolver.aaaa(name)),
        temporary: undefined,
      };
    } catch (error) {
      const dns = asDnsError(error);
      return { addresses: [], temporary: definite(dns) ? undefined : dns };
    }
  };
  const [v4, v6] = await Promise.all([
    want4 ? settle(RrType.A) : NOT_ASKED,
    want6 ? settle(RrType.AAAA) : NOT_ASKED,
  ]);
  const temporary = v4.temporary ?? v6.temporary;
  const four = v4.addresses;
  const six = v6.addresses;
  const ordered = opts.preferFamily === 6 ? [...six, ...four] : [...four, ...six];
  // A new array: the route's own, not the resolver's cached answer.
  return { addresses: [...new Set(ordered)], temporary };
}

/** A "no address" verdict is only definite when both families were asked. */
function noAddressKind(opts: Options, deferable: boolean): RouteFailure['kind'] {
  return opts.families === 'both' && !deferable ? 'permanent' : 'temporary';
}

async function implicitMx(resolver: RouteResolver, name: string, opts: Options): Promise<Route> {
  const { addresses, temporary } = await lookupAddresses(resolver, name, opts);
  if (addresses.length > 0) {
    return { kind: 'hosts', hosts: [{ name, preference: 0, addresses, implicit: true }], skipped: [] };
  }
  if (temporary !== undefined) {
    return failure(
      'temporary',
      RouteErrorCode.DnsFailure,
      `address lookup for ${name} failed: ${temporary.code}`,
    );
  }
  return failure(
    noAddressKind(opts, false),
    RouteErrorCode.NoMailHost,
    `${name} has no MX and no ${familiesText(opts)} address`,
  );
}

type MxRecords = readonly { readonly exchange: string; readonly priority: number }[];

interface Candidate {
  readonly exchange: string;
  readonly preference: number;
}

/** An MX answer made ready for routing: everything that does not depend on the random source. */
interface PreparedMx {
  /**
   * The usable exchanges, identical names kept once at their lowest preference, sorted by
   * preference and then name, in runs of equal preference (each run is shuffled per route).
   */
  readonly groups: readonly (readonly Candidate[])[];
  /** Root and address-literal exchanges, in answer order (frozen: shared by every route). */
  readonly skipped: readonly SkippedHost[];
}

/**
 * Prepared answers by the resolver's answer object. A `DnsResolver` hands out the same frozen
 * array on every cache hit, so one domain's MX records are normalised, checked and sorted once per
 * TTL rather than once per message; a frozen array cannot change, so its entry cannot go stale.
 */
const preparedMx = new WeakMap<MxRecords, PreparedMx>();

function prepareMx(records: MxRecords): PreparedMx {
  const frozen = Object.isFrozen(records);
  if (frozen) {
    const known = preparedMx.get(records);
    if (known !== undefined) return known;
  }
  const skipped: SkippedHost[] = [];
  // Identical names kept once, at their lowest preference.
  const byName = new Map<string, number>();
  for (const record of records) {
    const exchange = normaliseExchange(record.exchange);
    if (isRoot(exchange)) {
      skipped.push({
        name: '.',
        preference: record.priority,
        code: SkipCode.RootExchange,
        reason: 'null MX next to other MX records (RFC 7505 §3); the others are used',
      });
    } else if (isIP(exchange) !== 0) {
      skipped.push({
        name: exchange,
        preference: record.priority,
        code: SkipCode.AddressLiteral,
        reason: 'MX exchange is an IP address, not a domain name (RFC 5321 §5.1)',
      });
    } else {
      const seen = byName.get(exchange);
      if (seen === undefined || record.priority < seen) byName.set(exchange, record.priority);
    }
  }
  const sorted = Array.from(byName, ([exchange, preference]) => ({ exchange, preference })).sort(
    (x, y) => x.preference - y.preference || (x.exchange < y.exchange ? -1 : x.exchange > y.exchange ? 1 : 0),
  );
  const groups: Candidate[][] = [];
  for (const candidate of sorted) {
    const last = groups.at(-1);
    if (last?.[0]?.preference === candidate.preference) last.push(candidate);
    else groups.push([candidate]);
  }
  const prepared: PreparedMx = { groups, skipped: skipped.map((s) => Object.freeze(s)) };
  if (frozen) preparedMx.set(records, prepared);
  return prepared;
}

async function explicitMx(
  resolver: RouteResolver,
  name: string,
  records: MxRecords,
  opts: Options,
): Promise<Route> {
  const prepared = prepareMx(records);
  const skipped = [...prepared.skipped];
  const chosen = order(prepared.groups, opts.random);
  if (chosen.length > opts.maxHosts) chosen.length = opts.maxHosts;
  const lookups = await Promise.all(chosen.map((c) => lookupAddresses(resolver, c.exchange, opts)));

  const hosts: MxHost[] = [];
  let temporary: DnsError | undefined;
  chosen.forEach((c, i) => {
    const { addresses, temporary: failed } = lookups[i] ?? { addresses: [], temporary: undefined };
    if (addresses.length > 0) {
      hosts.push({ name: c.exchange, preference: c.preference, addresses, implicit: false });
    } else if (failed !== undefined) {
      temporary ??= failed;
      skipped.push({
        name: c.exchange,
        preference: c.preference,
        code: SkipCode.DnsFailure,
        reason: `address lookup failed: ${failed.code}`,
      });
    } else {
      skipped.push({
        name: c.exchange,
        preference: c.preference,
        code: SkipCode.NoAddress,
        reason: `no ${familiesText(opts)} address`,
      });
    }
  });

  if (hosts.length > 0) return { kind: 'hosts', hosts, skipped };
  if (temporary !== undefined) {
    return failure(
      'temporary',
      RouteErrorCode.DnsFailure,
      `no MX host of ${name} resolved; last failure ${temporary.code}`,
    );
  }
  const detail = skipped.map((s) => `${s.name} (${s.code})`).join(', ');
  return failure(
    noAddressKind(opts, opts.deferIfNoMxAddress),
    RouteErrorCode.NoUsableMx,
    `no usable MX host for ${name}: ${detail}`,
  );
}

/**
 * The groups of `prepareMx` in ascending preference, each one shuffled (Fisher-Yates, RFC 5321 §5.1)
 * from its sorted order, so the result depends on `random` only, not on the order of the DNS
 * answer. Every group is shuffled, also past `maxHosts`, so a call draws as often as ever.
 */
function order(groups: readonly (readonly Candidate[])[], random: () => number): Candidate[] {
  const out: Candidate[] = [];
  for (const group of groups) {
    const start = out.length;
    out.push(...group);
    for (let i = group.length - 1; i > 0; i--) {
      // Clamped: a random source outside [0, 1) must not index outside the group.
      const j = start + Math.max(0, Math.min(i, Math.floor(random() * (i + 1))));
      const a = out[start + i] as Candidate;
      out[start + i] = out[j] as Candidate;
      out[j] = a;
    }
  }
  return out;
}

function familiesText(opts: Options): string {
  return opts.families === 'both' ? 'IPv4 or IPv6' : `IPv${opts.families}`;
}
