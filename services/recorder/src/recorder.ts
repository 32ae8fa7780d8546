/**
 * The recorder's consumer (docs/state.md): a durable pull consumer on PETREL_EVENTS whose
 * messages are written to Postgres in batches (EventWriter) and acked only once written. Postgres
 * down: the batch in hand is retried with backoff and kept from redelivery (working()); nothing
 * more is pulled meanwhile, so the events wait in JetStream (kept a week) and the mail path,
 * which never waits for the recorder, is untouched. Caught up afterwards in stream order.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { DeliveryEvent } from '@petrel/proto';
import { decodeEvents, ensureConsumer, STREAM_EVENTS } from '@petrel/queue';
import type { Logger } from '@petrel/telemetry';
import type { EventWriter } from './writer.ts';

export const RECORDER_CONSUMER = 'recorder';
const NANOS_PER_MS = 1_000_000;

export interface RecorderOptions {
  /** Events per Postgres transaction (default 5,000). */
  readonly maxEvents?: number;
  /** Transactions in flight at once (default 2: Postgres works on one while the next is prepared). */
  readonly writers?: number;
  /** Unacked messages the consumer lets out at once (default 20,000). */
  readonly maxAckPending?: number;
  readonly ackWaitMs?: number;
}

export interface RecorderDeps {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly writer: EventWriter;
  readonly log: Logger;
  readonly options?: RecorderOptions;
}

export interface RecorderStats {
  /** Events stored, duplicates skipped, too old to keep, messages that did not decode. */
  written: number;
  duplicates: number;
  expired: number;
  undecodable: number;
  /** Events with no place in the state (no queue id: a manual suppression's). */
  ignored: number;
  /** Stream messages Postgres refused (a value it cannot store): terminated, logged. */
  refused: number;
  /** Stream messages not yet written: not delivered to us yet, or held. */
  lagMessages: number;
  /** Age of the oldest event message not yet written, in seconds (0 when caught up). */
  lagSeconds: number;
  /** The last write failed (Postgres unreachable): being retried. */
  failing: boolean;
}

export async function ensureRecorderConsumer(
  jsm: JetStreamManager,
  options: RecorderOptions = {},
): Promise<void> {
  await ensureConsumer(jsm, STREAM_EVENTS, {
    durable_name: RECORDER_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: (options.ackWaitMs ?? 60_000) * NANOS_PER_MS,
    max_ack_pending: options.maxAckPending ?? 20_000,
    // Never given up on: an event not written is retried until it is (or ages out of the stream).
    max_deliver: -1,
  });
}

/** Stream messages received and their decoded events, written together. */
interface Received {
  readonly messages: JsMsg[];
  /** The events of each message (same order as `messages`). */
  readonly events: DeliveryEvent[][];
  /** Events in all. */
  count: number;
  /** Stream time (ms) of the oldest message. */
  oldest: number;
}

function received(): Received {
  return { messages: [], events: [], count: 0, oldest: Number.POSITIVE_INFINITY };
}

/** Errors that retrying cannot cure: the data (SQLSTATE class 22) or a constraint (23). */
function permanent(error: unknown): boolean {
  return /^2[23]/.test((error as { code?: string })?.code ?? '');
}

export class Recorder {
  readonly #deps: RecorderDeps;
  readonly #abort = new AbortController();
  readonly stats: RecorderStats = {
    written: 0,
    duplicates: 0,
    expired: 0,
    undecodable: 0,
    ignored: 0,
    refused: 0,
    lagMessages: 0,
    lagSeconds: 0,
    failing: false,
  };
  /** Batches received and not yet written (pending or being written): the lag's oldest. */
  readonly #held = new Set<Received>();
  /** Writes failing right now (each retries on its own). */
  #failing = 0;
  #running: Promise<void> | undefined;
  #stop: (() => void) | undefined;

  constructor(deps: RecorderDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#stop?.();
    await this.#running;
  }

