import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { KV } from '@nats-io/kv';
import { type Reply, reply } from '@petrel/smtp';

/**
 * RFC 6647 §2.1: a greylisted attempt gets a temporary failure; RFC 3463 X.7.1 "delivery not
 * authorized" in its transient form. Kept here until codes.ts has 4.7.1 (the lead moves it).
 */
export const GreylistReply = {
  code: 451,
  enhanced: '4.7.1',
  text: 'Greylisted, please try again later',
} as const;

export interface GreylistLog {
  warn(o: object, m: string): void;
}

export interface GreylistOptions {
  log: GreylistLog;
  /** Milliseconds since the epoch; injected by tests. */
  now?: () => number;
  /**
   * Longest a check may wait for the bucket before it lets the attempt pass (default 1000 ms):
   * while NATS is unreachable every RCPT would otherwise wait for the client's full request timeout.
   */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1000;

export interface GreylistCheck {
  ip: string;
  /** Reverse-path without brackets; empty for the null sender. */
  sender: string;
  recipient: string;
  /** How long a new triplet must wait before a retry passes. */
  delaySeconds: number;
  /** A triplet not seen (retried or passed) for this long starts over. */
  expireSeconds: number;
}

/** What the bucket holds per triplet (JSON). */
interface TripletRecord {
  /** First sighting of this round, ms since the epoch. */
  first: number;
  /** Last attempt that passed, ms since the epoch. */
  passed?: number;
}

/**
 * Greylisting (RFC 6647) with its state in a NATS KV bucket shared by every ingress pod, so a
 * retry passes whichever pod it reaches. The triplet is the client's network (IPv4 /24, IPv6 /64,
 * because large senders retry from a neighbouring address, RFC 6647 §4.1), the sender and the
 * recipient, lower-cased and hashed into a KV-safe key.
 *
 * The null sender passes: delivery status notifications and sender-verification callouts use it,
 * and a callout does not retry. The caller skips authenticated sessions. When the bucket cannot be
 * read or written in time the check fails open (no reply) and logs: greylisting is a filter, never
 * a reason to lose or hold up mail.
 */
export class Greylist {
  readonly #kv: KV;
  readonly #log: GreylistLog;
  readonly #now: () => number;
  readonly #timeoutMs: number;

  constructor(kv: KV, options: GreylistOptions) {
    this.#kv = kv;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** A 451 4.7.1 reply while the triplet is greylisted, undefined when it may pass. */
  async check(c: GreylistCheck): Promise<Reply | undefined> {
    if (c.sender === '') return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
    });
    try {
      const result = await Promise.race([this.#decide(c), timedOut]);
      if (result !== 'timeout') return result;
      this.#log.warn(
        { ip: c.ip, timeoutMs: this.#timeoutMs },
        'greylist state too slow; letting the attempt pass',
      );
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  async #decide(c: GreylistCheck): Promise<Reply | undefined> {
    const key = greylistKey(c.ip, c.sender, c.recipient);
    const now = this.#now();
    try {
      const entry = await this.#kv.get(key);
      const record = entry && entry.operation === 'PUT' ? parseRecord(entry.string()) : undefined;
      const lastSeen = record ? (record.passed ?? record.first) : undefined;
      if (record === undefined || lastSeen === undefined || now - lastSeen > c.expireSeconds * 1000) {
        // Concurrent first sightings on two pods both write "now": either value is right.
        await this.#kv.put(key, JSON.stringify({ first: now } satisfies TripletRecord));
        return greylisted();
      }
      if (record.passed === undefined && now - record.first < c.delaySeconds * 1000) return greylisted();
      // Refreshing the pass time keeps a triplet that keeps sending off the greylist.
      await this.#kv.put(key, JSON.stringify({ first: record.first, passed: now } satisfies TripletRecord));
      return undefined;
    } catch (error) {
      this.#log.warn({ err: error, ip: c.ip }, 'greylist state unavailable; letting the attempt pass');
      return undefined;
    }
  }
}

function greylisted(): Reply {
  return reply(GreylistReply.code, GreylistReply.enhanced, GreylistReply.text);
}

function parseRecord(text: string): TripletRecord | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) return undefined;
    const { first, passed } = value as { first?: unknown; passed?: unknown };
    if (typeof first !== 'number') return undefined;
    return typeof passed === 'number' ? { first, passed } : { first };
  } catch {
    return undefined;
  }
}

/** KV key of a triplet: sha256 hex of network, sender and recipient (lower-cased). */
export function greylistKey(ip: string, sender: string, recipient: string): string {
  return createHash('sha256')
    .update(`${clientNetwork(ip)}\n${sender.toLowerCase()}\n${recipient.toLowerCase()}`)
    .digest('hex');
}

/** The /24 of an IPv4 address or the /64 of an IPv6 address; anything else as given. */
export function clientNetwork(ip: string): string {
  const address = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIPv4(address)) return `${address.split('.').slice(0, 3).join('.')}.0/24`;
  const bare = address.replace(/%.*$/, '');
  if (!isIPv6(bare)) return address;
  const groups = ipv6Groups(bare);
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with an optional dotted IPv4 tail). */
function ipv6Groups(ip: string): number[] {
  let text = ip;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
