/**
 * A durable pull consumer worked through with at most `concurrency` messages in hand, started
 * again (with backoff) when the subscription breaks: the fan-out and the sender differ only in
 * what they do with one message.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { WebhookLogger } from './logger.ts';

export interface ConsumeLoopDeps {
  readonly js: JetStreamClient;
  readonly stream: string;
  readonly consumer: string;
  readonly log: WebhookLogger;
  readonly concurrency: number;
  /** Settles the message (ack, nak or term) itself; a rejection is logged and the message nak'ed. */
  readonly handle: (m: JsMsg) => Promise<void>;
}

export interface ConsumeLoop {
  /** Stops pulling and waits for the messages in hand. */
  stop(): Promise<void>;
}

export function consumeLoop(deps: ConsumeLoopDeps): ConsumeLoop {
  const abort = new AbortController();
  let messages: ConsumerMessages | undefined;

  async function consume(): Promise<void> {
    const consumer = await deps.js.consumers.get(deps.stream, deps.consumer);
    // The buffer no larger than what is worked on: a message waiting in it ages towards ack_wait.
    messages = await consumer.consume({ max_messages: deps.concurrency });
    if (abort.signal.aborted) await messages.close();
    const inHand = new Set<Promise<void>>();
    try {
      for await (const m of messages) {
        if (abort.signal.aborted) {
          // Back at once, for another process (or the next start) to take.
          m.nak();
          continue;
        }
        const work: Promise<void> = deps
          .handle(m)
          .catch((error: unknown) => {
            // A bug, or the connection gone while settling: the message comes again either way.
            deps.log.error(
              { err: error, consumer: deps.consumer, seq: m.seq },
              'webhook message not settled',
            );
            try {
              m.nak();
            } catch {
              // Closed connection: redelivered after ack_wait.
            }
          })
          .finally(() => inHand.delete(work));
        inHand.add(work);
        if (inHand.size >= deps.concurrency) await Promise.race(inHand);
      }
    } finally {
      await Promise.all(inHand);
    }
  }

  async function run(): Promise<void> {
    let pause = 250;
    while (!abort.signal.aborted) {
      try {
        await consume();
        pause = 250;
      } catch (error) {
        if (abort.signal.aborted) break;
        deps.log.warn(
          { err: error, consumer: deps.consumer },
          'webhook consumer interrupted; consuming again',
        );
      }
      await sleep(pause, undefined, { signal: abort.signal }).catch(() => undefined);
      pause = Math.min(pause * 2, 5_000);
    }
  }

  const running = run();
  return {
    async stop() {
      abort.abort();
      await messages?.close().catch(() => undefined);
      await running;
    },
  };
}