  /** Refreshes the lag figures from the consumer's state. */
  async refreshLag(): Promise<RecorderStats> {
    const info = await this.#deps.jsm.consumers.info(STREAM_EVENTS, RECORDER_CONSUMER);
    this.stats.lagMessages = info.num_pending + info.num_ack_pending;
    let oldest: number | undefined = Math.min(...[...this.#held].map((r) => r.oldest));
    if (!Number.isFinite(oldest)) oldest = undefined;
    if (oldest === undefined && info.num_pending > 0) {
      // Nothing in hand: the oldest waiting message is the next one the consumer will deliver.
      const next = await this.#deps.jsm.streams
        .getMessage(STREAM_EVENTS, { seq: info.delivered.stream_seq + 1 })
        .catch(() => null);
      oldest = next?.timestamp === undefined ? undefined : Date.parse(next.timestamp);
    }
    this.stats.lagSeconds =
      this.stats.lagMessages === 0 || oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
    return this.stats;
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let pause = 250;
    while (!signal.aborted) {
      try {
        const consumer = await this.#deps.js.consumers.get(STREAM_EVENTS, RECORDER_CONSUMER);
        await this.#consume(consumer);
        pause = 250;
      } catch (error) {
        if (signal.aborted) break;
        this.#deps.log.warn({ err: error }, 'event consumer interrupted; consuming again');
        await sleep(pause, undefined, { signal }).catch(() => undefined);
        pause = Math.min(pause * 2, 5_000);
      }
    }
  }

  async #consume(consumer: Consumer): Promise<void> {
    const max = this.#deps.options?.maxEvents ?? 5_000;
    const messages = await consumer.consume({ max_messages: 1_000 });
    this.#stop = () => void messages.close();
    const writers = this.#deps.options?.writers ?? 2;
    let pending = received();
    this.#held.add(pending);
    let scheduled = false;
    // Writes in flight; the order between them does not matter (docs/state.md, "Idempotence").
    const writes = new Set<Promise<void>>();
    const flush = (): void => {
      scheduled = false;
      // Every writer busy: the batch grows until one is free (or it is full, below).
      if (pending.messages.length === 0 || writes.size >= writers) return;
      const batch = pending;
      pending = received();
      this.#held.add(pending);
      const write = this.#writeUntilDone(batch).finally(() => {
        this.#held.delete(batch);
        writes.delete(write);
        flush();
      });
      writes.add(write);
    };
    try {
      for await (const m of messages) {
        if (this.#abort.signal.aborted) break;
        // Decoded on arrival: while the previous batch is in Postgres, not after.
        let events: DeliveryEvent[];
        try {
          events = decodeEvents(m.subject, m.data);
        } catch (error) {
          // Not ours to understand: kept out of the state, and out of the consumer's way.
          this.stats.undecodable++;
          this.#deps.log.error(
            { err: error, subject: m.subject, seq: m.seq },
            'event message does not decode; skipped',
          );
          m.term('undecodable');
          continue;
        }
        pending.messages.push(m);
        pending.events.push(events);
        pending.count += events.length;
        pending.oldest = Math.min(pending.oldest, Math.floor(m.info.timestampNanos / NANOS_PER_MS));
        // The messages already buffered arrive within this turn: one write for all of them.
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
        // Writes slower than the stream (or failing): stop reading, so that only the consumer's
        // buffer fills and the rest waits in JetStream.
        while (pending.count >= max) {
          if (writes.size < writers) flush();
          else await Promise.race(writes);
        }
      }
      while (pending.messages.length > 0 || writes.size > 0) {
        flush();
        await Promise.race(writes);
      }
    } finally {
      this.#held.delete(pending);
    }
  }

  /**
   * Writes the messages' events, retrying until Postgres takes them, then acks the messages.
   * Postgres refusing the data itself (not an outage): the batch is halved until the message it
   * refuses is alone, and that one is terminated and counted, so the others are written.
   */
  async #writeUntilDone(batch: Received): Promise<void> {
    const { log } = this.#deps;
    let pause = 250;
    let lastProgress = Date.now();
    let failing = false;
    try {
      for (;;) {
        try {
          await this.#write(batch);
          break;
        } catch (error) {
          // Two writers upserting the same messages can deadlock (rarely: rows are taken in key
          // order per table); Postgres aborts one, which simply tries again.
          if ((error as { code?: string }).code === '40P01') continue;
          if (permanent(error)) {
            await this.#isolate(batch, error);
            return;
          }
          if (!failing) {
            failing = true;
            // Reported while the retries go on, not only once they are over.
            this.stats.failing = true;
            if (this.#failing++ === 0)
              log.warn({ err: error }, 'writing events to Postgres failed; retrying');
          }
          if (this.#abort.signal.aborted) return; // unacked: redelivered to whoever runs next
          // Held, not redelivered to another recorder meanwhile.
          if (Date.now() - lastProgress > 10_000) {
            for (const m of batch.messages) m.working();
            lastProgress = Date.now();
          }
          await sleep(pause, undefined, { signal: this.#abort.signal }).catch(() => undefined);
          pause = Math.min(pause * 2, 5_000);
        }
      }
    } finally {
      if (failing && --this.#failing === 0) log.info('Postgres writes resumed');
      this.stats.failing = this.#failing > 0;
    }
    for (const m of batch.messages) m.ack();
  }

  /** Writes a batch in chunks of at most maxEvents; throws the first failure. */
  async #write(batch: Received): Promise<void> {
    const max = this.#deps.options?.maxEvents ?? 5_000;
    const all = batch.events.flat();
    for (let i = 0; i < all.length; i += max) {
      const result = await this.#deps.writer.write(all.slice(i, i + max));
      this.stats.written += result.written;
      this.stats.duplicates += result.duplicates;
      this.stats.expired += result.expired;
      this.stats.ignored += result.ignored;
    }
  }

  async #isolate(batch: Received, error: unknown): Promise<void> {
    if (batch.messages.length === 1) {
      const m = batch.messages[0] as JsMsg;
      this.stats.refused++;
      this.#deps.log.error(
        { err: error, subject: m.subject, seq: m.seq },
        'Postgres refuses this event message; skipped',
      );
      m.term('refused by Postgres');
      return;
    }
    const half = Math.ceil(batch.messages.length / 2);
    for (const [from, to] of [
      [0, half],
      [half, batch.messages.length],
    ] as const) {
      const part: Received = {
        messages: batch.messages.slice(from, to),
        events: batch.events.slice(from, to),
        count: 0,
        oldest: batch.oldest,
      };
      await this.#writeUntilDone(part);
    }
  }
}
