import { isIPv4, isIPv6 } from 'node:net';
import { Enhanced, type Reply, ReplyCode, reply } from '@petrel/smtp';

/**
 * The unit a client is counted by: an IPv4 address, or the /64 of an IPv6 address (one
 * subscriber usually holds a whole /64, RFC 6177), with IPv4-mapped IPv6 (::ffff:a.b.c.d,
 * RFC 4291 §2.5.5.2) counted as the IPv4 address it is.
 */
export function clientKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const groups = expandIPv6(address.toLowerCase());
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const high = groups[6] ?? 0;
    const low = groups[7] ?? 0;
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with '::' and a trailing dotted quad). */
function expandIPv6(address: string): number[] {
  let text = address;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad !== null) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16));
  const front = parse(head);
  if (tail === undefined) return front;
  const back = parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

export interface ConnectionLimits {
  /** Concurrent connections across all clients. */
  readonly maxTotal: number;
  /** Concurrent connections from one client (IPv4 address or IPv6 /64). */
  readonly maxPerAddress: number;
}

const tooManyTotal = reply(ReplyCode.ServiceUnavailable, Enhanced.SecurityTemp, 'Too many connections');
const tooManyFromAddress = reply(
  ReplyCode.ServiceUnavailable,
  Enhanced.SecurityTemp,
  'Too many connections from your address',
);

/** Concurrent-connection limits; a refused connection gets 421 (RFC 5321 §3.8) and is closed. */
export class ConnectionLimiter {
  readonly #limits: ConnectionLimits;
  readonly #perClient = new Map<string, number>();
  #total = 0;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  get total(): number {
    return this.#total;
  }

  tryAcquire(ip: string): Reply | undefined {
    if (this.#total >= this.#limits.maxTotal) return tooManyTotal;
    const key = clientKey(ip);
    const count = this.#perClient.get(key) ?? 0;
    if (count >= this.#limits.maxPerAddress) return tooManyFromAddress;
    this.#perClient.set(key, count + 1);
    this.#total++;
    return undefined;
  }

  /** Call once for every tryAcquire that returned undefined. */
  release(ip: string): void {
    const key = clientKey(ip);
    const count = this.#perClient.get(key);
    if (count === undefined) return;
    if (count <= 1) this.#perClient.delete(key);
    else this.#perClient.set(key, count - 1);
    this.#total = Math.max(0, this.#total - 1);
  }
}

export interface AuthThrottleOptions {
  /** Failures answered without delay. */
  readonly failuresBeforeDelay?: number;
  /** Delay after the first delayed failure; doubles with every further one. */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** Failures within the window after which the address or user is locked out. */
  readonly lockoutAfter?: number;
  /** Failures older than this (counted from the first one) are forgotten. */
  readonly windowMs?: number;
  readonly lockoutMs?: number;
  /** Tracked addresses and users; the oldest is forgotten beyond this (bounded memory). */
  readonly maxEntries?: number;
  readonly now?: () => number;
}

interface Failures {
  count: number;
  firstAt: number;
  lockedUntil: number;
}

const lockedOut = reply(
  ReplyCode.AuthTempFailure,
  Enhanced.SecurityTemp,
  'Too many authentication failures, try again later',
);

/**
 * Slows down and then locks out password guessing, per client address and per user name:
 * delays grow exponentially after a few failures, and a lockout answers 454 4.7.0 (RFC 4954 §6)
 * before any password is checked.
 */
export class AuthThrottle {
  readonly #failuresBeforeDelay: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #lockoutAfter: number;
  readonly #windowMs: number;
  readonly #lockoutMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Insertion order is recency order: every update re-inserts, eviction takes the first. */
  readonly #entries = new Map<string, Failures>();

  constructor(options: AuthThrottleOptions = {}) {
    this.#failuresBeforeDelay = options.failuresBeforeDelay ?? 3;
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 10_000;
    this.#lockoutAfter = options.lockoutAfter ?? 10;
    this.#windowMs = options.windowMs ?? 15 * 60_000;
    this.#lockoutMs = options.lockoutMs ?? 15 * 60_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  check(ip: string, user?: string): Reply | undefined {
    const now = this.#now();
    for (const key of keys(ip, user)) {
      const entry = this.#current(key, now);
      if (entry !== undefined && entry.lockedUntil > now) return lockedOut;
    }
    return undefined;
  }

  /** Records a failed attempt; returns how long to wait before sending the failure reply. */
  failure(ip: string, user?: string): number {
    const now = this.#now();
    let worst = 0;
    for (const key of keys(ip, user)) {
      const entry = this.#current(key, now) ?? { count: 0, firstAt: now, lockedUntil: 0 };
      entry.count++;
      if (entry.count >= this.#lockoutAfter) entry.lockedUntil = now + this.#lockoutMs;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
      worst = Math.max(worst, entry.count);
    }
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    if (worst <= this.#failuresBeforeDelay) return 0;
    const exponent = Math.min(worst - this.#failuresBeforeDelay - 1, 30);
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** exponent);
  }

  /** A successful login clears the failures of the address it came from. */
  success(ip: string, _user: string): void {
    this.#entries.delete(addressKey(ip));
  }

  /** The entry for a key, unless its window and lockout have both passed. */
  #current(key: string, now: number): Failures | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.lockedUntil <= now && now - entry.firstAt >= this.#windowMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }
}

const addressKey = (ip: string): string => `ip:${clientKey(ip)}`;

function keys(ip: string, user: string | undefined): string[] {
  return user === undefined ? [addressKey(ip)] : [addressKey(ip), `user:${user.toLowerCase()}`];
}
