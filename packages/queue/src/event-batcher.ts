import type { DeliveryEvent } from '@petrel/proto';
import type { AckPublisher } from './ack-publisher.ts';
import { publishEventBatchWith } from './publisher.ts';

/** Bytes of events per stream message: well under NATS's default max_payload of 1 MiB. */
export const EVENT_BATCH_BYTES = 256 * 1024;

/**
 * An upper bound of an event's encoded size (UTF-16 length × 3 covers UTF-8, plus each field's
 * tag and length): a batch is closed before it could pass the server's max_payload, whatever the
 * number of recipients or the length of a Message-ID.
 */
export function eventSizeBound(e: DeliveryEvent): number {
  let chars =
    e.eventId.length +
    e.messageId.length +
    e.destinationDomain.length +
    e.remoteHost.length +
    e.remoteAddress.length +
    e.tlsProtocol.length +
    e.error.length +
    e.sender.length +
    e.headerMessageId.length +
    e.clientAddress.length +
    e.dsnMessageId.length +
    (e.reply?.text.length ?? 0) +
    (e.reply?.enhanced.length ?? 0) +
    (e.trace?.traceparent.length ?? 0) +
    (e.trace?.tracestate.length ?? 0);
  for (const r of e.recipients) chars += r.length;
  return 3 * chars + 8 * e.recipients.length + 128;
}

/** Splits events into batches of at most `maxEvents` events and EVENT_BATCH_BYTES (bound). */
export function eventBatches(events: readonly DeliveryEvent[], maxEvents: number): DeliveryEvent[][] {
  const out: DeliveryEvent[][] = [];
  let batch: DeliveryEvent[] = [];
  let bytes = 0;
  for (const e of events) {
    const size = eventSizeBound(e);
    if (batch.length > 0 && (batch.length >= maxEvents || bytes + size > EVENT_BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(e);
    bytes += size;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

export interface EventBatcherDeps {
  publisher: AckPublisher;
  timeoutMs: number;
  /** Where a batch the server did not store is reported: never thrown at the mail path. */
  log: { warn(fields: object, message: string): void };
  /** Events per stream message (~200 bytes an event keeps a batch far under max_payload). */
  maxEvents?: number;
}

/**
 * Events emitted during one event-loop turn go out together as DeliveryEventBatch messages at
 * the end of the turn (setImmediate): one stored stream message for many events. Emitting never
 * waits and never fails; the recorder deduplicates by event id.
 */
export class EventBatcher {
  readonly #deps: EventBatcherDeps;
  #pending: DeliveryEvent[] = [];
  #inFlight = new Set<Promise<void>>();

  constructor(deps: EventBatcherDeps) {
    this.#deps = deps;
  }

  emit(event: DeliveryEvent): void {
    if (this.#pending.length === 0) setImmediate(() => this.#flush());
    this.#pending.push(event);
  }

  /** Resolves once every event emitted so far was published (or failed and was logged). */
  async drain(): Promise<void> {
    this.#flush();
    await Promise.all([...this.#inFlight]);
  }

  /** Publishes these events now, in as few batches as the limits allow (without waiting). */
  publish(events: readonly DeliveryEvent[]): void {
    for (const batch of eventBatches(events, this.#deps.maxEvents ?? 500)) {
      const p = publishEventBatchWith(this.#deps.publisher, batch, { timeoutMs: this.#deps.timeoutMs })
        .catch((error: unknown) =>
          this.#deps.log.warn(
            { err: error, events: batch.length, eventIds: batch.slice(0, 5).map((e) => e.eventId) },
            'event publish failed',
          ),
        )
        .finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }
  }

  #flush(): void {
    const pending = this.#pending;
    this.#pending = [];
    this.publish(pending);
  }
}
