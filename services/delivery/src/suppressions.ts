/**
 * The suppression list (issue 4, "Scheduling and limits"): recipients that hard-bounced are not
 * tried again for a while; later mail to them is bounced without a connection attempt. Kept in
 * the NATS KV bucket `petrel_suppressions`, so every worker sees it and the state issue can list
 * and edit it. One key per address (base64url of the lower-cased address: KV keys allow no "@").
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { KvMirror } from './kv-mirror.ts';

export const SUPPRESSIONS_BUCKET = 'petrel_suppressions';
/** The bucket keeps history for no longer than the longest suppression we allow. */
export const MAX_SUPPRESSION_MS = 365 * 24 * 3600 * 1000;

export interface Suppression {
  readonly address: string;
  /** Why: the remote reply that caused it ("550 5.1.1 user unknown"), or an operator's note. */
  readonly reason: string;
  /** RFC 3463 status of the bounce, e.g. 5.1.1. */
  readonly status: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  /** "bounce" (added by delivery) or "manual". */
  readonly source: 'bounce' | 'manual';
}

/** The bucket, made with the same options by every process that opens it (workers, the API). */
export async function openSuppressionsKv(js: JetStreamClient, replicas: number): Promise<KV> {
  return await new Kvm(js).create(SUPPRESSIONS_BUCKET, {
    storage: 'file',
    replicas,
    history: 1,
    ttl: MAX_SUPPRESSION_MS,
  });
}

/** The address a key stands for. */
export function suppressionAddress(key: string): string {
  return Buffer.from(key, 'base64url').toString('utf8');
}

export function suppressionKey(address: string): string {
  return Buffer.from(address.toLowerCase(), 'utf8').toString('base64url');
}

/**
 * Mirrored in memory (KvMirror): the worker checks every recipient of every attempt, so a
 * lookup must not be a request; call start() before use.
 */
export class SuppressionList {
  readonly #mirror: KvMirror<Suppression>;
  readonly #now: () => number;

  constructor(kv: KV, now: () => number = Date.now) {
    this.#mirror = new KvMirror(kv);
    this.#now = now;
  }

  start(): Promise<void> {
    return this.#mirror.start();
  }

  stop(): void {
    this.#mirror.stop();
  }

  async add(
    address: string,
    entry: { reason: string; status: string; forMs: number; source: Suppression['source'] },
  ): Promise<Suppression> {
    const now = this.#now();
    const value: Suppression = {
      address: address.toLowerCase(),
      reason: entry.reason,
      status: entry.status,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + Math.min(entry.forMs, MAX_SUPPRESSION_MS)).toISOString(),
      source: entry.source,
    };
    await this.#mirror.put(suppressionKey(address), value);
    return value;
  }

  /** The suppression in force for this address, or undefined (expired ones do not count). */
  get(address: string): Suppression | undefined {
    return this.#inForce(this.#mirror.get(suppressionKey(address)));
  }

  #inForce(value: Suppression | undefined): Suppression | undefined {
    return value !== undefined && Date.parse(value.expiresAt) > this.#now() ? value : undefined;
  }

  async remove(address: string): Promise<void> {
    await this.#mirror.delete(suppressionKey(address));
  }

  /** Every suppression in force (for the state issue's API and CLI). */
  list(): Suppression[] {
    return [...this.#mirror.values()]
      .filter((value) => this.#inForce(value) !== undefined)
      .sort((a, b) => a.address.localeCompare(b.address));
  }
}

/**
 * Which bounces suppress: the recipient does not exist or its mailbox is gone (RFC 3463 X.1.1
 * bad destination mailbox, X.1.2 bad destination system, X.1.6 mailbox moved, X.1.10 null MX).
 * Policy refusals (5.7.x) and full mailboxes (5.2.2) say nothing lasting about the address.
 */
export function suppresses(status: string): boolean {
  return /^5\.1\.(1|2|6|10)$/.test(status);
}
