/**
 * Preloaded by `npm test` (node --import) into the runner and every test file's process.
 *
 * A test file's process reports to the runner over a pipe, and --test-force-exit ends it with
 * process.exit() once its tests are done. Pipe writes are asynchronous on Linux, so the exit
 * could drop the last report frames: the runner then counted fewer tests and still passed
 * (nodejs/node#64833). Blocking writes leave nothing queued at the exit.
 */
interface BlockingHandle {
  setBlocking?: (blocking: boolean) => number;
}

for (const stream of [process.stdout, process.stderr]) {
  (stream as unknown as { _handle?: BlockingHandle })._handle?.setBlocking?.(true);
}
