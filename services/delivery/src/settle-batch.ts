import type { JsMsg } from '@nats-io/jetstream';
import type { DeliveryEvent } from '@petrel/proto';
import { type AckPublisher, ackEntry, EventBatcher } from '@petrel/queue';
import type { Logger } from '@petrel/telemetry';

export interface SettleBatchDeps {
  /** Events and acks go over its shared reply subscription. */
  publisher: AckPublisher;
  log: Logger;
  timeoutMs: number;
  /** Events per stream message (a batch stays well under max_payload: ~200 bytes an event). */
  maxEvents?: number;
}

interface Settled {
  readonly m: JsMsg;
  readonly events: readonly DeliveryEvent[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const MAX_EVENTS = 500;

/**
 * The last step of every attempt, for all the entries settled in one event-loop turn together:
 * their events go out as DeliveryEventBatch messages and their acks right after, at the end of
 * the turn (setImmediate, after the poll phase that completed them), so that nats.js writes all
 * of it in one system call and nats-server stores one events message instead of one per event.
 *
 * The events are not awaited before the acks: a failed event publish is logged and does not hold
 * the mail. Each ack is a double ack: `settle` resolves once the server confirmed it, and rejects
 * when it did not (the entry may then come back after ack_wait).
 */
export class SettleBatch {
  readonly #deps: SettleBatchDeps;
  readonly #events: EventBatcher;
  #pending: Settled[] = [];
  #scheduled = false;

  constructor(deps: SettleBatchDeps) {
    this.#deps = deps;
    this.#events = new EventBatcher({
      publisher: deps.publisher,
      timeoutMs: deps.timeoutMs,
      maxEvents: deps.maxEvents ?? MAX_EVENTS,
      log: deps.log,
    });
  }

  settle(m: JsMsg, events: readonly DeliveryEvent[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ m, events, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    this.#scheduled = false;
    const { publisher, timeoutMs } = this.#deps;
    const all: DeliveryEvent[] = [];
    for (const s of batch) for (const e of s.events) all.push(e);
    // Before the acks, in the same write; batches closed by count and by size.
    this.#events.publish(all);
    for (const s of batch) {
      // The ack subject: nats.js's JsMsg has it but its interface does not declare it.
      const reply = (s.m as JsMsg & { readonly reply?: string }).reply;
      const acked = reply ? ackEntry(publisher, reply, timeoutMs) : s.m.ackAck().then(() => undefined);
      acked.then(s.resolve, s.reject);
    }
  }
}
