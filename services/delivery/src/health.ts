/**
 * Per-destination health (docs/queue-model.md, "Destination health"): the adaptive rate after
 * throttling replies, and the whole-site backoff when every MX refuses connections. Pure state
 * machines; the worker passes the clock.
 */
import type { Reply } from '@petrel/smtp';

const MINUTE = 60_000;

/**
 * A reply that asks us to slow down rather than refusing the message: 421 (RFC 5321 §4.2.2/3.8),
 * enhanced 4.7.x (RFC 3463: security or policy status, used by providers for rate limits), 452
 * 4.5.3 (too many recipients, RFC 5321 §4.5.3.1.10) and the texts providers use with other codes.
 */
export function isThrottling(reply: Reply): boolean {
  if (reply.code === 421) return true;
  if (reply.code < 400 || reply.code >= 500) return false;
  if (reply.enhanced?.startsWith('4.7.') === true || reply.enhanced === '4.5.3') return true;
  return THROTTLE_TEXT.test(reply.lines.join(' '));
}

const THROTTLE_TEXT =
  /\b(try again later|rate limit(ed)?|too many (messages|connections|recipients)|throttl|temporarily deferred|exceeded .*(rate|quota)|slow down)\b/i;

export interface AdaptiveRateOptions {
  /** The configured rate (messages per second) that the destination recovers to. */
  readonly ratePerSecond: number;
  /** Factor applied on each throttling reply (default 0.5). */
  readonly decrease?: number;
  /** Time the lowered rate holds before recovery starts (default 10 min). */
  readonly holdMs?: number;
  /** Recovery: this fraction of the configured rate added per minute (default 0.1). */
  readonly recoveryPerMinute?: number;
  /** Never below this (messages per second; default 1 per minute). */
  readonly floor?: number;
}

/** The rate a destination is allowed now: lowered by throttling replies, recovering gradually. */
export class AdaptiveRate {
  readonly #configured: number;
  readonly #decrease: number;
  readonly #holdMs: number;
  readonly #recovery: number;
  readonly #floor: number;
  #lowered: number;
  #since = 0;

  constructor(options: AdaptiveRateOptions) {
    this.#configured = options.ratePerSecond;
    this.#decrease = options.decrease ?? 0.5;
    this.#holdMs = options.holdMs ?? 10 * MINUTE;
    this.#recovery = options.recoveryPerMinute ?? 0.1;
    this.#floor = Math.min(options.floor ?? 1 / 60, options.ratePerSecond);
    this.#lowered = options.ratePerSecond;
  }

  /** A throttling reply at `now`: lower from the rate in force now. */
  throttled(now: number): void {
    this.#lowered = Math.max(this.#floor, this.rate(now) * this.#decrease);
    this.#since = now;
  }

  rate(now: number): number {
    if (this.#lowered >= this.#configured) return this.#configured;
    const recovering = now - this.#since - this.#holdMs;
    if (recovering <= 0) return this.#lowered;
    const rate = this.#lowered + (this.#configured * this.#recovery * recovering) / MINUTE;
    return Math.min(this.#configured, rate);
  }
}

/**
 * Token bucket for a destination's rate. The burst it allows is a tenth of a second's worth (at
 * least one message), so that a destination's rate holds over any few seconds, not just on average.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;
  constructor(now: number, initial = 1) {
    this.#tokens = initial;
    this.#at = now;
  }

  /** Takes one token at `rate`/s; returns 0 when taken, else the ms to wait for one. */
  take(now: number, rate: number): number {
    const capacity = Math.max(1, rate / 10);
    this.#tokens = Math.min(capacity, this.#tokens + ((now - this.#at) * rate) / 1000);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) * 1000) / rate);
  }
}

export interface SiteBackoffOptions {
  readonly initialMs?: number;
  readonly maxMs?: number;
}

/**
 * A site whose every MX refused connections is down as a whole: entries routed to it are
 * re-deferred to `downUntil` without a connection attempt; at that time one probe decides.
 * The pause doubles from 1 min up to 1 h while the site stays down.
 */
export class SiteBackoff {
  readonly #initial: number;
  readonly #max: number;
  #failures = 0;
  #downUntil = 0;
  #probing = false;

  constructor(options: SiteBackoffOptions = {}) {
    this.#initial = options.initialMs ?? MINUTE;
    this.#max = options.maxMs ?? 60 * MINUTE;
  }

  /** Every MX of the site failed at the connection level. */
  allHostsFailed(now: number): number {
    const pause = Math.min(this.#max, this.#initial * 2 ** this.#failures);
    this.#failures++;
    this.#downUntil = now + pause;
    this.#probing = false;
    return this.#downUntil;
  }

  /** Until when the site is backed off (ms since the epoch), 0 when it is not. */
  get downUntil(): number {
    return this.#failures > 0 ? this.#downUntil : 0;
  }

  /** Whether the site is backed off (or being probed). */
  get down(): boolean {
    return this.#failures > 0;
  }

  /** A connection succeeded (whatever the replies): the site is up. */
  up(): void {
    this.#failures = 0;
    this.#downUntil = 0;
    this.#probing = false;
  }

  /**
   * May an entry be tried now? undefined: yes. A time: re-defer to then. After the pause one
   * entry goes through as the probe; the others wait until it has decided.
   */
  admit(now: number): number | undefined {
    if (this.#failures === 0) return undefined;
    if (now < this.#downUntil) return this.#downUntil;
    if (this.#probing) return now + this.#initial;
    this.#probing = true;
    return undefined;
  }
}
