import type { DeliveryEvent } from '@petrel/proto';
import type { AckPublisher } from './ack-publisher.ts';
import { publishEventBatchWith } from './publisher.ts';

export interface EventBatcherDeps {
  publisher: AckPublisher;
  timeoutMs: number;
  /** A batch the server did not store: logged, never thrown at the mail path. */
  onError: (error: unknown, events: readonly DeliveryEvent[]) => void;
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

  #flush(): void {
    const max = this.#deps.maxEvents ?? 500;
    while (this.#pending.length > 0) {
      const events = this.#pending.splice(0, max);
      const p = publishEventBatchWith(this.#deps.publisher, events, { timeoutMs: this.#deps.timeoutMs })
        .catch((error: unknown) => this.#deps.onError(error, events))
        .finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }
  }
}
