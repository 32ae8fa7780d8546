/**
 * Starts queued work together at the end of the current event-loop turn (setImmediate), in the
 * order it was queued. The queue publishes of every session whose final dot arrived in one turn
 * then run back to back within one callback, and nats.js, which writes its outbound buffer to the
 * socket once per microtask checkpoint, sends them with one system call instead of one each —
 * which also spares nats-server reads. The delay is a fraction of a turn: the callback runs right
 * after the poll phase that read the messages.
 */
export class TurnBatch {
  #queue: (() => void)[] = [];
  #scheduled = false;

  /** Runs `start` in this turn's batch; resolves or rejects as the promise it returns does. */
  run<T>(start: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push(() => {
        try {
          start().then(resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#drain());
      }
    });
  }

  #drain(): void {
    const queue = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    for (const start of queue) start();
  }
}
