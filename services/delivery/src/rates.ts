/**
 * Leased token batches (docs/queue-model.md, "Roll-up limits"): a rate that spans several owners
 * — a roll-up DeliveryPolicy matched by MX host suffix, or a sender MailDomain's outbound rate —
 * is kept as one "theoretical arrival time" per key in a NATS KV bucket (GCRA). A worker reserves
 * a batch of consecutive send slots, 1/rate apart, with one compare-and-set, and uses them
 * locally: the cluster pays one KV operation per batch, not per message, no two workers ever hold
 * the same slot, and the slots are evenly spaced, so the rate holds without bursts at window edges.
 */
import type { KV } from '@nats-io/kv';

export const RATES_BUCKET = 'petrel_rates';
/** A key unused this long is gone (max_age): its next reservation starts from now. */
export const RATES_TTL_MS = 60_000;

interface Slots {
  /** Time of the next reserved slot (ms since the epoch). */
  next: number;
  left: number;
  intervalMs: number;
}

export interface ClusterRateOptions {
  readonly kv: KV;
  /** Live workers sharing the rates (a batch is about a second of the rate divided among them). */
  readonly workers: () => number;
  readonly now?: () => number;
}

export class ClusterRate {
  readonly #o: ClusterRateOptions;
  readonly #slots = new Map<string, Slots>();

  constructor(options: ClusterRateOptions) {
    this.#o = options;
  }

  /**
   * Reserves one send slot of `key` at `ratePerSecond` for the cluster; resolves to the
   * milliseconds to wait until the slot (0: now). Every call takes a slot: call once per message.
   */
  async reserve(key: string, ratePerSecond: number): Promise<number> {
    const now = (this.#o.now ?? Date.now)();
    const intervalMs = 1000 / ratePerSecond;
    const own = this.#slots.get(key);
    // Reserved slots in the past are lost (nothing used them); slots for an old rate too.
    if (own !== undefined && own.left > 0 && own.intervalMs === intervalMs && own.next >= now - intervalMs) {
      const at = own.next;
      own.next += intervalMs;
      own.left--;
      return Math.max(0, Math.ceil(at - now));
    }
    const batch = Math.max(1, Math.ceil(ratePerSecond / Math.max(1, this.#o.workers())));
    const name = safe(key);
    for (let round = 0; round < 16; round++) {
      const entry = await this.#o.kv.get(name);
      const tat = entry === null || entry.operation !== 'PUT' ? 0 : Number(entry.string());
      const start = Math.max(tat, now);
      const value = String(start + batch * intervalMs);
      try {
        if (entry === null) await this.#o.kv.create(name, value);
        else await this.#o.kv.update(name, value, entry.revision);
      } catch {
        continue; // another worker reserved meanwhile: read again
      }
      this.#slots.set(key, { next: start + intervalMs, left: batch - 1, intervalMs });
      return Math.max(0, Math.ceil(start - now));
    }
    // Heavy contention: come back shortly rather than spin.
    return -1;
  }
}

/** KV keys allow [-/_=.a-zA-Z0-9]; anything else becomes _ (keys are ours, collisions harmless). */
function safe(key: string): string {
  return key.replace(/[^-/_=.a-zA-Z0-9]/g, '_');
}
